"""How a task listing becomes SQL: filters, sort keys and keyset (cursor) conditions.

Pure statement building; `TaskService` applies the user scope and runs it. Every sort key has
an index led by `user_id` and ended by `id`, so a page is an index range scan over the caller's
rows, whatever the page number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Text, and_, any_, false, func, literal, or_, select, true, tuple_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from backend.db.scope import owned
from backend.models import Priority, SortOrder, Task, TaskSort, TaskStatus
from backend.models.task_list import TaskList

# `list_id` / `parent_id` filters: an id, or this for "no list" / "top level".
NONE = "none"
# A filter on a placement column: an id, NONE, or None for no filter.
PlacedFilter = int | str | None

# Default direction per key: newest first, A to Z, soonest due first, most important first.
DEFAULT_ORDER = {
    TaskSort.created: SortOrder.desc,
    TaskSort.updated: SortOrder.desc,
    TaskSort.title: SortOrder.asc,
    TaskSort.due_date: SortOrder.asc,
    TaskSort.priority: SortOrder.desc,
    TaskSort.position: SortOrder.asc,
}


@dataclass(frozen=True)
class TaskFilters:
    status: TaskStatus = TaskStatus.all
    priorities: tuple[Priority, ...] = ()
    tags: tuple[str, ...] = ()
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool | None = None
    q: str | None = None
    updated_since: datetime | None = None
    recurring: bool | None = None
    list_id: PlacedFilter = None
    # A list named by its name's key (`name_key`; MCP's `list`), instead of `list_id`.
    list_key: str | None = None
    parent_id: PlacedFilter = None

    def __post_init__(self) -> None:
        # One normal form whoever builds the filters (REST query string, MCP arguments):
        # repeated values count once, an empty search is no search.
        object.__setattr__(self, "priorities", tuple(dict.fromkeys(self.priorities)))
        object.__setattr__(self, "tags", tuple(dict.fromkeys(self.tags)))
        object.__setattr__(self, "q", self.q or None)

    def fingerprint(self) -> str:
        """A stable text form, so a cursor can be bound to the filters that produced it."""
        values: dict[str, Any] = {
            "status": self.status.value,
            "priorities": sorted(p.value for p in self.priorities),
            "tags": sorted(self.tags),
            "due_before": self.due_before.isoformat() if self.due_before else None,
            "due_after": self.due_after.isoformat() if self.due_after else None,
            "overdue": self.overdue,
            "q": self.q,
            "updated_since": self.updated_since.isoformat() if self.updated_since else None,
        }
        # Only when set: cursors issued before a filter existed stay valid.
        if self.recurring is not None:
            values["recurring"] = self.recurring
        if self.list_id is not None:
            values["list_id"] = self.list_id
        if self.list_key is not None:
            values["list_key"] = self.list_key
        if self.parent_id is not None:
            values["parent_id"] = self.parent_id
        return json.dumps(values, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Keyset:
    """Where the previous page ended: the last row's sort key and id."""

    key: datetime | str | int | None
    id: int


@dataclass(frozen=True)
class TaskListQuery:
    filters: TaskFilters = field(default_factory=TaskFilters)
    sort: TaskSort = TaskSort.created
    order: SortOrder | None = None
    limit: int = 100
    after: Keyset | None = None
    include_total: bool = False

    @property
    def direction(self) -> SortOrder:
        return self.order or DEFAULT_ORDER[self.sort]


def sort_key(sort: TaskSort) -> Any:  # a column or an expression over one
    """The expression a listing is ordered by (before the id tie-breaker)."""
    if sort is TaskSort.created:
        return col(Task.created_at)
    if sort is TaskSort.updated:
        return col(Task.updated_at)
    if sort is TaskSort.title:
        return func.lower(col(Task.title), type_=Text())
    if sort is TaskSort.due_date:
        return col(Task.due_date)
    if sort is TaskSort.position:
        return col(Task.position)
    return col(Task.priority)


def order_by(sort: TaskSort, direction: SortOrder) -> list[Any]:
    key, task_id = sort_key(sort), col(Task.id)
    ordered: list[Any]
    if direction is SortOrder.asc:
        ordered = [key.asc(), task_id.asc()]
    else:
        ordered = [key.desc(), task_id.desc()]
    if sort is TaskSort.due_date:
        # Tasks without a due date come last either way (matching the two due_date indexes).
        ordered[0] = ordered[0].nulls_last()
    return ordered


def after_keyset(sort: TaskSort, direction: SortOrder, keyset: Keyset) -> ColumnElement[bool]:
    """Rows strictly after `keyset` in this ordering."""
    key, task_id = sort_key(sort), col(Task.id)

    def later(left: Any, right: Any) -> ColumnElement[bool]:
        result: ColumnElement[bool] = left > right if direction is SortOrder.asc else left < right
        return result

    if sort is TaskSort.due_date:
        if keyset.key is None:  # already in the trailing no-due-date block
            return and_(key.is_(None), later(task_id, keyset.id))
        row_after = later(tuple_(key, task_id), tuple_(literal(keyset.key, key.type), keyset.id))
        return or_(row_after, key.is_(None))
    return later(tuple_(key, task_id), tuple_(literal(keyset.key, key.type), keyset.id))


def escape_like(term: str) -> str:
    """Make %, _ and the escape character itself literal in a LIKE pattern."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_conditions(filters: TaskFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    completed, due = col(Task.completed), col(Task.due_date)
    if filters.status is not TaskStatus.all:
        # `=`, not `IS`: only `=` can use the (user_id, completed, ...) index.
        conditions.append(
            completed == (true() if filters.status is TaskStatus.completed else false())
        )
    if filters.priorities:
        # `= ANY(array)`, one bound value: a statement is sent with plain named parameters.
        priority = Task.__table__.c.priority  # type: ignore[attr-defined]
        chosen = [p.value for p in filters.priorities]
        conditions.append(priority == any_(literal(chosen, ARRAY(Text)).cast(ARRAY(priority.type))))
    if filters.tags:
        conditions.append(col(Task.tags).contains(list(filters.tags)))
    if filters.due_before is not None:
        conditions.append(due < filters.due_before)
    if filters.due_after is not None:
        conditions.append(due >= filters.due_after)
    if filters.overdue is True:
        conditions.append(and_(completed == false(), due < func.now()))
    elif filters.overdue is False:
        conditions.append(or_(completed == true(), due.is_(None), due >= func.now()))
    if filters.q:
        pattern = f"%{escape_like(filters.q)}%"
        conditions.append(
            or_(
                col(Task.title).ilike(pattern, escape="\\"),
                col(Task.description).ilike(pattern, escape="\\"),
            )
        )
    if filters.updated_since is not None:
        conditions.append(col(Task.updated_at) >= filters.updated_since)
    if filters.recurring is not None:
        recurrence = col(Task.recurrence)
        conditions.append(recurrence.is_not(None) if filters.recurring else recurrence.is_(None))
    if filters.list_id is not None:
        conditions.append(_placed(col(Task.list_id), filters.list_id))
    if filters.list_key is not None:
        lists = TaskList.__table__.c  # type: ignore[attr-defined]
        named = owned(select(lists.id).where(lists.name_key == filters.list_key), lists.user_id)
        conditions.append(col(Task.list_id) == named.scalar_subquery())
    if filters.parent_id is not None:
        conditions.append(_placed(col(Task.parent_id), filters.parent_id))
    return conditions


def _placed(column: Any, value: int | str) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = column.is_(None) if value == NONE else column == value
    return condition
