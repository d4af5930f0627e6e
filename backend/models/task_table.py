"""The `tasks` table (the columns, as the migrations create them) and `TaskRow`, a row of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import BigInteger, Boolean, Index, Integer, Text, UniqueConstraint, func, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy import column as sql_column
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlmodel import SQLModel

from backend.models.columns import (
    INSTANT,
    column,
    id_column,
    key_to_list,
    now_column,
    same_user_key,
    user_id_column,
)
from backend.models.references import not_a_reference
from backend.models.types import Priority, TextArray
from backend.recurrence import DEFAULT_TIME_ZONE


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index(
            "ix_tasks_user_id_completed_created_at_id", "user_id", "completed", "created_at", "id"
        ),
        Index("ix_tasks_user_id_lower_title_id", "user_id", func.lower(text("title")), "id"),
        Index("ix_tasks_user_id_updated_at_id", "user_id", "updated_at", "id"),
        Index("ix_tasks_user_id_priority_id", "user_id", "priority", "id"),
        Index(
            "ix_tasks_user_id_due_date_asc_id",
            "user_id",
            sql_column("due_date").asc().nulls_last(),
            sql_column("id").asc(),
        ),
        Index(
            "ix_tasks_user_id_due_date_desc_id",
            "user_id",
            sql_column("due_date").desc().nulls_last(),
            sql_column("id").desc(),
        ),
        Index("ix_tasks_user_id_tags", "user_id", "tags", postgresql_using="gin"),
        # One next occurrence per completed occurrence, indexed only where set.
        Index(
            "uq_tasks_previous_task_id",
            "previous_task_id",
            unique=True,
            postgresql_where=text("previous_task_id IS NOT NULL"),
        ),
        # What a reference from another per-user row points at (migration 0013).
        UniqueConstraint("user_id", "id"),
        # One task per place among siblings, checked per statement (so one may respace many).
        key_to_list("tasks"),
        same_user_key("tasks", "parent_id", "tasks", onupdate="CASCADE"),
        UniqueConstraint(
            "user_id",
            "list_id",
            "parent_id",
            "position",
            postgresql_nulls_not_distinct=True,
            deferrable=True,
            initially="IMMEDIATE",
        ),
        Index(
            "ix_tasks_user_id_parent_id",
            "user_id",
            "parent_id",
            postgresql_where=text("parent_id IS NOT NULL"),
        ),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    title: str = column(Text, nullable=False)
    description: str | None = column(Text, default=None)
    completed: bool = column(Boolean, nullable=False, server_default=text("false"), default=False)
    completed_at: datetime | None = column(INSTANT, default=None)
    priority: Priority = column(
        SAEnum(
            Priority,
            name="task_priority",
            create_type=False,
            values_callable=lambda members: [m.value for m in members],
        ),
        nullable=False,
        server_default="none",
        default=Priority.none,
    )
    due_date: datetime | None = column(INSTANT, default=None)
    # Due on a day (migration 0095): `due_date` is that day's start in `time_zone`.
    all_day: bool = column(Boolean, nullable=False, server_default=text("false"), default=False)
    tags: list[str] = column(
        TextArray(), nullable=False, server_default=text("'{}'"), default_factory=list
    )
    # Who the task is for: its owner or members of its list (migration 0031).
    assignees: list[str] = column(
        TextArray(), nullable=False, server_default=text("'{}'"), default_factory=list
    )
    created_at: datetime | None = now_column()
    updated_at: datetime | None = now_column()
    # Incremented by every UPDATE: the ETag's (`api.conditional.task_etag`).
    version: int = column(BigInteger, nullable=False, server_default=text("1"), default=1)
    # Recurrence (backend/recurrence.py; the fields: task_fields.py).
    recurrence: str | None = column(Text, default=None)
    time_zone: str = column(
        Text, nullable=False, server_default=text("'UTC'"), default=DEFAULT_TIME_ZONE
    )
    reminders: list[dict[str, Any]] = column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb"), default_factory=list
    )
    series_id: str | None = column(
        UUID(as_uuid=False),
        info=not_a_reference("a series' UUID, shared by its occurrences; no row is named"),
        default=None,
    )
    series_start: datetime | None = column(INSTANT, default=None)
    next_due_date: datetime | None = column(INSTANT, default=None)
    previous_task_id: int | None = column(
        BigInteger,
        info=not_a_reference(
            "provenance: written only by the successor insert, from the caller's own row in the "
            "same statement (services/tasks/service.py), and kept after that row is deleted"
        ),
        default=None,
    )
    # A new task's place is given by the database (trigger `tasks_place`).
    list_id: int | None = column(BigInteger, default=None)
    parent_id: int | None = column(BigInteger, default=None)
    position: int | None = column(BigInteger, nullable=False, default=None)
    # Kept by the database (migration 0024), never written by the app.
    subtask_count: int = column(Integer, nullable=False, server_default=text("0"), default=0)
    open_subtask_count: int = column(Integer, nullable=False, server_default=text("0"), default=0)


class TaskRow(Protocol):
    """A row of `tasks` as the service returns it (a read-only `Row`, never an ORM entity)."""

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    completed_at: datetime | None
    priority: Priority
    due_date: datetime | None
    all_day: bool
    tags: list[str]
    assignees: list[str]
    created_at: datetime
    updated_at: datetime
    version: int
    recurrence: str | None
    time_zone: str
    reminders: list[dict[str, Any]]
    series_id: str | None
    series_start: datetime | None
    next_due_date: datetime | None
    previous_task_id: int | None
    list_id: int | None
    parent_id: int | None
    position: int
    # Null in a task read from a change event.
    subtask_count: int | None
    open_subtask_count: int | None

    # Also a tuple of the columns, in table order (`TaskService.TASK_COLUMNS`).
    def __getitem__(self, index: int) -> Any: ...
