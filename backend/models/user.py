"""The `users` table and the account schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Protocol

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator
from sqlalchemy import Integer, Text, text
from sqlmodel import SQLModel

from backend.models.columns import column, now_column
from backend.models.common import NotBlankText, StorableText, UtcDatetime, text_pattern

USER_ID_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 320
NAME_MAX_LENGTH = 100
PASSWORD_MIN_LENGTH = 8
# Bounded so that hashing cost cannot be driven up by a huge password.
PASSWORD_MAX_LENGTH = 128


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = column(Text, primary_key=True)
    email: str | None = column(Text, unique=True, default=None)
    name: str | None = column(Text, default=None)
    password_hash: str | None = column(Text, default=None)
    # Built-in tokens carry it as `ver`; "sign out everywhere" increments it (migration 0004).
    token_version: int = column(Integer, nullable=False, server_default=text("0"), default=0)
    created_at: datetime | None = now_column()


class UserRow(Protocol):
    """A row of `users` as `UserService` returns it (plain columns, not an ORM entity)."""

    id: str
    email: str | None
    name: str | None
    password_hash: str | None
    token_version: int
    created_at: datetime


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# `idn-email` (SMTPUTF8 is accepted), with what email-validator refuses beyond it as a pattern
# (a quoted local part, an IP, a domain without a period or ending in a digit, hyphen or
# period, an RFC 6761 special-use domain), so a schema-valid address is never refused.
_SPECIAL_USE = "|".join(_any_case(name) for name in sorted(SPECIAL_USE_DOMAIN_NAMES))
EMAIL_PATTERN = (
    '^(?!")[^\\u0000@]+@(?!\\[)'
    f"(?!(?:[^@]*\\.)?(?:{_SPECIAL_USE})$)"
    "[^\\u0000@]*\\.[^\\u0000@]*[^\\u0000@.0-9-]$"
)
Email = Annotated[
    EmailStr,
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    text_pattern(EMAIL_PATTERN, "idn-email"),
]
Password = Annotated[
    str,
    StringConstraints(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH),
    StorableText,
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    NotBlankText,
]


class _Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email = Field(examples=["ada@example.com"])
    password: Password = Field(examples=["correct horse battery staple"])

    @field_validator("email")
    @classmethod
    def _lowercase(cls, value: str) -> str:
        return value.lower()


class UserRegister(_Credentials):
    """Sign-up: email, a password of 8-128 characters, an optional display name."""

    name: Name | None = Field(default=None, examples=["Ada Lovelace"])


class UserLogin(_Credentials):
    """Sign-in with email and password."""


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"])
    email: str | None = Field(examples=["ada@example.com"])
    name: str | None = Field(examples=["Ada Lovelace"])
    created_at: UtcDatetime


class AuthSession(BaseModel):
    """What sign-up and sign-in return: the account and a bearer token for it."""

    user: UserPublic
    access_token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    token_type: str = Field(default="bearer", examples=["bearer"])
    expires_in: int = Field(description="Seconds until the token expires.", examples=[3600])
