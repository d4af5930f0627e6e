"""A task listing as SQL: filters, sort keys and keyset conditions. Every sort key has an index
`(user_id, <key>, id)`, so a page is a range scan whatever its number; a statement is built once per
shape and its values bound, so a known shape compiles nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from backend.db.scope import OWNER, owned
from backend.errors import ServiceUnavailable
from backend.models import Priority, SortOrder, Task, TaskSort, TaskStatus
from backend.models.saved_filter import SavedFilter
from backend.models.task_list import TaskList

# `list_id` / `parent_id` filters: an id, or this for "no list" / "top level".
NONE = "none"
# A filter on a placement column: an id, NONE, or None for no filter.
PlacedFilter = int | str | None
# Its shape: NONE, an id (`ID`, bound), or None for no filter.
ID = "id"

# Default direction per key: newest first, A to Z, soonest due first, most important first.
DEFAULT_ORDER = {
    TaskSort.created: SortOrder.desc,
    TaskSort.updated: SortOrder.desc,
    TaskSort.title: SortOrder.asc,
    TaskSort.due_date: SortOrder.asc,
    TaskSort.priority: SortOrder.desc,
    TaskSort.position: SortOrder.asc,
}


# The parameters of a listing's conditions, typed as the columns they are compared with.
_T = Task.__table__.c  # type: ignore[attr-defined]
_L = TaskList.__table__.c  # type: ignore[attr-defined]
_PRIORITIES = bindparam("priorities", type_=ARRAY(Text))
_TAGS = bindparam("tags", type_=_T.tags.type)
_DUE_BEFORE = bindparam("due_before", type_=_T.due_date.type)
_DUE_AFTER = bindparam("due_after", type_=_T.due_date.type)
_PATTERN = bindparam("pattern", type_=Text())  # a LIKE pattern (`escape_like`)
_UPDATED_SINCE = bindparam("updated_since", type_=_T.updated_at.type)
_LIST_ID = bindparam("list_id", type_=_T.list_id.type)
_LIST_KEY = bindparam("list_key", type_=_L.name_key.type)
_PARENT_ID = bindparam("parent_id", type_=_T.parent_id.type)
_AFTER_ID = bindparam("after_id", type_=_T.id.type)
_ASSIGNEE = bindparam("assignee", type_=Text())
_S = SavedFilter.__table__.c  # type: ignore[attr-defined]
_FILTER_ID = bindparam("filter_id", type_=_S.id.type)
_FILTER_QUERY = bindparam("filter_query", type_=_S.query.type)
# A filter applied by its name (MCP): the page holds only while the name still names it.
_FILTER_NAME = bindparam("filter_name_key", None, type_=_S.name_key.type)
LIMIT = bindparam("limit", type_=Integer())


@dataclass(frozen=True)
class FilterShape:
    """Which filters a listing has, without their values (`TaskFilters.shape`)."""

    status: TaskStatus = TaskStatus.all
    priorities: bool = False
    tags: bool = False
    due_before: bool = False
    due_after: bool = False
    overdue: bool | None = None
    q: bool = False
    updated_since: bool = False
    recurring: bool | None = None
    list_id: str | None = None  # NONE, ID or None
    list_key: bool = False
    parent_id: str | None = None  # NONE, ID or None
    assignee: str | None = None  # ME, NONE, ID or None
    saved: bool = False  # a saved filter applied: holds only at the version read


# `assignee` filter: the caller, nobody (NONE), or a user id.
ME = "me"


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
    assignee: str | None = None  # ME, NONE or a user id
    # The saved filter applied (`?filter=`): id, stored query, name key; it matches while they hold.
    saved: tuple[int, Mapping[str, Any], str | None] | None = None

    def __post_init__(self) -> None:
        # One normal form for every door: repeated values count once, an empty search is no search.
        object.__setattr__(self, "priorities", tuple(dict.fromkeys(self.priorities)))
        object.__setattr__(self, "tags", tuple(dict.fromkeys(self.tags)))
        object.__setattr__(self, "q", self.q or None)

    def shape(self) -> FilterShape:
        """Which filters are given: what the statement is built from."""
        return FilterShape(
            status=self.status,
            priorities=bool(self.priorities),
            tags=bool(self.tags),
            due_before=self.due_before is not None,
            due_after=self.due_after is not None,
            overdue=self.overdue,
            q=self.q is not None,
            updated_since=self.updated_since is not None,
            recurring=self.recurring,
            list_id=_placed_shape(self.list_id),
            list_key=self.list_key is not None,
            parent_id=_placed_shape(self.parent_id),
            assignee=self.assignee if self.assignee in (None, ME, NONE) else ID,
            saved=self.saved is not None,
        )

    def values(self) -> dict[str, Any]:
        """The values the shape's conditions bind (`filter_conditions`), by parameter name."""
        values: dict[str, Any] = {
            "priorities": [p.value for p in self.priorities] or None,
            "tags": list(self.tags) or None,
            "due_before": self.due_before,
            "due_after": self.due_after,
            "pattern": None if self.q is None else f"%{escape_like(self.q)}%",
            "updated_since": self.updated_since,
            "list_id": None if self.list_id == NONE else self.list_id,
            "list_key": self.list_key,
            "parent_id": None if self.parent_id == NONE else self.parent_id,
            "assignee": None if self.assignee in (ME, NONE) else self.assignee,
            "filter_id": None if self.saved is None else self.saved[0],
            "filter_query": None if self.saved is None else dict(self.saved[1]),
            "filter_name_key": None if self.saved is None else self.saved[2],
        }
        return {name: value for name, value in values.items() if value is not None}

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
        for name in ("recurring", "list_id", "list_key", "parent_id", "assignee"):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        if self.saved is not None:  # its query's values are the filters' above
            values["saved"] = self.saved[0]
        return json.dumps(values, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Keyset:
    """Where the previous page ended: the last row's sort key and id."""

    key: datetime | str | int | None
    id: int


# Where a listing starts: the first page (None), after a keyset, or among the undated tasks.
After = Literal["key", "no due date"] | None


@dataclass(frozen=True)
class ListingShape:
    """What a listing's statement is built from (`TaskListQuery.shape`), once per shape."""

    filters: FilterShape
    sort: TaskSort
    direction: SortOrder
    after: After
    feed_position: bool  # whether it reads the caller's change-feed position too


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

    def shape(self, *, feed_position: bool = False) -> ListingShape:
        after: After = None
        if self.after is not None:
            in_no_due_date = self.sort is TaskSort.due_date and self.after.key is None
            after = "no due date" if in_no_due_date else "key"
        return ListingShape(self.filters.shape(), self.sort, self.direction, after, feed_position)

    def values(self) -> dict[str, Any]:
        """The values the shape's statement binds (a limit one more than the page: more?)."""
        values = {**self.filters.values(), "limit": self.limit + 1}
        if self.after is not None:
            values.update(after_key=self.after.key, after_id=self.after.id)
        return values


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


def after_keyset(shape: ListingShape) -> ColumnElement[bool]:
    """Rows strictly after the keyset `:after_key`, `:after_id` in the shape's ordering."""
    key, task_id = sort_key(shape.sort), col(Task.id)
    after = tuple_(bindparam("after_key", type_=key.type), _AFTER_ID)

    def later(left: Any, right: Any) -> ColumnElement[bool]:
        asc = shape.direction is SortOrder.asc
        result: ColumnElement[bool] = left > right if asc else left < right
        return result

    if shape.after == "no due date":  # already in the trailing no-due-date block
        return and_(key.is_(None), later(task_id, _AFTER_ID))
    if shape.sort is TaskSort.due_date:
        return or_(later(tuple_(key, task_id), after), key.is_(None))
    return later(tuple_(key, task_id), after)


_ALL_DAY = _T.all_day


def due_end() -> ColumnElement[Any]:
    """When a task stops being due: a day's end on its zone's clock, else its instant."""
    return func.task_due_end(_T.due_date, _T.all_day, _T.time_zone, type_=_T.due_date.type)


def escape_like(term: str) -> str:
    """Make %, _ and the escape character itself literal in a LIKE pattern."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_conditions(shape: FilterShape) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    completed, due = col(Task.completed), col(Task.due_date)
    if shape.status is not TaskStatus.all:
        # `=`, not `IS`: only `=` can use the (user_id, completed, ...) index.
        conditions.append(
            completed == (true() if shape.status is TaskStatus.completed else false())
        )
    if shape.priorities:
        # `= ANY(array)`, one bound value: a statement is sent with plain named parameters.
        conditions.append(_T.priority == any_(_PRIORITIES.cast(ARRAY(_T.priority.type))))
    if shape.tags:
        conditions.append(col(Task.tags).contains(_TAGS))
    # A day runs to `due_end`; the start's condition stays, so the due_date index bounds the scan.
    if shape.due_before:
        conditions.append(
            and_(due < _DUE_BEFORE, or_(false() == _ALL_DAY, due_end() <= _DUE_BEFORE))
        )
    if shape.due_after:
        conditions.append(due >= _DUE_AFTER)
    if shape.overdue is True:
        conditions.append(and_(completed == false(), due < func.now(), due_end() <= func.now()))
    elif shape.overdue is False:
        conditions.append(
            or_(completed == true(), due.is_(None), due >= func.now(), due_end() > func.now())
        )
    if shape.q:
        conditions.append(
            or_(
                col(Task.title).ilike(_PATTERN, escape="\\"),
                col(Task.description).ilike(_PATTERN, escape="\\"),
            )
        )
    if shape.updated_since:
        conditions.append(col(Task.updated_at) >= _UPDATED_SINCE)
    if shape.recurring is not None:
        recurrence = col(Task.recurrence)
        conditions.append(recurrence.is_not(None) if shape.recurring else recurrence.is_(None))
    if shape.list_id is not None:
        conditions.append(_placed(col(Task.list_id), shape.list_id, _LIST_ID))
    if shape.list_key:
        named = owned(select(_L.id).where(_L.name_key == _LIST_KEY), _L.user_id)
        conditions.append(col(Task.list_id) == named.scalar_subquery())
    if shape.parent_id is not None:
        conditions.append(_placed(col(Task.parent_id), shape.parent_id, _PARENT_ID))
    if shape.assignee == NONE:
        conditions.append(func.cardinality(_T.assignees) == 0)
    elif shape.assignee is not None:
        who = bindparam(OWNER) if shape.assignee == ME else _ASSIGNEE
        conditions.append(who == any_(_T.assignees))
    if shape.saved:
        # Uncorrelated: evaluated once (an InitPlan), the page's index scan unchanged.
        conditions.append(filter_held())
    return conditions


class FilterChanged(ServiceUnavailable):
    """The applied saved filter changed since it was read: the listing reads it again."""

    message = "The saved filter kept changing while it was applied; retry"


def filter_held() -> ColumnElement[bool]:
    """The applied saved filter still holds its query and name (NULL binds: none, folded away)."""
    named = or_(_FILTER_NAME.is_(None), _S.name_key == _FILTER_NAME)
    current = owned(
        select(_S.id).where(_S.id == _FILTER_ID, _S.query == _FILTER_QUERY, named), _S.user_id
    )
    return exists(current)


def _placed_shape(value: PlacedFilter) -> str | None:
    return None if value is None else NONE if value == NONE else ID


def _placed(column: Any, shape: str, value: Any) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = column.is_(None) if shape == NONE else column == value
    return condition
