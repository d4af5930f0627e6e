"""The task listing's parameters, declared once (`LISTING_PARAMS`) for REST's query string
(`api/routes/tasks.ListParams`) and MCP's `list_tasks` (`mcp/tools/tasks.ListTasksArguments`):
both are built from it (`listing_fields`) and build the service's query with it (`query_of`),
so each filter has one rule. A transport adds only how a value arrives (query-string text, or
strict JSON); where published names or words differ (`q` / `search`), the one entry gives both."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, Field, Strict, StrictBool, StringConstraints

from backend.models import Priority, SortOrder, TaskSort, TaskStatus
from backend.models.common import DecimalDigits, StorableText
from backend.models.names import name_key
from backend.models.references import LISTS, TASKS, Action, NotAReference, Reference
from backend.models.task import TASK_ID_MAX, Instant, Tag
from backend.models.task_list import ListName
from backend.models.text import nfc
from backend.models.types import AssigneeId
from backend.services.tasks.task_listing import PlacedFilter, TaskFilters, TaskListQuery

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
# A bound of a due-date range: `due_before` is exclusive, `due_after` inclusive.
DueBound = Instant
# Not a task's due date: a bound is an instant, a plain date its midnight UTC (the MCP wording).
DUE_BOUND_DESCRIPTION = (
    "An instant: ISO 8601 with an offset (2026-12-01T00:00:00+01:00), or a date meaning its "
    "midnight UTC. A task due on a day matches due_after when the day starts at or after it, "
    "due_before when the day ends at or before it (on the task's clock)."
)
# The page size; each transport adds how an integer arrives (digits, or a strict JSON integer).
PageLimit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
# `list_id` / `parent_id` filters: an id (each transport adds how an integer arrives), or
# `none`: in no list / top level.
PlacedId = Annotated[int, Field(ge=1, le=TASK_ID_MAX)]
NoneWord = Literal["none"]
# The list and the parent the listing filters by: rows the caller must be able to read; a
# user id names none (an id nobody the caller sees is assigned matches no task).
_IN_LIST = Reference(LISTS, Action.LIST_READ)
_UNDER_PARENT = Reference(TASKS, Action.LIST_READ)
_ASSIGNEE_FILTER = NotAReference("a filter: the tasks the caller sees assigned to that id")


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
    assignee: str | None = None,
    sort: TaskSort = TaskSort.created,
    order: SortOrder | None = None,
    limit: int = DEFAULT_LIMIT,
    include_total: bool = False,
    saved: tuple[int, Mapping[str, Any], str | None] | None = None,
) -> TaskListQuery:
    """The service's query (its first page) for validated listing parameters; `saved`: the
    saved filter applied (id, stored query, the name key it was named by or None)."""
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
        assignee=assignee,
        saved=saved,
    )
    return TaskListQuery(
        filters=filters, sort=sort, order=order, limit=limit, include_total=include_total
    )


# What an MCP argument naming a list by name says (list_tasks' filter, and the list tools).
LIST_NAME_DESCRIPTION = (
    "A list by its name, as the user says it (case ignored), instead of list_id; an unknown "
    "name is an error that lists the user's lists."
)


class Arrival(Protocol):
    """How a value arrives on one transport: the metadata an integer takes (query-string
    digits, or a strict JSON integer), a flag's type, and a repeatable filter's list type."""

    integer: Any
    flag: Any

    def values(self, item: Any) -> Any: ...

    def names(self, reference: Reference) -> Any:
        """What a row id the listing filters by declares: the row it names, as a request
        names it (`reference`), or none (a saved filter's, kept while the row goes)."""


@dataclass(frozen=True)
class Spelling:
    """A listing parameter as one transport shows it: its name there (when not the
    parameter's), its alias, its description and examples."""

    description: str
    name: str | None = None
    alias: str | None = None
    examples: list[Any] | None = None


@dataclass(frozen=True)
class ListingParam:
    """One listing parameter: `listing_query`'s keyword, its type given how a value arrives,
    its default, and how REST and MCP show it (None: that transport does not take it)."""

    keyword: str
    type: Callable[[Arrival], Any]
    default: Any = None
    rest: Spelling | None = None
    mcp: Spelling | None = None
    factory: Callable[[], Any] | None = None

    def spelling(self, transport: str) -> Spelling | None:
        return self.rest if transport == "rest" else self.mcp

    def attribute(self, transport: str) -> str:
        spelling = self.spelling(transport)
        return (spelling and spelling.name) or self.keyword


_SORT_REST = (
    "`created` (default newest first), `updated` (newest first), `title` (A to Z, "
    "case-insensitive), `due_date` (soonest first; no due date last in both orders), "
    "`priority` (high first), `position` (manual order: use it with `list_id` and "
    "`parent_id`, whose siblings it orders). Ties are broken by id."
)
_SORT_MCP = (
    "created (newest first), updated (newest first), title (A to Z), due_date (soonest first, "
    "undated last), priority (high first), position (manual order, with list and parent_id)."
)

# Every listing parameter, in the REST query string's order (the OpenAPI's, and the order of
# validation errors). Where REST and MCP differ (a name, the words) the entry says both.
LISTING_PARAMS: tuple[ListingParam, ...] = (
    ListingParam(
        "status",
        lambda a: TaskStatus,
        TaskStatus.all,
        rest=Spelling("Filter by completion state.", examples=["pending"]),
        mcp=Spelling("all (default), pending or completed."),
    ),
    ListingParam(
        "priorities",
        lambda a: a.values(Priority),
        factory=list,
        rest=Spelling(
            "Any of these priorities (repeatable).", "priority", examples=[["high", "medium"]]
        ),
        mcp=Spelling("Any of these priorities.", "priority"),
    ),
    ListingParam(
        "tags",
        lambda a: a.values(Tag),
        factory=list,
        rest=Spelling("Has all of these tags (repeatable).", "tag", examples=[["work"]]),
        mcp=Spelling("Has all of these tags.", "tag"),
    ),
    ListingParam(
        "due_before",
        lambda a: DueBound | None,
        rest=Spelling("Due strictly before this instant or date.", examples=["2026-12-01"]),
        mcp=Spelling(f"Due strictly before this. {DUE_BOUND_DESCRIPTION}"),
    ),
    ListingParam(
        "due_after",
        lambda a: DueBound | None,
        rest=Spelling("Due at or after this instant or date.", examples=["2026-11-22T00:00:00Z"]),
        mcp=Spelling(f"Due at or after this. {DUE_BOUND_DESCRIPTION}"),
    ),
    ListingParam(
        "overdue",
        lambda a: a.flag | None,
        rest=Spelling("`true`: pending and past due. `false`: everything else.", examples=[True]),
        mcp=Spelling("true: pending and past due; false: everything else."),
    ),
    ListingParam(
        "search",
        lambda a: SearchTerm | None,
        rest=Spelling(
            "Case-insensitive substring of title or description; "
            "`%`, `_` and `\\` match literally.",
            "q",
        ),
        mcp=Spelling("Case-insensitive text in the title or description."),
    ),
    ListingParam(
        "updated_since",
        lambda a: Instant | None,
        rest=Spelling(
            "Changed at or after this instant (inclusive), for polling clients.",
            examples=["2026-11-22T17:00:00Z"],
        ),
    ),
    ListingParam(
        "recurring",
        lambda a: a.flag | None,
        rest=Spelling(
            "`true`: tasks with a `recurrence` rule. `false`: tasks without one.", examples=[True]
        ),
        mcp=Spelling("true: only recurring tasks; false: only the others."),
    ),
    ListingParam(
        "list_id",
        lambda a: Annotated[PlacedId, a.integer, a.names(_IN_LIST)] | NoneWord | None,
        rest=Spelling(
            "In this list (its id), or `none`: in no list. Subtasks included; "
            "add `parent_id=none` for the list's top level.",
            examples=[7],
        ),
        mcp=Spelling('Only the tasks in this list (its id), or "none": in no list.'),
    ),
    ListingParam(
        "list_name",
        lambda a: ListName | None,
        mcp=Spelling(f"Only the tasks in this list. {LIST_NAME_DESCRIPTION}", alias="list"),
    ),
    ListingParam(
        "parent_id",
        lambda a: Annotated[PlacedId, a.integer, a.names(_UNDER_PARENT)] | NoneWord | None,
        rest=Spelling(
            "Subtasks of this task (its id; direct ones), or `none`: top-level tasks.",
            examples=["none"],
        ),
        mcp=Spelling('Only the subtasks of this task (its id), or "none": top-level tasks.'),
    ),
    ListingParam(
        "assignee",
        lambda a: Annotated[AssigneeId, _ASSIGNEE_FILTER] | None,
        rest=Spelling(
            "`me`: assigned to you; `none`: assigned to nobody; a user id: assigned to that user.",
            examples=["me"],
        ),
        mcp=Spelling('"me": assigned to the user; "none": to nobody; or a user id.'),
    ),
    ListingParam(
        "sort",
        lambda a: TaskSort,
        TaskSort.created,
        rest=Spelling(_SORT_REST),
        mcp=Spelling(_SORT_MCP),
    ),
    ListingParam(
        "order",
        lambda a: SortOrder | None,
        rest=Spelling("Overrides the sort key's default direction.", examples=["asc"]),
        mcp=Spelling("asc or desc, overriding the sort's default direction."),
    ),
    ListingParam(
        "limit",
        lambda a: Annotated[PageLimit, a.integer],
        DEFAULT_LIMIT,
        rest=Spelling(f"Page size, 1-{MAX_LIMIT}.", examples=[50]),
        mcp=Spelling(f"At most this many tasks (1-{MAX_LIMIT})."),
    ),
    ListingParam(
        "include_total",
        lambda a: a.flag,
        False,
        rest=Spelling("Also count every matching task into `meta.total`.", examples=[True]),
    ),
)
# The MCP tool's arguments lead with the text search (the order its validation errors have
# always come in); otherwise the order above.
_MCP_FIRST = ("status", "search")


class QueryString:
    """How a listing value arrives in REST's query string: digits, a flag, a repeated key."""

    integer: Any = DecimalDigits
    flag = bool

    def values(self, item: Any) -> Any:
        return Annotated[list[item], FilterValuesBound]

    def names(self, reference: Reference) -> Any:
        return reference


class JsonValues(QueryString):
    """How a listing value arrives as a JSON value under REST's name (a saved filter's
    query): a strict JSON integer or boolean, an array for a repeatable filter."""

    integer = Strict()
    flag = StrictBool

    def names(self, reference: Reference) -> Any:
        return _SAVED_ROW


# A list or parent a saved filter names: no reference (the filter is kept when the caller loses
# the row, and then matches nothing of it: specs/api-contract.md, "Saved filters").
_SAVED_ROW = NotAReference("a saved filter's: a row the caller cannot read matches nothing")


def listing_fields(transport: str, arrival: Arrival) -> dict[str, Any]:
    """The fields of one transport's listing model (`create_model`): `transport` is "rest"
    or "mcp"; each parameter that transport takes, typed by how its values arrive there."""
    params = [(p, s) for p in LISTING_PARAMS if (s := p.spelling(transport)) is not None]
    if transport == "mcp":
        params.sort(
            key=lambda ps: _MCP_FIRST.index(ps[0].keyword) if ps[0].keyword in _MCP_FIRST else 2
        )
    fields: dict[str, Any] = {}
    for param, spelling in params:
        info: dict[str, Any] = {"description": spelling.description}
        if param.factory is not None:
            info["default_factory"] = param.factory
        else:
            info["default"] = param.default
        if spelling.alias is not None:
            info["alias"] = spelling.alias
        if spelling.examples is not None:
            info["examples"] = spelling.examples
        fields[param.attribute(transport)] = (param.type(arrival), Field(**info))
    return fields


def query_of(model: Any, transport: str) -> TaskListQuery:
    """The service's query for one transport's validated listing model."""
    return listing_query(
        **{
            p.keyword: getattr(model, p.attribute(transport))
            for p in LISTING_PARAMS
            if p.spelling(transport) is not None
        }
    )
