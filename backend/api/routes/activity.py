"""`GET /api/activity`, `GET /api/lists/{list_id}/activity` and
`POST /api/activity/{event_id}/undo` (specs/api-contract.md, "Shared lists" and "Undo")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from backend.api.actions import acts
from backend.api.conditional import IfMatch, if_match_tasks
from backend.api.deps import Door, DoorRoute, uses
from backend.api.idempotency import IdempotentDep
from backend.api.pagination import Cursor, PageSize, row_page
from backend.api.responses import (
    INVALID_CURSOR,
    LIST_NOT_FOUND,
    PRECONDITION,
    VALIDATION,
    ErrorExample,
    errors,
    rate_limited,
)
from backend.api.routes.lists import ListId
from backend.api.routes.tasks import one_task
from backend.errors import Conflict, InvalidRequest, NotFound
from backend.models import TaskEvent
from backend.models.activity import ActivityItem
from backend.models.common import DecimalDigits, ListMeta
from backend.models.envelopes import ActivityEnvelope, TaskEnvelope
from backend.models.references import Action, Reference
from backend.models.types import TASK_ID_MAX
from backend.services.history.activity import ActivityService
from backend.services.tasks import undo

router = APIRouter(tags=["activity"], responses=errors(401, 422, 503), route_class=DoorRoute)

_RETENTION = (
    "Kept as long as the change feed keeps changes (`CHANGE_RETENTION_HOURS`, 7 days by "
    "default, once delivered)."
)


def _envelope(page: tuple[Sequence[Any], ListMeta]) -> ActivityEnvelope:
    rows, meta = page
    return ActivityEnvelope(data=[ActivityItem.from_row(row) for row in rows], meta=meta)


@router.get(
    "/api/activity",
    operation_id="listActivity",
    response_model=ActivityEnvelope,
    summary="What happened in your space and your shared lists",
    description="Newest first, keyset-paged (follow `meta.next_cursor` until null): every "
    "change of your tasks and lists and of every list shared with you (its tasks, members, "
    "invitations, comments), with who made it and, for an update, each changed field's old "
    "and new value. " + _RETENTION,
    responses=errors(422, examples=(VALIDATION, INVALID_CURSOR)),
)
def list_activity(
    door: Door,
    activity: Annotated[ActivityService, uses(ActivityService)],
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> ActivityEnvelope:
    return _envelope(row_page(door, "activity", limit, cursor, lambda at: activity.page(at, limit)))


@router.get(
    "/api/lists/{list_id}/activity",
    openapi_extra=acts(Action.LIST_READ),
    operation_id="listListActivity",
    response_model=ActivityEnvelope,
    summary="What happened in a list",
    description="A list's activity (viewer or above), newest first, keyset-paged: its "
    "tasks' changes, its own, its members', invitations' and comments'. Anyone who is not a "
    "member gets the 404 of a list that does not exist. " + _RETENTION,
    responses=errors(404, 422, examples=(LIST_NOT_FOUND, VALIDATION, INVALID_CURSOR)),
)
def list_list_activity(
    door: Door,
    activity: Annotated[ActivityService, uses(ActivityService)],
    list_id: ListId,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> ActivityEnvelope:
    def read(before: int | None) -> tuple[Sequence[Any], bool]:
        return activity.list_page(list_id, before, limit)

    return _envelope(row_page(door, f"activity/{list_id}", limit, cursor, read))


EventId = Annotated[
    int,
    Path(
        ge=1,
        le=TASK_ID_MAX,
        description="The activity entry's id (`id` in `GET /api/activity`).",
        examples=[1042],
    ),
    DecimalDigits,
    # An entry the caller may read; undoing it needs TASK_WRITE on its task (its `acts`).
    Reference(TaskEvent.__tablename__, Action.TASK_WRITE),
]


class _UndoRequest(BaseModel):
    """What an Idempotency-Key's record compares: the entry undone (the route has no body)."""

    event_id: int


ENTRY_NOT_FOUND = ErrorExample.of(
    "activity_entry_not_found", "No such entry you can see", NotFound(undo.ENTRY_NOT_FOUND)
)
UNDO_CONFLICT = ErrorExample.of(
    "undo_conflict",
    "A later change touched the same fields",
    Conflict(
        "A later change touched the same fields; nothing was undone",
        details=[
            {
                "field": "title",
                "message": "changed since this entry",
                "type": "conflict",
                "current": "Buy bread",
                "entry": "Buy oat milk",
            }
        ],
    ),
)
NOT_UNDOABLE = ErrorExample.of(
    "not_undoable", "An entry of a kind undo does not revert", InvalidRequest(undo.NOT_UNDONE)
)
_UNDO_EXAMPLES = (ENTRY_NOT_FOUND, UNDO_CONFLICT, NOT_UNDOABLE, PRECONDITION, VALIDATION)


@router.post(
    "/api/activity/{event_id}/undo",
    openapi_extra=acts(Action.TASK_WRITE),
    operation_id="undoActivity",
    response_model=TaskEnvelope,
    summary="Undo one change from the activity",
    description="Writes back what the entry changed: an update's fields to their old values, "
    "a completion to open and a reopening to completed, a reorder to its old place, a move "
    "back to its list and parent; a deletion is restored. Your own changes, or any "
    "member's in a list you administer (admin or owner). Only while every field it changed "
    "still holds the value it left: else 409 with each field's current value, and nothing "
    "changes. The undo is itself recorded as a change. `If-Match` takes the task's ETag. "
    'The kinds of entry and their answers: specs/api-contract.md, "Undo".',
    responses=rate_limited(200, "The task as the undo left it, with its new `ETag`.", "ETag")
    | errors(403, 404, 409, 412, 422, 429, examples=_UNDO_EXAMPLES),
)
def undo_activity(
    door: Door,
    undoing: Annotated[undo.UndoService, uses(undo.UndoService)],
    event_id: EventId,
    response: Response,
    idempotent: IdempotentDep,
    if_match: IfMatch = None,
) -> TaskEnvelope | Response:
    tags = if_match_tasks(if_match)

    def write() -> TaskEnvelope:
        return one_task(undoing.undo(event_id, tags), response)

    return idempotent.respond(door, _UndoRequest(event_id=event_id), 200, write)
