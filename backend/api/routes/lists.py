"""`/api/lists`: the caller's lists. Thin: enter through the door, call `ListService`, return
the envelope. A list's tasks are the task listing's `list_id=` filter (`GET /api/tasks`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from backend.api.actions import acts
from backend.api.conditional import IfMatch, etag, if_match_versions
from backend.api.deps import DoorRoute, uses
from backend.api.responses import (
    LIST_NAME_TAKEN,
    LIST_NOT_FOUND,
    LIST_PRECONDITION,
    TOO_MANY_LISTS,
    VALIDATION,
    errors,
    ok,
    rate_limited,
)
from backend.models.common import DecimalDigits
from backend.models.envelopes import CountMeta, ListsEnvelope, SingleListEnvelope
from backend.models.references import SUBJECT, Action
from backend.models.task_list import (
    LIST_ID_MAX,
    LISTS_PER_USER,
    ListCreate,
    ListMove,
    ListPublic,
    ListReplace,
    ListRow,
    ListUpdate,
)
from backend.services.sharing.lists import ListService

router = APIRouter(
    prefix="/api/lists", tags=["lists"], responses=errors(401, 422, 503), route_class=DoorRoute
)

ListId = Annotated[
    int,
    Path(ge=1, le=LIST_ID_MAX, description="The list's id.", examples=[7]),
    DecimalDigits,
    SUBJECT,
]
_CHANGED = rate_limited(200, "The list as changed, with its new `ETag`.", "ETag")
_WRITE_EXAMPLES = (LIST_NOT_FOUND, LIST_NAME_TAKEN, LIST_PRECONDITION, VALIDATION)


def one_list(row: ListRow, response: Response) -> SingleListEnvelope:
    """One list, with its ETag (of its own fields: its counts change with its tasks)."""
    response.headers["ETag"] = etag(row)
    return SingleListEnvelope(data=ListPublic.model_validate(row))


@router.get(
    "",
    operation_id="listLists",
    response_model=ListsEnvelope,
    summary="List your lists",
    description=f"Every list of yours (at most {LISTS_PER_USER}: one page), in their order, "
    "each with its task counts. A list's tasks: `GET /api/tasks?list_id=`.",
)
def list_lists(lists: Annotated[ListService, uses(ListService)]) -> ListsEnvelope:
    rows = lists.all()
    return ListsEnvelope(
        data=[ListPublic.model_validate(row) for row in rows], meta=CountMeta(count=len(rows))
    )


@router.post(
    "",
    operation_id="createList",
    status_code=status.HTTP_201_CREATED,
    response_model=SingleListEnvelope,
    summary="Create a list",
    description=f"It goes last among your lists. At most {LISTS_PER_USER} lists; names are "
    "unique among yours, ignoring case.",
    responses=rate_limited(201, "Created; `Location` points at the new list.", "Location", "ETag")
    | errors(400, 409, 413, 422, 429, examples=(LIST_NAME_TAKEN, VALIDATION, TOO_MANY_LISTS)),
)
def create_list(
    lists: Annotated[ListService, uses(ListService)],
    data: ListCreate,
    request: Request,
    response: Response,
) -> SingleListEnvelope:
    row = lists.create(data)
    root = request.scope.get("root_path", "")
    response.headers["Location"] = f"{root}/api/lists/{row.id}"
    return one_list(row, response)


@router.get(
    "/{list_id}",
    openapi_extra=acts(Action.LIST_READ),
    operation_id="getList",
    response_model=SingleListEnvelope,
    summary="Get a list",
    responses=ok(200, "The list, with its task counts.", "ETag")
    | errors(404, examples=(LIST_NOT_FOUND,)),
)
def get_list(
    lists: Annotated[ListService, uses(ListService)], list_id: ListId, response: Response
) -> SingleListEnvelope:
    return one_list(lists.get(list_id), response)


@router.put(
    "/{list_id}",
    openapi_extra=acts(Action.LIST_RENAME),
    operation_id="replaceList",
    response_model=SingleListEnvelope,
    summary="Change the fields sent (as PATCH does)",
    description="A field the body does not name keeps its stored value (an omitted `color` "
    "stays); `color: null` clears it; an empty body is 422.",
    responses=_CHANGED | errors(400, 404, 409, 412, 413, 429, examples=_WRITE_EXAMPLES),
)
def replace_list(
    lists: Annotated[ListService, uses(ListService)],
    list_id: ListId,
    data: ListReplace,
    response: Response,
    if_match: IfMatch = None,
) -> SingleListEnvelope:
    expected = if_match_versions(if_match, list_id, task=False)
    return one_list(lists.update(list_id, data, expected), response)


@router.patch(
    "/{list_id}",
    openapi_extra=acts(Action.LIST_RENAME),
    operation_id="updateList",
    response_model=SingleListEnvelope,
    summary="Rename or recolour a list",
    responses=_CHANGED | errors(400, 404, 409, 412, 413, 429, examples=_WRITE_EXAMPLES),
)
def update_list(
    lists: Annotated[ListService, uses(ListService)],
    list_id: ListId,
    data: ListUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> SingleListEnvelope:
    expected = if_match_versions(if_match, list_id, task=False)
    return one_list(lists.update(list_id, data, expected), response)


@router.post(
    "/{list_id}/move",
    openapi_extra=acts(Action.LIST_ORDER),
    operation_id="moveList",
    response_model=SingleListEnvelope,
    summary="Put a list at another place among yours",
    description="Right after `after_id`, right before `before_id`, or (neither) last.",
    responses=_CHANGED
    | errors(400, 404, 412, 413, 429, examples=(LIST_NOT_FOUND, LIST_PRECONDITION)),
)
def move_list(
    lists: Annotated[ListService, uses(ListService)],
    list_id: ListId,
    data: ListMove,
    response: Response,
    if_match: IfMatch = None,
) -> SingleListEnvelope:
    expected = if_match_versions(if_match, list_id, task=False)
    return one_list(lists.move(list_id, data.after_id, data.before_id, expected), response)


@router.delete(
    "/{list_id}",
    openapi_extra=acts(Action.LIST_DELETE),
    operation_id="deleteList",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a list and its tasks",
    description="Deletes the list and every task in it, subtasks included, in one "
    "transaction; each task's deletion is in the change feed. Its tasks go to the trash "
    "(`GET /api/trash`) in no list: restored, they come back to your top level.",
    responses=rate_limited(204, "Deleted, with its tasks.")
    | errors(404, 412, 429, examples=(LIST_NOT_FOUND, LIST_PRECONDITION)),
)
def delete_list(
    lists: Annotated[ListService, uses(ListService)], list_id: ListId, if_match: IfMatch = None
) -> None:
    lists.delete(list_id, expected=if_match_versions(if_match, list_id, task=False))
