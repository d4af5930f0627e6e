"""The task listing's parameters for every transport: REST's query string
(`api/routes/tasks.ListParams`) and MCP's `list_tasks` arguments
(`mcp/tools.ListTasksArguments`) declare their fields with these types and build the
service's query with `listing_query`, so each filter is validated, bounded and normalized by
one rule. The transports keep only what is theirs: parameter names, descriptions, and how a
value arrives (query-string text, or strict JSON with a bare value for a one-item list)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from backend.models import Priority, SortOrder, TaskSort, TaskStatus
from backend.models.common import StorableText
from backend.models.task import TASK_ID_MAX, Instant, Tag
from backend.models.task_list import name_key
from backend.models.text import nfc
from backend.services.task_listing import PlacedFilter, TaskFilters, TaskListQuery

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# Per repeatable filter (priorities, tags): bounds the statement a listing builds.
MAX_FILTER_VALUES = 10
FilterValuesBound = Field(max_length=MAX_FILTER_VALUES)
SEARCH_MAX_LENGTH = 200

# In NFC, as titles and descriptions are stored: a decomposed "é" finds the stored one.
SearchTerm = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=SEARCH_MAX_LENGTH),
    StorableText,
    AfterValidator(nfc),
]
# Any of these priorities.
PriorityFilter = Annotated[list[Priority], FilterValuesBound]
# All of these tags, each normalized as a stored tag is.
TagFilter = Annotated[list[Tag], FilterValuesBound]
# A bound of a due-date range: `due_before` is exclusive, `due_after` inclusive.
DueBound = Instant
# The page size; each transport adds how an integer arrives (digits, or a strict JSON integer).
PageLimit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
# `list_id` / `parent_id` filters: an id (each transport adds how an integer arrives), or
# `none`: in no list / top level.
PlacedId = Annotated[int, Field(ge=1, le=TASK_ID_MAX)]
NoneWord = Literal["none"]


def listing_query(
    *,
    status: TaskStatus = TaskStatus.all,
    priorities: list[Priority] | tuple[Priority, ...] = (),
    tags: list[str] | tuple[str, ...] = (),
    due_before: datetime | None = None,
    due_after: datetime | None = None,
    overdue: bool | None = None,
    search: str | None = None,
    updated_since: datetime | None = None,
    recurring: bool | None = None,
    list_id: PlacedFilter = None,
    list_name: str | None = None,
    parent_id: PlacedFilter = None,
    sort: TaskSort = TaskSort.created,
    order: SortOrder | None = None,
    limit: int = DEFAULT_LIMIT,
    include_total: bool = False,
) -> TaskListQuery:
    """The service's query for validated listing parameters (the first page; a cursor, which
    only REST has, sets `after`)."""
    filters = TaskFilters(
        status=status,
        priorities=tuple(priorities),
        tags=tuple(tags),
        due_before=due_before,
        due_after=due_after,
        overdue=overdue,
        q=search,
        updated_since=updated_since,
        recurring=recurring,
        list_id=list_id,
        list_key=None if list_name is None else name_key(list_name),
        parent_id=parent_id,
    )
    return TaskListQuery(
        filters=filters, sort=sort, order=order, limit=limit, include_total=include_total
    )
