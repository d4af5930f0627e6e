"""App passwords (specs/api-contract.md, "App passwords"): `AppPasswordService` for their owner,
`AppPasswordCheck` for a CalDAV sign-in. Stored as a SHA-256 of 256 random bits (a slow hash would
only cost every DAV request its time); the hash is unique, so a check finds the row by it, then
compares the username."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    bindparam,
    extract,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)

from backend.db.scope import Scoped, owned
from backend.models.app_password import (
    APP_PASSWORDS_PER_USER,
    PASSWORD_PREFIX,
    AppPassword,
    AppPasswordCreate,
    AppPasswordScope,
)
from backend.models.names import name_key
from backend.models.rate_limit import RateLimit
from backend.models.user import User
from backend.services.statements.named_rows import NamedRows
from backend.services.statements.tokens import token_hash

ROWS = NamedRows(
    AppPassword, noun="app password", plural="app passwords", limit=APP_PASSWORDS_PER_USER
)
_C = ROWS.table.c
_HASH = bindparam("token_hash", type_=Text)
# What an answer shows of a row (never its hash).
_PUBLIC = (_C.id, _C.name, _C.scope, _C.created_at, _C.last_used_at)
_INSERT = ROWS.create({"scope": bindparam("scope", type_=Text), "token_hash": _HASH}, _PUBLIC)
_MINE = owned(select(*_PUBLIC), _C.user_id).order_by(_C.name_key, _C.id)
# Sign out everywhere ends every app password of the caller's (as its calendar feeds).
_END_ALL = owned(ROWS.table.delete(), _C.user_id)

# `last_used_at` written at most once a minute: a client syncing often writes no row each time.
TOUCH_EVERY_SECONDS = 60
_LIMITS = RateLimit.__table__  # type: ignore[attr-defined]
_USERS = User.__table__  # type: ignore[attr-defined]


def _failures(key: str) -> tuple[Any, Any]:
    """A failure limit's count in its current window (NULL: none), and its seconds left."""
    now = func.clock_timestamp()
    live = select(_LIMITS.c.hits).where(
        _LIMITS.c.key == bindparam(key, type_=Text), _LIMITS.c.window_end > now
    )
    seconds = extract("epoch", _LIMITS.c.window_end - now)
    left = func.greatest(literal_column("1"), func.ceil(seconds)).cast(Integer)
    return live.scalar_subquery(), live.with_only_columns(left).scalar_subquery()


# Named after no column: an UPDATE's compile makes a value named after a column one more SET.
_SENT = bindparam("password_hash", type_=Text)


def _check() -> Any:
    """A DAV request's check: the row whose hash is `:password_hash` with its account's token
    version, and the failure counts of the address and username, found or not."""
    touched = (
        update(ROWS.table)
        .where(
            _C.token_hash == _SENT,
            or_(
                _C.last_used_at.is_(None),
                _C.last_used_at < func.now() - text(f"interval '{TOUCH_EVERY_SECONDS} seconds'"),
            ),
        )
        .values(last_used_at=func.now())
        .returning(_C.id)
        .cte("touched")
    )
    found = (
        select(
            _C.id,
            _C.user_id,
            _C.scope,
            select(_USERS.c.token_version)
            .where(_USERS.c.id == _C.user_id)
            .scalar_subquery()
            .label("token_version"),
            select(func.count()).select_from(touched).scalar_subquery().label("touched"),
        )
        .where(_C.token_hash == _SENT)
        .subquery("found")
    )
    ip_hits, ip_left = _failures("ip_key")
    user_hits, user_left = _failures("user_key")
    return select(
        found.c.id,
        found.c.user_id,
        found.c.scope,
        found.c.token_version,
        ip_hits.label("ip_hits"),
        ip_left.label("ip_left"),
        user_hits.label("user_hits"),
        user_left.label("user_left"),
    ).select_from(
        select(literal_column("1", BigInteger).label("one"))
        .subquery("one")
        .outerjoin(found, true())
    )


_CHECK = _check()


@dataclass(frozen=True)
class NewAppPassword:
    """An app password as created, with the password (shown this once)."""

    row: Any
    password: str


@dataclass(frozen=True)
class Checked:
    """What a DAV check read: the password's account and scope (None: none), the failure counts."""

    user_id: str | None
    scope: AppPasswordScope | None
    token_version: int | None
    ip_failures: tuple[int, int] | None
    user_failures: tuple[int, int] | None


def new_password() -> str:
    return PASSWORD_PREFIX + secrets.token_urlsafe(32)


class AppPasswordService(Scoped):
    def create(self, data: AppPasswordCreate) -> NewAppPassword:
        password = new_password()
        rows = self._write(
            _INSERT,
            name=data.name,
            name_key=name_key(data.name),
            scope=data.scope.value,
            token_hash=token_hash(password),
            last=True,
        )
        if rows:
            return NewAppPassword(rows[0], password)
        raise ROWS.refused_create(self._read, data.name)

    def mine(self) -> Sequence[Any]:
        """The caller's app passwords, by name; never a password or its hash."""
        return self._read(_MINE).all()

    def revoke(self, app_password_id: int) -> None:
        """Delete it: a DAV request signing in with it is refused from this commit on."""
        if not self._write(ROWS.remove, row_id=app_password_id, last=True):
            raise ROWS.not_found()

    def end_all(self) -> None:
        """Revoke the caller's app passwords (logout-all), with the request's next statement."""
        self._ahead(_END_ALL)


class AppPasswordCheck(Scoped):
    """A DAV request's sign-in: no caller yet (the password is the credential)."""

    def check(self, password: str, ip_key: str, user_key: str) -> Checked:
        row = self._write(
            _CHECK, password_hash=token_hash(password), ip_key=ip_key, user_key=user_key, last=True
        ).one()
        return Checked(
            row.user_id,
            AppPasswordScope(row.scope) if row.scope is not None else None,
            row.token_version,
            None if row.ip_hits is None else (row.ip_hits, row.ip_left),
            None if row.user_hits is None else (row.user_hits, row.user_left),
        )
