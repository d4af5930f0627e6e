"""Invitations to a shared list (specs/api-contract.md, "Shared lists"), one message each. The token
is stored as its SHA-256; accepting is one statement deleting the invitation by its hash and
inserting the membership from the deleted row, so a token is used once and an accept racing a revoke
ends in one of the two. Any unusable token is the one 404."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Scoped, owned, space_locked, spaces_locked
from backend.errors import Forbidden, LimitReached, NotFound
from backend.models import ListInvitation, ListMember, User
from backend.models.sharing import (
    INVITATION_DAYS,
    MEMBER_ROLES,
    MEMBERS_PER_LIST,
    InvitationCreate,
    InvitationCreated,
    InvitationPublic,
)
from backend.models.task_list import ListRow, TaskList
from backend.services.sharing.lists import LIST_VIEW
from backend.services.statements.access import Action, may, may_manage, needed_for, require, role_in
from backend.services.statements.tokens import token_hash

_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_L = _LISTS.c
_INVITATIONS = ListInvitation.__table__  # type: ignore[attr-defined]
_I = _INVITATIONS.c
_MEMBERS = ListMember.__table__  # type: ignore[attr-defined]
_M = _MEMBERS.c
_U = User.__table__.c  # type: ignore[attr-defined]

_LIST_ID = bindparam("list_id", type_=BigInteger)
_INVITATION_ID = bindparam("invitation_id", type_=BigInteger)
_HASH = bindparam("token_hash", type_=Text)

LIST_NOT_FOUND = "List not found"
INVITATION_NOT_FOUND = "Invitation not found"
ONLY_OWNER_ADMINS = "Only the list's owner may invite an admin"
_PUBLIC = (_I.id, _I.list_id, _I.role, _I.email, _I.expires_at)


_CALLER_ROLE = role_in(_LISTS).label("caller_role")
_VISIBLE = and_(_L.id == _LIST_ID, may(_LISTS, Action.LIST_READ))
# The caller's role in a list it can see (no row: it cannot, or there is none).
_ROLE_IN = select(_CALLER_ROLE).where(_VISIBLE)
# The caller's and the owner's change locks taken together (`spaces_locked`), else a deadlock.
_LOCK_LIST = spaces_locked(select(_L.user_id).where(_VISIBLE).scalar_subquery())


_EMAIL = bindparam("email", type_=Text)


def _room() -> Any:
    """Whether members and pending invitations (but one replaced) fit `MEMBERS_PER_LIST`."""
    member = _MEMBERS.alias("counted_member")
    pending = _INVITATIONS.alias("counted_invitation")
    members = select(func.count()).where(member.c.list_id == _L.id, may(member, Action.INVITE))
    invitations = select(func.count()).where(
        pending.c.list_id == _L.id,
        may(pending, Action.INVITE),
        pending.c.expires_at > func.now(),
        or_(
            pending.c.email.is_(None),
            func.lower(pending.c.email).is_distinct_from(func.lower(_EMAIL)),
        ),
    )
    return members.scalar_subquery() + invitations.scalar_subquery() < MEMBERS_PER_LIST


def _create(*, admin: bool) -> Any:
    """A new invitation (admin+; `admin`: the owner), replacing one to the same address."""
    lists = owned(select(_L.user_id), _L.user_id) if admin else select(_L.user_id)
    source = lists.where(_L.id == _LIST_ID, _room())
    if not admin:
        source = source.where(may(_LISTS, Action.INVITE))
    source = source.with_only_columns(
        _L.user_id,
        _L.id,
        bindparam("role", type_=Text),
        _EMAIL,
        _HASH,
        bindparam(OWNER),
        func.now() + literal_column(f"interval '{INVITATION_DAYS} days'"),
    )
    insert = pg_insert(ListInvitation).from_select(
        ["user_id", "list_id", "role", "email", "token_hash", "invited_by", "expires_at"], source
    )
    return insert.on_conflict_do_update(
        index_elements=[_I.list_id, func.lower(_I.email)],
        index_where=_I.email.isnot(None),
        set_={
            "role": insert.excluded.role,
            "token_hash": insert.excluded.token_hash,
            "invited_by": insert.excluded.invited_by,
            "created_at": func.now(),
            "expires_at": insert.excluded.expires_at,
        },
    ).returning(*_PUBLIC)


_CREATE = _create(admin=False)
_CREATE_ADMIN = _create(admin=True)
# The pending invitations of a visible list, with the caller's role (no row: no list).
_PENDING = (
    select(_CALLER_ROLE, *_PUBLIC)
    .select_from(
        _LISTS.outerjoin(
            _INVITATIONS,
            and_(
                _I.user_id == _L.user_id,
                _I.list_id == _L.id,
                may(_INVITATIONS, Action.INVITE),
                _I.expires_at > func.now(),
            ),
        )
    )
    .where(_VISIBLE)
    .order_by(_I.id)
)
# Revoke (admin+; an `admin` invitation: the owner only).
_REVOKE = (
    delete(_INVITATIONS)
    .where(
        _I.id == _INVITATION_ID,
        _I.list_id == _LIST_ID,
        may_manage(_INVITATIONS, Action.INVITE),
        space_locked(_INVITATIONS),
    )
    .returning(_I.id)
)
# The caller's role and whether the invitation is the list's (why a revoke matched nothing).
_REVOKE_REFUSAL = select(
    _CALLER_ROLE,
    select(_I.role)
    .where(_I.id == _INVITATION_ID, _I.list_id == _L.id, may(_INVITATIONS, Action.INVITE))
    .scalar_subquery()
    .label("invitation_role"),
).where(_VISIBLE)

# A role's rank among the member roles (1-4): an accepted invitation never lowers a role.
_ORDER = literal(",".join(MEMBER_ROLES), type_=Text)


def _rank(column: Any) -> Any:
    return func.array_position(func.string_to_array(_ORDER, literal(",", type_=Text)), column)


# Where the accept leaves the id of the list joined for the read after it (transaction-local).
_JOINED_SETTING = "task_api.joined_list"


def _usable() -> tuple[Any, ...]:
    """The invitation of `:token_hash`: unexpired, to the caller or nobody, not its own list."""
    caller_email = select(func.lower(_U.email)).where(_U.id == bindparam(OWNER)).scalar_subquery()
    return (
        _I.token_hash == _HASH,
        _I.expires_at > func.now(),
        or_(_I.email.is_(None), func.lower(_I.email) == caller_email),
        _I.user_id != bindparam(OWNER),
    )


# The accept takes the caller's and the owner's change locks together, as a create does.
_LOCK_INVITING = spaces_locked(select(_I.user_id).where(*_usable()).scalar_subquery())


def _accept() -> Any:
    """Use the invitation whose token hashes to `:token_hash`: deleted (single use), the caller's
    membership from it (a higher role kept); the list's id in `_JOINED_SETTING`."""
    used = (
        delete(_INVITATIONS)
        .where(*_usable(), space_locked(_INVITATIONS))
        .returning(_I.user_id, _I.list_id, _I.role)
        .cte("used")
    )
    joined = pg_insert(ListMember).from_select(
        ["user_id", "list_id", "member_id", "role"],
        select(used.c.user_id, used.c.list_id, bindparam(OWNER), used.c.role),
    )
    # A member keeps a higher role than the invitation's (written either way: the list's id left).
    higher = case(
        (_rank(joined.excluded.role) > _rank(_M.role), joined.excluded.role), else_=_M.role
    )
    joined_list = func.set_config(_JOINED_SETTING, _M.list_id.cast(Text), True)
    return joined.on_conflict_do_update(
        index_elements=["list_id", "member_id"], set_={"role": higher}
    ).returning(joined_list)


_ACCEPT = _accept()
# The list the accept joined, as GET /api/lists/{id} reads it (no row: nothing joined).
_JOINED = select(*LIST_VIEW).where(
    _L.id == func.nullif(func.current_setting(_JOINED_SETTING, True), "").cast(BigInteger),
    may(_LISTS, Action.LIST_READ),
)


class InvitationService(Scoped):
    def create(self, list_id: int, data: InvitationCreate) -> InvitationCreated:
        """A new invitation (admin+; an `admin` one the owner only), its token shown once."""
        token = secrets.token_urlsafe(32)
        action = needed_for(data.role, Action.INVITE)
        statement = _CREATE_ADMIN if action is Action.ADMIN_MANAGE else _CREATE
        self._lock_spaces(_LOCK_LIST, list_id=list_id)
        rows = self._write(
            statement,
            list_id=list_id,
            role=data.role.value,
            email=data.email,
            token_hash=token_hash(token),
            last=True,
        )
        if rows:
            return InvitationCreated.model_validate({**rows[0]._mapping, "token": token})
        role = self._read(_ROLE_IN, list_id=list_id).scalar()
        missing = NotFound(LIST_NOT_FOUND)
        require(role, Action.INVITE, missing)
        require(role, action, missing, forbidden=ONLY_OWNER_ADMINS)
        raise LimitReached(
            f"A list has at most {MEMBERS_PER_LIST} members and pending invitations together"
        )

    def pending(self, list_id: int) -> Sequence[InvitationPublic]:
        """The list's pending invitations (admin+), oldest first; never a token."""
        rows = self._read(_PENDING, list_id=list_id).all()
        if not rows:
            raise NotFound(LIST_NOT_FOUND)
        require(rows[0].caller_role, Action.INVITE, NotFound(LIST_NOT_FOUND))
        return [InvitationPublic.model_validate(row) for row in rows if row.id is not None]

    def revoke(self, list_id: int, invitation_id: int) -> None:
        """Delete a pending invitation of the list (admin+; an `admin` one the owner only)."""
        self._lock_spaces(_LOCK_LIST, list_id=list_id)
        if self._write(_REVOKE, list_id=list_id, invitation_id=invitation_id, last=True):
            return
        found = self._read(_REVOKE_REFUSAL, list_id=list_id, invitation_id=invitation_id).first()
        if found is None:
            raise NotFound(LIST_NOT_FOUND)
        role, invited_as = tuple(found)
        require(role, Action.INVITE, NotFound(LIST_NOT_FOUND))
        if invited_as is None:
            raise NotFound(INVITATION_NOT_FOUND)
        raise Forbidden(ONLY_OWNER_ADMINS)

    def accept(self, token: str) -> ListRow:
        """Use the token: the caller joins its list (a higher role kept); the list now."""
        hashed = token_hash(token)
        self._lock_spaces(_LOCK_INVITING, token_hash=hashed)
        self._ahead(_ACCEPT, token_hash=hashed)
        row = self._write(_JOINED, last=True).first()
        if row is None:
            raise NotFound(INVITATION_NOT_FOUND)
        return cast(ListRow, row)
