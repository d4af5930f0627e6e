"""App passwords (specs/api-contract.md, "App passwords"): what a CalDAV client signs in with
over HTTP Basic, beside the account's `dav_username`; shown once, stored as a SHA-256.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import CheckConstraint, Text, UniqueConstraint
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column, id_column, now_column, user_id_column
from backend.models.common import UtcDatetime
from backend.models.names import Name, name_doc
from backend.models.types import TASK_ID_MAX

# How many app passwords one account may have (a create past it: 422 LIMIT_REACHED).
APP_PASSWORDS_PER_USER = 50
APP_PASSWORD_ID_MAX = TASK_ID_MAX
# A prefix secret scanners recognise, then `token_urlsafe(32)` (no `:` for Basic to split on).
PASSWORD_PREFIX = "tapw_"  # noqa: S105 (a prefix, not a secret)
PASSWORD_PATTERN = "^tapw_[A-Za-z0-9_-]{43}$"  # noqa: S105 (a shape, not a secret)
# The DAV root, under the API's base address: `/.well-known/caldav` redirects here.
DAV_ROOT = "/dav/"


def dav_username(user_id: str) -> str:
    """The account's DAV username: its id percent-encoded (an external id may hold `:`); not the
    email, which may be absent or change while a client keeps the username."""
    return quote(user_id, safe="@+-._~")


def dav_url(base: str) -> str:
    """The DAV root's address: `base` (the API's, no trailing slash; empty: the path alone)."""
    return f"{base.rstrip('/')}{DAV_ROOT}"


class AppPasswordScope(StrEnum):
    """`read`: a DAV client reads only (any write is 403); `read_write`: it writes too."""

    read = "read"
    read_write = "read_write"


class AppPassword(SQLModel, table=True):
    __tablename__ = "app_passwords"
    __table_args__ = (
        UniqueConstraint("user_id", "id", name="uq_app_passwords_user_id_id"),
        UniqueConstraint("user_id", "name_key", name="uq_app_passwords_user_id_name_key"),
        UniqueConstraint("token_hash", name="uq_app_passwords_token_hash"),
        CheckConstraint("scope IN ('read', 'read_write')", name="ck_app_passwords_scope"),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    name: str = column(Text, nullable=False)
    name_key: str = column(Text, nullable=False)
    scope: str = column(Text, nullable=False)
    # SHA-256 of the password, hex (`statements.tokens.token_hash`): the password is shown once.
    token_hash: str = column(Text, nullable=False)
    created_at: datetime | None = now_column()
    updated_at: datetime | None = now_column()
    # Written by a DAV request's check, at most once a minute (services/accounts/app_passwords.py).
    last_used_at: datetime | None = column(INSTANT, default=None)


class AppPasswordCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "iPhone Reminders", "scope": "read_write"}]},
    )

    name: Name = Field(description=name_doc("app passwords"), examples=["iPhone Reminders"])
    scope: AppPasswordScope = Field(
        default=AppPasswordScope.read_write,
        description="`read_write` (the default): the client reads and writes; `read`: it "
        "only reads (any write over DAV is 403).",
        examples=["read_write"],
    )


class AppPasswordPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[3])
    name: str = Field(examples=["iPhone Reminders"])
    scope: AppPasswordScope = Field(examples=["read_write"])
    username: str = Field(
        description="The username to sign in with over CalDAV (HTTP Basic): the same for "
        "every app password of the account.",
        examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"],
    )
    dav_url: str = Field(
        description="The CalDAV address to give a client (`/.well-known/caldav` leads here).",
        examples=["https://tasks.example.com/dav/"],
    )
    created_at: UtcDatetime = Field(examples=["2026-11-27T09:00:00Z"])
    last_used_at: UtcDatetime | None = Field(
        description="When a CalDAV request last signed in with it (to the minute); null: never.",
        examples=[None],
    )


class AppPasswordCreated(AppPasswordPublic):
    password: str = Field(
        description="The password (`tapw_` and 43 characters of `A-Z a-z 0-9 _ -`: 256 random "
        "bits): shown only in this answer, stored only as a hash. Give it to one CalDAV "
        "client with `username`; revoke it when the device is gone.",
        examples=["tapw_q3V0aG9yaXR5LXRva2VuLWV4YW1wbGUtMzItYnl0ZXM"],
    )
