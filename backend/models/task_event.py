"""`task_events`, the transactional outbox: written by the database's triggers, read by the
change feed and delivered by the worker (specs/events.md); and the reminders' tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import CoreSchema, core_schema
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel import SQLModel

from backend.models import task_children
from backend.models.columns import INSTANT, column, id_column, key_to_task
from backend.models.references import not_a_reference
from backend.models.task_children import TaskChild


class ChangeType(StrEnum):
    created = "created"
    updated = "updated"
    completed = "completed"
    reopened = "reopened"
    deleted = "deleted"


class FeedType(str):
    """A string whose schema's `enum` is read from the declared children."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.str_schema(ref="FeedType")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        kinds = [*FEED_TYPES, *(t for c in task_children.CHILDREN for t in c.event_types)]
        about = "What the change feed serves: a task's change, a task of a list shared with "
        about += "the caller reached or no longer reachable, or an event of a task's child."
        return {"description": about, "enum": kinds, "title": "FeedType", "type": "string"}


# A due reminder on its way to the sinks: no change, never in the feed.
REMINDER = "reminder"


# A task's change types (`ChangeType`) and what the feed adds for a member (`FeedType`).
CHANGE_TYPES = tuple(ChangeType)
ACCESS_GRANTED = "access.granted"
ACCESS_ENDED = "access.ended"
FEED_TYPES = (*CHANGE_TYPES, ACCESS_GRANTED, ACCESS_ENDED)
LIST_EVENTS = ("list.created", "list.updated", "list.deleted")
MEMBER_EVENTS = ("member.added", "member.updated", "member.removed")
INVITATION_EVENTS = ("invitation.created", "invitation.revoked", "invitation.accepted")
EVENT_TYPES = (
    *CHANGE_TYPES,
    REMINDER,
    *LIST_EVENTS,
    *MEMBER_EVENTS,
    *INVITATION_EVENTS,
    ACCESS_GRANTED,
    ACCESS_ENDED,
)
# A kept CalDAV object's changes, recorded as delivered, for `sync-collection` alone.
DAV_TYPES = ("dav_object.created", "dav_object.updated", "dav_object.deleted")
# A task's child's events (`TaskChild.event_types`; the nouns above are refused as a child's).
CHILD_EVENT = r"^[a-z][a-z_]*\.(created|updated|deleted)$"
# What each kind of event holds (migrations 0030, 0062).
_KINDS = (
    "CASE WHEN type IN ('created', 'updated', 'completed', 'reopened', 'deleted') THEN task_id "
    "IS NOT NULL AND list IS NULL AND object IS NULL AND (type = 'deleted') = (task IS NULL) "
    "WHEN type = 'reminder' THEN task_id IS NOT NULL AND task IS NOT NULL AND list_id IS NULL "
    "AND list IS NULL AND object IS NULL WHEN type LIKE 'list.%' THEN task_id IS NULL AND task "
    "IS NULL AND object IS NULL AND list_id IS NOT NULL AND (type = 'list.deleted') = (list IS "
    "NULL) WHEN type LIKE 'member.%' OR type LIKE 'invitation.%' THEN task_id IS NULL AND task "
    "IS NULL AND list IS NULL AND list_id IS NOT NULL AND object IS NOT NULL WHEN type LIKE "
    "'access.%' THEN task_id IS NOT NULL AND list_id IS NOT NULL AND list IS NULL AND object "
    "IS NULL AND (type = 'access.ended') = (task IS NULL) ELSE task_id IS NOT NULL AND list IS "
    "NULL AND object IS NOT NULL END"
)


class DeliveryState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"


_NOW = text("clock_timestamp()")
_PENDING = text("state = 'pending'")


class TaskEvent(SQLModel, table=True):
    __tablename__ = "task_events"
    __table_args__ = (
        CheckConstraint(
            "type IN (" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + f") OR type ~ '{CHILD_EVENT}'",
            name="ck_task_events_type",
        ),
        CheckConstraint(_KINDS, name="ck_task_events_task_present"),
        CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="ck_task_events_state"),
        Index("ix_task_events_user_id_id", "user_id", "id"),
        Index("ix_task_events_pending_id", "id", postgresql_where=_PENDING),
        Index("ix_task_events_pending_task_id_id", "task_id", "id", postgresql_where=_PENDING),
        Index("ix_task_events_occurred_at", "occurred_at"),
        Index("ix_task_events_dead_id", "id", postgresql_where=text("state = 'dead'")),
        Index(
            "ix_task_events_pending_list_id_id",
            "list_id",
            "id",
            postgresql_where=text("state = 'pending' AND list_id IS NOT NULL AND task_id IS NULL"),
        ),
        Index(
            "ix_task_events_user_id_list_id_id",
            "user_id",
            "list_id",
            "id",
            postgresql_where=text("list_id IS NOT NULL"),
        ),
        # A CalDAV collection's position (`changes.collection_head`, migration 0074).
        Index(
            "ix_task_events_user_id_no_list_id",
            "user_id",
            "id",
            postgresql_where=text("list_id IS NULL"),
        ),
        Index(
            "ix_task_events_user_id_left_list",
            "user_id",
            text("((changes -> 'list_id') -> 0)"),
            "id",
            postgresql_where=text("changes ? 'list_id'"),
        ),
    )

    id: int | None = id_column()
    event_id: uuid.UUID = column(
        UUID(as_uuid=True),
        nullable=False,
        server_default=text("gen_random_uuid()"),
        info=not_a_reference("the event's own public id"),
    )
    user_id: str = column(Text, nullable=False)
    # A task's change names the task; a list's event names the list (migration 0019).
    task_id: int | None = column(
        BigInteger,
        info=not_a_reference("the outbox keeps a deleted task's changes: history, not a link"),
        default=None,
    )
    list_id: int | None = column(
        BigInteger,
        info=not_a_reference("the outbox keeps a deleted list's events: history, not a link"),
        default=None,
    )
    type: str = column(Text, nullable=False)
    task: dict[str, Any] | None = column(JSONB, default=None)
    # The column is `list`; the attribute is not named after it (it would shadow `list` here).
    list_data: dict[str, Any] | None = column("list", JSONB, default=None)
    occurred_at: datetime = column(INSTANT, nullable=False, server_default=_NOW)
    # Who made the change: the request's caller; None for the worker, the CLI, psql.
    actor_id: str | None = column(
        Text,
        info=not_a_reference("who made a change: an account, kept as history (no key)"),
        default=None,
    )
    # An update's changed fields, `{field: [old, new]}`.
    changes: dict[str, Any] | None = column(JSONB, default=None)
    # A membership's, invitation's or child's event: the row as the change left it.
    object_data: dict[str, Any] | None = column("object", JSONB, default=None)
    state: str = column(Text, nullable=False, server_default=text("'pending'"))
    attempts: int = column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: datetime = column(INSTANT, nullable=False, server_default=_NOW)
    delivered_to: list[str] = column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    last_error: str | None = column(Text, default=None)
    delivered_at: datetime | None = column(INSTANT, default=None)


class TaskEventsPruned(SQLModel, table=True):
    """Per user, the highest `task_events.id` pruning has deleted (see the migration)."""

    __tablename__ = "task_events_pruned"

    user_id: str = column(Text, primary_key=True)
    through_id: int = column(
        BigInteger,
        nullable=False,
        info=not_a_reference("a position in the user's change feed, not a row"),
    )


class EventSink(SQLModel, table=True):
    """An outbox sink a running worker sends to, renewed while it runs (migration 0108): an
    event is delivered once every sink of a live registration has it (specs/events.md)."""

    __tablename__ = "event_sinks"

    worker_id: uuid.UUID = column(UUID(as_uuid=True), primary_key=True)
    sink: str = column(Text, primary_key=True)
    seen_at: datetime = column(INSTANT, nullable=False, server_default=_NOW)


class TaskReminder(SQLModel, table=True):
    """One scheduled reminder instant of a task, kept by a trigger, fired by the worker."""

    __tablename__ = "task_reminders"
    __table_args__ = (
        # One instant per recipient (migration 0034): NULL, the owner, is one recipient too.
        UniqueConstraint(
            "task_id",
            "recipient_id",
            "remind_at",
            name="uq_task_reminders_task_id_recipient_id_remind_at",
            postgresql_nulls_not_distinct=True,
        ),
        # The task is the same user's (migration 0013, specs/data-model.md).
        key_to_task("task_reminders"),
        CheckConstraint(
            "(fired_at IS NULL AND outcome IS NULL) OR (fired_at IS NOT NULL AND outcome IN "
            "('sent', 'late', 'skipped'))",
            name="ck_task_reminders_outcome",
        ),
        Index("ix_task_reminders_due", "remind_at", postgresql_where=text("fired_at IS NULL")),
        Index(
            "ix_task_reminders_recipient_id",
            "recipient_id",
            postgresql_where=text("recipient_id IS NOT NULL"),
        ),
    )

    id: int | None = id_column()
    task_id: int = column(BigInteger, nullable=False)
    user_id: str = column(Text, nullable=False)
    # Who it is for: a member of the task's list (its own reminders), NULL for the owner.
    recipient_id: str | None = column(
        Text,
        ForeignKey("users.id", ondelete="CASCADE"),
        info=not_a_reference(
            "an account: who a scheduled reminder is for (a member of the task's list; NULL for "
            "the task's owner), written by the schedule's triggers only"
        ),
        default=None,
    )
    remind_at: datetime = column(INSTANT, nullable=False)
    fired_at: datetime | None = column(INSTANT, default=None)
    outcome: str | None = column(Text, default=None)


class TaskMemberReminder(SQLModel, table=True):
    """A member's own reminders on a shared list's task (the owner's: the task's `reminders`),
    written by a trigger when the member writes `reminders`."""

    __tablename__ = "task_member_reminders"
    __table_args__ = (
        key_to_task("task_member_reminders", deferrable=True, initially="DEFERRED"),
        CheckConstraint(
            "CASE WHEN jsonb_typeof(reminders) = 'array' "
            "THEN jsonb_array_length(reminders) BETWEEN 1 AND 5 ELSE false END",
            name="ck_task_member_reminders_array",
        ),
        Index("ix_task_member_reminders_member_id", "member_id"),
    )

    user_id: str = column(Text, primary_key=True)
    task_id: int = column(BigInteger, primary_key=True)
    member_id: str = column(
        Text,
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        info=not_a_reference(
            "an account, not a row of the owner's: the member whose reminders they are (the "
            "caller, written by the trigger its own write fires)"
        ),
    )
    reminders: list[dict[str, Any]] = column(JSONB, nullable=False)


# A child with no routes (written through the task's `reminders`) and no events.
MEMBER_REMINDERS = TaskChild(
    TaskMemberReminder,
    noun="member reminder",
    sample={"reminders": [{"minutes_before_due": 30}]},
    events=False,
)
