"""Accounts: sign-up, sign-in, provisioning of external identities, revocation, deletion."""

from __future__ import annotations

import uuid
from typing import NoReturn, cast

from sqlalchemy import Text, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert

from backend.auth.passwords import hash_password, verify_password
from backend.db.scope import OWNER
from backend.db.sender import Sender
from backend.errors import Conflict, Unauthorized
from backend.models import User, UserLogin, UserRegister, UserRow
from backend.services.statements.rules import Rule, fires

INVALID_CREDENTIALS = "Invalid email or password"
_USERS = User.__table__.c  # type: ignore[attr-defined]
_USER_COLUMNS = tuple(_USERS)
# An account's deletion, with the storage keys it may remove (read before its cascades).
_DELETE = text(
    "DELETE FROM users WHERE id = :owner RETURNING task_stored_keys_of(:owner) AS keys"
).bindparams(bindparam(OWNER, type_=Text))


class UserService:
    def __init__(self, send: Sender) -> None:
        self._send = send

    def get(self, user_id: str) -> UserRow | None:
        row = self._send.read(select(*_USER_COLUMNS).where(_USERS.id == user_id), {}).first()
        return cast(UserRow | None, row)

    def find_by_email(self, email: str) -> UserRow | None:
        row = self._send.read(select(*_USER_COLUMNS).where(_USERS.email == email), {}).first()
        return cast(UserRow | None, row)

    def register(self, data: UserRegister) -> UserRow:
        row = self._send.write(
            insert(User)
            .values(
                id=str(uuid.uuid4()),
                email=data.email,
                name=data.name,
                password_hash=hash_password(data.password),
            )
            .on_conflict_do_nothing()
            .returning(*_USER_COLUMNS),
            {},
        ).one_or_none()
        if row is None:
            raise Conflict("An account with this email already exists")
        return cast(UserRow, row)

    def authenticate(self, data: UserLogin) -> UserRow:
        user = self.find_by_email(data.email)
        # A hash is verified either way, so timing does not tell which part was wrong.
        valid = verify_password(data.password, user.password_hash if user else None)
        if user is None or not valid:
            raise Unauthorized(INVALID_CREDENTIALS)
        return user

    def refuse(self) -> NoReturn:
        """Sign-in with credentials that cannot be valid: the wrong-credentials 401 after a hash
        verification, so neither status nor timing tells them from a wrong password."""
        verify_password("", None)
        raise Unauthorized(INVALID_CREDENTIALS)

    def revoke_tokens(self, user_id: str) -> None:
        """Sign out everywhere: every built-in token issued so far stops working."""
        self._send.write(
            update(User).where(_USERS.id == user_id).values(token_version=_USERS.token_version + 1),
            {},
        )

    @fires(
        Rule.HANDOVER,
        Rule.UNASSIGN,
        Rule.SUBTASK_COUNTS,
        Rule.FORGET_REMINDERS,
        Rule.EXCHANGE_REMINDERS,
        Rule.TRASH_STAYS,
    )
    def delete(self, user_id: str) -> list[str]:
        """Delete the account (its shared lists handed over first); its files' storage keys."""
        rows = self._send.write(_DELETE, {OWNER: user_id})
        return [str(key) for row in rows for key in row.keys]
