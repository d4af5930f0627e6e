"""The saved filters' tools: list, save, update, delete (list_tasks applies one: `filter`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from backend.contracts.saved_filters import FilterCreate, FilterPublic, FilterUpdate, SavedQuery
from backend.mcp.tools.common import Arguments, Tool
from backend.models.names import Name
from backend.models.references import Reference
from backend.models.saved_filter import FILTER_ID_MAX, FILTERS_PER_USER, SavedFilter
from backend.services.tasks.saved_filters import SavedFilterService
from backend.services.unit_of_work import UnitOfWork

# A saved filter named by its id (the caller's own: private).
FilterId = Annotated[
    StrictInt, Field(ge=1, le=FILTER_ID_MAX), Reference(SavedFilter.__tablename__, None)
]


class FilterSummaries(BaseModel):
    """The caller's saved filters: list_filters' result."""

    filters: list[FilterPublic]


class SaveFilterArguments(Arguments):
    name: Name = Field(
        description="1-100 characters; unique among the user's filters.", examples=["Urgent"]
    )
    query: SavedQuery = Field(
        default_factory=SavedQuery,
        description="GET /api/tasks parameters by their REST names, as JSON values: status, "
        "priority (array), tag (array), due_before, due_after, overdue, q (text search), "
        "updated_since, recurring, list_id, parent_id, assignee, sort, order, limit.",
    )


class _OneFilter(Arguments):
    filter_id: FilterId = Field(description="The filter's id (list_filters).", examples=[3])


class UpdateFilterArguments(_OneFilter):
    name: Name | None = Field(default=None, description="Its new name.")
    query: SavedQuery | None = Field(
        default=None, description="Its new query (replaces the whole query): as save_filter's."
    )


class FilterChange(BaseModel):
    """What a filter tool did: which filter, what happened, its name."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    filter_id: int
    status: Literal["saved", "updated"]
    name: str


class FilterDeleted(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    filter_id: int
    status: Literal["deleted"] = "deleted"


def _list_filters(work: UnitOfWork, arguments: Arguments) -> FilterSummaries:
    filters: SavedFilterService = work.service(SavedFilterService)
    rows = filters.all()
    return FilterSummaries(filters=[FilterPublic.model_validate(row) for row in rows])


def _save_filter(work: UnitOfWork, arguments: SaveFilterArguments) -> FilterChange:
    filters: SavedFilterService = work.service(SavedFilterService)
    data = FilterCreate(name=arguments.name, query=arguments.query)
    row = filters.create(data)
    return FilterChange(filter_id=row.id, status="saved", name=row.name)


def _update_filter(work: UnitOfWork, arguments: UpdateFilterArguments) -> FilterChange:
    filters: SavedFilterService = work.service(SavedFilterService)
    sent = {k: getattr(arguments, k) for k in ("name", "query") if getattr(arguments, k)}
    row = filters.update(arguments.filter_id, FilterUpdate(**sent))
    return FilterChange(filter_id=row.id, status="updated", name=row.name)


def _delete_filter(work: UnitOfWork, arguments: _OneFilter) -> FilterDeleted:
    filters: SavedFilterService = work.service(SavedFilterService)
    filters.delete(arguments.filter_id)
    return FilterDeleted(filter_id=arguments.filter_id)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="list_filters",
        not_found=SavedFilterService.rows.not_found().message,
        title="List saved filters",
        description=f"The user's saved filters (at most {FILTERS_PER_USER}), by name: id, name "
        "and query (GET /api/tasks parameters). list_tasks applies one (filter: id or name).",
        arguments=Arguments,
        result=FilterSummaries,
        run=_list_filters,
        read_only=True,
        text=lambda structured: structured["filters"],
    ),
    Tool(
        name="save_filter",
        not_found=SavedFilterService.rows.not_found().message,
        title="Save a filter",
        description="Save a task query under a name, to list its tasks again later "
        "(list_tasks with filter). The query is checked as list_tasks/GET /api/tasks check "
        "it. Names are unique among the user's filters, ignoring case. Returns its filter_id, "
        '"status": "saved" and its name.',
        arguments=SaveFilterArguments,
        result=FilterChange,
        run=_save_filter,
    ),
    Tool(
        name="update_filter",
        not_found=SavedFilterService.rows.not_found().message,
        title="Rename or change a saved filter",
        description="Rename a saved filter (name) and/or replace its query. Returns its "
        'filter_id, "status": "updated" and its name.',
        arguments=UpdateFilterArguments,
        result=FilterChange,
        run=_update_filter,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="delete_filter",
        not_found=SavedFilterService.rows.not_found().message,
        title="Delete a saved filter",
        description='Delete a saved filter; its tasks stay. Returns its filter_id and "status": '
        '"deleted".',
        arguments=_OneFilter,
        result=FilterDeleted,
        run=_delete_filter,
        destructive=True,
        idempotent=True,
    ),
)
