"""The trash (specs/api-contract.md, "The trash"): a deleted task with its subtree and children
as they were (`snapshot`), under the task's id, kept `TRASH_DAYS`; the table and schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column
from backend.models.common import DataEnvelope, ListEnvelope, UtcDatetime
from backend.models.references import not_a_reference
from backend.models.task import TaskPublic

# How long a deleted task stays restorable; the events worker purges it after that.
TRASH_DAYS = 30


class TaskTrash(SQLModel, table=True):
    __tablename__ = "task_trash"
    __table_args__ = (
        UniqueConstraint("user_id", "id", name="uq_task_trash_user_id_id"),
        # The listing, a member's arm (a list's trash), the worker's purge.
        Index("ix_task_trash_user_id_deleted_at_id", "user_id", "deleted_at", "id"),
        Index("ix_task_trash_list_id", "list_id", postgresql_where=text("list_id IS NOT NULL")),
        Index("ix_task_trash_deleted_at", "deleted_at"),
    )

    # The deleted task's id (task ids are never reused).
    id: int = column(BigInteger, primary_key=True, autoincrement=False)
    # The task's owner's space: a shared list's trash is its owner's, as its tasks are.
    user_id: str = column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # No key: the list may be deleted after the task; a member reaches the row through it.
    list_id: int | None = column(
        BigInteger,
        info=not_a_reference(
            "the list a deleted task was in, possibly another's (shared: in its owner's space) or "
            "deleted since; read through the access predicate, never followed (migration 0048)"
        ),
        default=None,
    )
    title: str = column(Text, nullable=False)
    deleted_by: str | None = column(Text, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    deleted_at: datetime | None = column(
        INSTANT, nullable=False, server_default=func.now(), default=None
    )
    snapshot: Any = column(JSONB, nullable=False)


class TaskTrashStored(SQLModel, table=True):
    """A trashed task's stored child's row (an attachment), written by a trigger from the
    registry, so the quota is an indexed sum and "is this key named?" an index probe; no
    `user_id`: read through its trash row (specs/storage.md, "Stored children")."""

    __tablename__ = "task_trash_stored"
    __table_args__ = (
        PrimaryKeyConstraint("trash_id", "child", "n", name="pk_task_trash_stored"),
        Index("ix_task_trash_stored_stored_by", "stored_by"),
        Index("ix_task_trash_stored_storage_key", "storage_key"),
    )

    trash_id: int = column(
        BigInteger,
        ForeignKey(
            "task_trash.id", ondelete="CASCADE", name="fk_task_trash_stored_trash_id_task_trash"
        ),
        nullable=False,
    )
    # The child's table, as registered, and the row's place in the snapshot's array of it.
    child: str = column(Text, nullable=False)
    n: int = column(Integer, nullable=False)
    # As the snapshot holds it (an account's id is never reused: no key to `users`).
    stored_by: str | None = column(Text, default=None)
    size: int = column(BigInteger, nullable=False)
    storage_key: str = column(Text, nullable=False)


class TrashedTaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The deleted task's id (a restore keeps it).", examples=[42])
    title: str = Field(examples=["Buy milk"])
    list_id: int | None = Field(
        description="The list it was in (null: none, or the list was deleted since).", examples=[7]
    )
    deleted_by: str | None = Field(
        description="Who deleted it (null: that account was deleted since).",
        examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"],
    )
    deleted_at: UtcDatetime = Field(examples=["2026-11-26T12:00:00Z"])
    purge_at: UtcDatetime = Field(
        description=f"When it leaves the trash for good ({TRASH_DAYS} days after its deletion).",
        examples=["2026-12-26T12:00:00Z"],
    )
    subtask_count: int = Field(
        description="Its subtasks at every depth, restored with it.", examples=[3]
    )
    comment_count: int = Field(description="Its comments and its subtasks'.", examples=[2])


class TrashEnvelope(ListEnvelope[TrashedTaskPublic]):
    """A page of the trash, most recently deleted first."""


class RestoredTaskEnvelope(DataEnvelope[TaskPublic]):
    """The task as restored."""
