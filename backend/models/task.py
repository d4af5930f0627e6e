"""The `tasks` table and its schema family: TaskCreate / TaskReplace / TaskUpdate / TaskPublic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Text,
    func,
    text,
)
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from backend.models.common import StorableText, UtcDatetime

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
# Task ids are BIGINT identities; anything outside this range cannot exist.
TASK_ID_MAX = 2**63 - 1


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index(
            "ix_tasks_user_id_completed_created_at_id", "user_id", "completed", "created_at", "id"
        ),
        Index("ix_tasks_user_id_lower_title_id", "user_id", func.lower(text("title")), "id"),
    )

    id: int | None = SQLField(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    user_id: str = SQLField(
        sa_column=Column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    title: str = SQLField(sa_column=Column(Text, nullable=False))
    description: str | None = SQLField(default=None, sa_column=Column(Text))
    completed: bool = SQLField(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    completed_at: datetime | None = SQLField(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    created_at: datetime | None = SQLField(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    updated_at: datetime | None = SQLField(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH),
    StorableText,
]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH), StorableText]

# Server-owned fields. Frontends often send a task object back whole, so these are accepted
# and dropped; any other unknown field is a 422.
READ_ONLY_FIELDS = frozenset({"id", "user_id", "completed_at", "created_at", "updated_at"})


class _TaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
        return data


class TaskCreate(_TaskInput):
    """A new task. Only `title` is required."""

    title: Title = Field(description="1-200 characters, trimmed.", examples=["Buy milk"])
    description: Description | None = Field(
        default=None, description="Up to 2000 characters.", examples=["2 litres, semi-skimmed"]
    )
    completed: StrictBool = Field(default=False, examples=[False])


class TaskReplace(TaskCreate):
    """PUT body: replaces every editable field; omitted optional fields take their defaults."""


class TaskUpdate(_TaskInput):
    """PATCH body: only the fields sent change. `description: null` clears it."""

    title: Title | None = Field(default=None, examples=["Buy oat milk"])
    description: Description | None = Field(default=None, examples=[None])
    completed: StrictBool | None = Field(default=None, examples=[True])

    @model_validator(mode="after")
    def _not_null(self) -> TaskUpdate:
        for name in ("title", "completed"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TaskCompletion(BaseModel):
    """Optional body of `/complete`: sets the state instead of toggling it."""

    model_config = ConfigDict(extra="forbid")

    completed: StrictBool = Field(examples=[True])


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[42])
    user_id: str = Field(examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"])
    title: str = Field(examples=["Buy milk"])
    description: str | None = Field(examples=["2 litres, semi-skimmed"])
    completed: bool = Field(examples=[False])
    completed_at: UtcDatetime | None = Field(examples=[None])
    created_at: UtcDatetime = Field(examples=["2026-11-22T17:00:00Z"])
    updated_at: UtcDatetime = Field(examples=["2026-11-22T17:00:00Z"])


class TaskStatus(StrEnum):
    all = "all"
    pending = "pending"
    completed = "completed"


class TaskSort(StrEnum):
    created = "created"
    title = "title"  # type: ignore[assignment]  # shadows str.title; the API value is "title"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"
