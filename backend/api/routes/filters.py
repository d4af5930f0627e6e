"""`/api/filters`: the caller's saved filters (issue 53). Thin: enter through the door, call the
`SavedFilterService`, return the envelope. A filter is applied by `GET /api/tasks?filter=`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from backend.api.deps import Door, DoorRoute
from backend.api.responses import VALIDATION, ErrorExample, errors, ok, rate_limited
from backend.contracts.saved_filters import (
    FilterCreate,
    FilterEnvelope,
    FilterPublic,
    FiltersEnvelope,
    FilterUpdate,
)
from backend.errors import LimitReached, NotFound
from backend.models.common import DecimalDigits
from backend.models.envelopes import CountMeta
from backend.models.references import Reference
from backend.models.saved_filter import FILTER_ID_MAX, FILTERS_PER_USER, FilterRow, SavedFilter
from backend.services.saved_filters import (
    FILTER_NOT_FOUND,
    TOO_MANY_FILTERS,
    SavedFilterService,
    name_taken,
)

router = APIRouter(
    prefix="/api/filters", tags=["filters"], responses=errors(401, 422, 503), route_class=DoorRoute
)
TAGS = {
    "filters": "Saved filters: named queries of `GET /api/tasks` (status, priority, tags, due "
    "ranges, list, assignee, search, sort...), validated by the listing's own rules when saved; "
    "`GET /api/tasks?filter={id}` applies one. Private to their user: another user's filter is "
    "a 404 like a missing one. Names are unique per user, ignoring case; at most 100."
}

FilterId = Annotated[
    int,
    Path(ge=1, le=FILTER_ID_MAX, description="The saved filter's id.", examples=[3]),
    DecimalDigits,
    Reference(SavedFilter.__tablename__, None),  # the caller's own filter
]
FILTER_MISSING = ErrorExample.of(
    "filter_not_found",
    "No such saved filter of yours (another user's looks the same)",
    NotFound(FILTER_NOT_FOUND),
)
FILTERS_FULL = ErrorExample.of(
    "saved_filters_full",
    "You have as many saved filters as there can be",
    LimitReached(TOO_MANY_FILTERS),
)
FILTER_NAME_TAKEN = ErrorExample.of(
    "filter_name_taken",
    "You have a saved filter by that name (names ignore case)",
    name_taken("Due soon"),
)
_CHANGED = rate_limited(200, "The saved filter as changed.")
_WRITE_ERRORS = errors(
    400, 404, 409, 413, 422, 429, examples=(FILTER_MISSING, FILTER_NAME_TAKEN, VALIDATION)
)


def _one(row: FilterRow) -> FilterEnvelope:
    return FilterEnvelope(data=FilterPublic.model_validate(row))


@router.get(
    "",
    operation_id="listFilters",
    response_model=FiltersEnvelope,
    summary="List your saved filters",
    description=f"Every saved filter of yours (at most {FILTERS_PER_USER}: one page), by name.",
)
def list_filters(door: Door) -> FiltersEnvelope:
    rows = door.service(SavedFilterService).all()
    return FiltersEnvelope(
        data=[FilterPublic.model_validate(row) for row in rows], meta=CountMeta(count=len(rows))
    )


@router.post(
    "",
    operation_id="createFilter",
    status_code=status.HTTP_201_CREATED,
    response_model=FilterEnvelope,
    summary="Save a filter",
    description=f"At most {FILTERS_PER_USER} saved filters; a name is unique among yours, "
    "ignoring case. The query is refused (422) for anything `GET /api/tasks` would refuse.",
    responses={
        **rate_limited(201, "Created; `Location` points at the new filter.", "Location"),
        **errors(400, 409, 413, 422, 429, examples=(FILTER_NAME_TAKEN, VALIDATION, FILTERS_FULL)),
    },
)
def create_filter(
    door: Door, data: FilterCreate, request: Request, response: Response
) -> FilterEnvelope:
    row = door.service(SavedFilterService).create(data.name, data.query.given())
    root = request.scope.get("root_path", "")
    response.headers["Location"] = f"{root}/api/filters/{row.id}"
    return _one(row)


@router.get(
    "/{filter_id}",
    operation_id="getFilter",
    response_model=FilterEnvelope,
    summary="Get a saved filter",
    responses={**ok(200, "The saved filter."), **errors(404, examples=(FILTER_MISSING,))},
)
def get_filter(door: Door, filter_id: FilterId) -> FilterEnvelope:
    return _one(door.service(SavedFilterService).get(filter_id))


@router.put(
    "/{filter_id}",
    operation_id="replaceFilter",
    response_model=FilterEnvelope,
    summary="Replace a saved filter",
    description="Its name and its whole query (an omitted query: `{}`, every task).",
    responses={**_CHANGED, **_WRITE_ERRORS},
)
def replace_filter(door: Door, filter_id: FilterId, data: FilterCreate) -> FilterEnvelope:
    filters = door.service(SavedFilterService)
    return _one(filters.update(filter_id, name=data.name, query=data.query.given()))


@router.patch(
    "/{filter_id}",
    operation_id="updateFilter",
    response_model=FilterEnvelope,
    summary="Rename a saved filter or change its query",
    description="Only the fields sent change; a `query` sent replaces the whole query.",
    responses={**_CHANGED, **_WRITE_ERRORS},
)
def update_filter(door: Door, filter_id: FilterId, data: FilterUpdate) -> FilterEnvelope:
    sent = data.model_fields_set
    name = data.name if "name" in sent else None
    query = data.query.given() if "query" in sent else None
    return _one(door.service(SavedFilterService).update(filter_id, name=name, query=query))


@router.delete(
    "/{filter_id}",
    operation_id="deleteFilter",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a saved filter",
    responses={**rate_limited(204, "Deleted."), **errors(404, 429, examples=(FILTER_MISSING,))},
)
def delete_filter(door: Door, filter_id: FilterId) -> None:
    door.service(SavedFilterService).delete(filter_id)
