"""Lists: the table and schemas, and the limits of lists, subtasks and manual order
(specs/api-contract.md, "Lists, subtasks and manual order")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Protocol, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.config import JsonDict
from sqlalchemy import BigInteger, Text, UniqueConstraint, text
from sqlmodel import SQLModel

from backend.models.columns import column, id_column, now_column, user_id_column
from backend.models.common import NOT_SENT, JsonInt, NotNull, UtcDatetime
from backend.models.names import Name, name_doc
from backend.models.references import LISTS, Action, Reference
from backend.models.sharing import Role
from backend.models.types import TASK_ID_MAX

# Limits (422 LIMIT_REACHED): a user's change lock makes "count, then write" exact.
LISTS_PER_USER = 100
TASKS_PER_LIST = 10_000
# Subtasks under one top-level task, at every depth: a subtree is one page and one move.
SUBTASKS_PER_TASK = 200
# Ancestors a task may have (the database's `tasks_check_tree` checks the same).
MAX_DEPTH = 3
# Positions are integers with gaps of this size (migration 0018 places new tasks with it).
POSITION_GAP = 65_536

LIST_ID_MAX = TASK_ID_MAX
COLOR_PATTERN = "^#[0-9A-Fa-f]{6}$"


ListName = Name
# `#rrggbb`, stored and returned lower-case.
Color = Annotated[str, StringConstraints(pattern=COLOR_PATTERN), AfterValidator(str.lower)]
ListId = Annotated[JsonInt, Field(ge=1, le=LIST_ID_MAX)]
# A task named in a body (a parent, a move's anchor): a task id's bounds.
TaskRef = Annotated[JsonInt, Field(ge=1, le=TASK_ID_MAX)]


class TaskList(SQLModel, table=True):
    __tablename__ = "task_lists"
    __table_args__ = (
        # What a task's `list_id` points at (a same-user key, specs/data-model.md).
        UniqueConstraint("user_id", "id"),
        UniqueConstraint("user_id", "name_key"),
        UniqueConstraint("user_id", "position", deferrable=True, initially="IMMEDIATE"),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    name: str = column(Text, nullable=False)
    # `name_key(name)`: the case-insensitive identity of the name (written by the API).
    name_key: str = column(Text, nullable=False)
    color: str | None = column(Text, default=None)
    position: int = column(BigInteger, nullable=False)
    version: int = column(BigInteger, nullable=False, server_default=text("1"), default=1)
    created_at: datetime | None = now_column()
    updated_at: datetime | None = now_column()


class ListRow(Protocol):
    """A row of `task_lists` as `ListService` returns it, with its task counts."""

    id: int
    user_id: str
    name: str
    color: str | None
    position: int
    version: int
    created_at: datetime
    updated_at: datetime
    task_count: int
    open_task_count: int
    role: str


_NAME_DOC = name_doc("lists")
_COLOR_DOC = "`#rrggbb` (hexadecimal, stored lower-case); null: no colour."


class _ListInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in LIST_READ_ONLY}
        return data


class ListCreate(_ListInput):
    """A new list; it goes last among your lists."""

    name: ListName = Field(description=_NAME_DOC, examples=["Groceries"])
    color: Color | None = Field(default=None, description=_COLOR_DOC, examples=["#2e7d32"])


class ListUpdate(_ListInput):
    """PATCH body: only the fields sent change; `color: null` clears the colour."""

    # Not sent: unchanged. Null is refused (a list has a name): not offered by the schema.
    name: Annotated[ListName, NotNull] = Field(
        description=_NAME_DOC, examples=["Shopping"], **NOT_SENT
    )
    color: Color | None = Field(default=None, description=_COLOR_DOC, examples=[None])


class ListReplace(ListUpdate):
    """PUT body: as PATCH, only the fields sent change (at least one)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    @model_validator(mode="after")
    def _names_a_field(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self


# The schema's way of saying "not both anchors" (so a schema-valid body is never refused).
ONE_ANCHOR: JsonDict = {
    "not": {
        "required": ["after_id", "before_id"],
        "properties": {"after_id": {"type": "integer"}, "before_id": {"type": "integer"}},
    }
}


class ListMove(BaseModel):
    """Where to put a list among yours: right after `after_id` or right before `before_id`
    (at most one of them); neither puts it last."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=ONE_ANCHOR)

    after_id: Annotated[ListId, Reference(LISTS, Action.LIST_ORDER)] | None = Field(
        default=None, description="Put it right after this list."
    )
    before_id: Annotated[ListId, Reference(LISTS, Action.LIST_ORDER)] | None = Field(
        default=None, description="Put it right before this list."
    )

    @model_validator(mode="after")
    def _one_anchor(self) -> Self:
        if self.after_id is not None and self.before_id is not None:
            raise ValueError("send after_id or before_id, not both")
        return self


class ListData(BaseModel):
    """A list's own fields: what a list event carries (`list_data`)."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: int = Field(examples=[7])
    user_id: str = Field(examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"])
    name: str = Field(examples=["Groceries"])
    color: str | None = Field(examples=["#2e7d32"])
    position: int = Field(
        description="Its place among your lists, ascending (integers with gaps; compare, "
        "never compute with them).",
        examples=[65536],
    )
    created_at: UtcDatetime = Field(examples=["2026-11-22T17:00:00Z"])
    updated_at: UtcDatetime = Field(examples=["2026-11-22T17:00:00Z"])


class ListPublic(ListData):
    """A list, with its task counts (read in the same statement)."""

    task_count: int = Field(description="Tasks in the list, subtasks included.", examples=[12])
    open_task_count: int = Field(description="Of those, not completed.", examples=[5])
    role: Role = Field(
        description="Your role in the list: `owner` for your own lists; for a list shared "
        "with you, `viewer`, `commenter`, `editor` or `admin`.",
        examples=["owner"],
    )


# Server-owned: sent back whole, dropped.
LIST_READ_ONLY = frozenset(ListPublic.model_fields) - {"name", "color"}
