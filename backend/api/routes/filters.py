"""`/api/filters`: saved filters, a private resource of named rows (`named_rows_router`), and
`PUT`, as lists have. A filter is applied by `GET /api/tasks?filter=`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from fastapi.routing import APIRoute

from backend.api.deps import uses
from backend.api.named_routes import NAMED_RESOURCES, named_rows_router
from backend.api.responses import VALIDATION, errors, rate_limited
from backend.contracts.saved_filters import FilterCreate, FilterPublic, FilterUpdate
from backend.models.common import DecimalDigits
from backend.models.references import Reference
from backend.models.saved_filter import FILTER_ID_MAX, SavedFilter
from backend.services.tasks.saved_filters import SavedFilterService

router = named_rows_router(
    SavedFilterService,
    prefix="/api/filters",
    tag="filters",
    public=FilterPublic,
    create=FilterCreate,
    update=FilterUpdate,
)
TAGS = {
    "filters": "Saved filters: named queries of `GET /api/tasks` (status, priority, tags, due "
    "ranges, list, assignee, search, sort...), validated by the listing's own rules when saved; "
    "`GET /api/tasks?filter={id}` applies one. Private to their user: another user's filter is "
    "a 404 like a missing one. Names are unique per user, ignoring case; at most 100."
}
_RESOURCE = NAMED_RESOURCES[-1]
# A listing's `?filter=` naming no filter of the caller's answers this (GET /api/tasks).
FILTER_NOT_FOUND = _RESOURCE.not_found
# The envelope of one filter, as the router's own routes answer it (one schema, one name).
FilterEnvelope: Any = next(
    r.response_model for r in router.routes if isinstance(r, APIRoute) and r.name == "get_row"
)

FilterId = Annotated[
    int,
    Path(ge=1, le=FILTER_ID_MAX, description="The filter's id.", examples=[3]),
    DecimalDigits,
    Reference(SavedFilter.__tablename__, None),  # the caller's own filter
]


@router.put(
    "/{filter_id}",
    operation_id="replaceFilter",
    response_model=FilterEnvelope,
    summary="Replace a filter: its name and whole query",
    description="An omitted `query` is `{}`: every task.",
    responses=rate_limited(200, "The filter as changed.")
    | errors(400, 404, 409, 413, 429, examples=(_RESOURCE.not_found, _RESOURCE.taken, VALIDATION)),
)
def replace_filter(
    filters: Annotated[SavedFilterService, uses(SavedFilterService)],
    filter_id: FilterId,
    data: FilterCreate,
) -> Any:
    whole = FilterUpdate(name=data.name, query=data.query)
    row = filters.update(filter_id, whole)
    return FilterEnvelope(data=FilterPublic.model_validate(row))
