"""Calendar feeds (specs/api-contract.md, "Calendar feeds"): the table and the schemas."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import BigInteger, CheckConstraint, Text, UniqueConstraint, text
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column, id_column, now_column, user_id_column
from backend.models.common import JsonInt, UtcDatetime
from backend.models.references import LISTS, Action, Reference, not_a_reference
from backend.models.task_list import LIST_ID_MAX

# How many feeds one account may have (a create past it: 422 LIMIT_REACHED).
FEEDS_PER_USER = 20
# The due dates a feed shows, around each fetch, and at most how many tasks (the soonest).
WINDOW_DAYS_BACK = 60
WINDOW_DAYS_AHEAD = 365
FEED_MAX_TASKS = 2000
# `secrets.token_urlsafe(32)`: 43 characters of the URL-safe base64 alphabet.
TOKEN_PATTERN = "^[A-Za-z0-9_-]{43}$"  # noqa: S105 (a shape, not a secret)


def feed_url(token: str, base: str) -> str:
    """The feed's address: `base` (the API's, no trailing slash; empty: the path alone)."""
    return f"{base.rstrip('/')}/api/calendar/{token}.ics"


class FeedKind(StrEnum):
    """`events` (VEVENT: every calendar app shows them) or `todos` (VTODO, for apps that
    read tasks)."""

    events = "events"
    todos = "todos"


class FeedScope(StrEnum):
    all = "all"
    list = "list"


class CalendarFeed(SQLModel, table=True):
    __tablename__ = "calendar_feeds"
    __table_args__ = (
        UniqueConstraint("user_id", "id", name="uq_calendar_feeds_user_id_id"),
        UniqueConstraint("token_hash", name="uq_calendar_feeds_token_hash"),
        CheckConstraint("kind IN ('events', 'todos')", name="ck_calendar_feeds_kind"),
        CheckConstraint("scope IN ('all', 'list')", name="ck_calendar_feeds_scope"),
        CheckConstraint(
            "(scope = 'list') = (list_id IS NOT NULL)", name="ck_calendar_feeds_list_id"
        ),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    kind: str = column(Text, nullable=False, server_default=text("'events'"))
    scope: str = column(Text, nullable=False, server_default=text("'all'"))
    # No key: a shared list is in its owner's space; each fetch reads it through `access`.
    list_id: int | None = column(
        BigInteger,
        info=not_a_reference(
            "a list feed's list, possibly another's (shared: in its owner's space); read through "
            "the access predicate at each fetch, a list the creator cannot read being the feed's "
            "404 (migration 0044)"
        ),
        default=None,
    )
    # SHA-256 of the token, hex (`statements.tokens.token_hash`): the token is shown once.
    token_hash: str = column(Text, nullable=False)
    created_at: datetime | None = now_column()
    rotated_at: datetime | None = column(INSTANT, default=None)


class CalendarFeedCreate(BaseModel):
    # The schema states `_list_with_list_scope`, so generated valid bodies hold it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"scope": {"const": "list"}}, "required": ["scope"]},
            "then": {"required": ["list_id"], "properties": {"list_id": {"type": "integer"}}},
            "else": {"properties": {"list_id": {"type": "null"}}},
        },
    )

    kind: FeedKind = Field(
        default=FeedKind.events,
        description="`events` (VEVENT, shown by every calendar app) or `todos` (VTODO).",
    )
    scope: FeedScope = Field(
        default=FeedScope.all,
        description="`all`: your tasks with a due date, the shared lists you can read "
        "included; `list`: one list (`list_id`), yours or shared with you.",
    )
    list_id: Annotated[
        JsonInt | None, Field(ge=1, le=LIST_ID_MAX), Reference(LISTS, Action.LIST_READ)
    ] = Field(
        default=None,
        description="The list of a `list` feed (you need to be able to read it); only with "
        "`scope: list`.",
        examples=[7],
    )

    @model_validator(mode="after")
    def _list_with_list_scope(self) -> Self:
        if (self.scope is FeedScope.list) != (self.list_id is not None):
            raise ValueError("`list_id` is given exactly when `scope` is `list`")
        return self


class CalendarFeedPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[4])
    kind: FeedKind = Field(examples=["events"])
    scope: FeedScope = Field(examples=["list"])
    list_id: int | None = Field(examples=[7])
    created_at: UtcDatetime = Field(examples=["2026-11-26T12:00:00Z"])
    rotated_at: UtcDatetime | None = Field(examples=[None])


class CalendarFeedCreated(CalendarFeedPublic):
    url: str = Field(
        description="The feed's address, with its secret token: shown only in this answer (and a "
        "rotation's). Subscribe to it in a calendar app; anyone holding it reads the feed.",
        examples=["https://tasks.example.com/api/calendar/q3V0aG9yaXR5LXRva2VuLWV4YW1wbGUtMzI.ics"],
    )
