"""Accounts: sign-up, sign-in, provisioning of external identities, deletion."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col

from backend.auth.passwords import hash_password, verify_password
from backend.auth.tokens import TokenClaims
from backend.errors import Conflict, Unauthorized
from backend.models import User, UserLogin, UserRegister

INVALID_CREDENTIALS = "Invalid email or password"
# What a request needs of its caller's account: the id, and the version tokens must carry.
# A plain row through a prebuilt Core statement (table columns, not ORM attributes, so the
# session skips ORM compilation and loading): `Session.get` cost more than the query on every
# task request, and the ORM-enabled select still a third more than this one.
_USERS = User.__table__.c  # type: ignore[attr-defined]
_ACCOUNT = select(_USERS.id, _USERS.token_version).where(_USERS.id == bindparam("id"))


class UserService:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: str) -> User | None:
        return self.session.get(User, user_id)

    def register(self, data: UserRegister) -> User:
        user_id = str(uuid.uuid4())
        row = self.session.scalars(
            insert(User)
            .values(
                id=user_id,
                email=data.email,
                name=data.name,
                password_hash=hash_password(data.password),
            )
            .on_conflict_do_nothing()
            .returning(User)
        ).one_or_none()
        if row is None:
            raise Conflict("An account with this email already exists")
        return row

    def authenticate(self, data: UserLogin) -> User:
        user = self.session.scalars(select(User).where(col(User.email) == data.email)).one_or_none()
        # A hash is verified either way, so timing does not tell which part was wrong.
        valid = verify_password(data.password, user.password_hash if user else None)
        if user is None or not valid:
            raise Unauthorized(INVALID_CREDENTIALS)
        return user

    def resolve(self, claims: TokenClaims) -> User:
        """The account a verified token speaks for.

        Tokens from an external issuer sharing the secret provision their account on first
        use. Built-in tokens never do: their account was deleted, so they are refused.
        """
        user = self.get(claims.subject)
        _check_version(claims, None if user is None else user.token_version)
        if user is not None:
            return user
        return self._provision(claims)

    def resolve_id(self, claims: TokenClaims) -> str:
        """`resolve(claims).id`, reading only the id and token version (no entity)."""
        row = self.session.execute(_ACCOUNT, {"id": claims.subject}).first()
        _check_version(claims, None if row is None else row.token_version)
        if row is not None:
            return str(row.id)
        return self._provision(claims).id

    def _provision(self, claims: TokenClaims) -> User:
        email = claims.email
        for candidate_email in (email, None) if email else (None,):
            # ON CONFLICT covers a concurrent first request for the same id, and an email
            # already used by another account (then the row is created without the email).
            self.session.execute(
                insert(User)
                .values(id=claims.subject, email=candidate_email, name=claims.name)
                .on_conflict_do_nothing()
            )
            user = self.get(claims.subject)
            if user is not None:
                return user
        raise Conflict("Could not provision an account for this token")

    def revoke_tokens(self, user_id: str) -> None:
        """Sign out everywhere: every built-in token issued so far stops working."""
        self.session.execute(
            update(User)
            .where(col(User.id) == user_id)
            .values(token_version=col(User.token_version) + 1)
        )

    def delete(self, user_id: str) -> None:
        """Delete the account; its tasks go with it (ON DELETE CASCADE)."""
        self.session.execute(delete(User).where(col(User.id) == user_id))


def _check_version(claims: TokenClaims, token_version: int | None) -> None:
    """Refuse a built-in token whose account is gone (None) or whose `ver` was revoked.
    Tokens from an external issuer are not checked here: they provision a missing account."""
    if not claims.local:
        return
    if token_version is None:
        raise Unauthorized("The account for this token no longer exists")
    # The row is read anyway, so revocation costs no extra query and no write.
    if claims.token_version != token_version:
        raise Unauthorized("This token was revoked")
