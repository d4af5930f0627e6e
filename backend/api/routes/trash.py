"""`/api/trash`: deleted tasks, restorable for 30 days (specs/api-contract.md, "The trash")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response, status
from pydantic import BaseModel

from backend.api.actions import acts
from backend.api.conditional import IfMatch, if_match_versions, task_etag
from backend.api.deps import Door, DoorRoute, uses
from backend.api.idempotency import IdempotentDep
from backend.api.pagination import Cursor, PageSize, row_page
from backend.api.responses import (
    CONFLICT,
    FORBIDDEN,
    INVALID_CURSOR,
    KEY_MISMATCH,
    LIST_FULL,
    PRECONDITION,
    VALIDATION,
    ErrorExample,
    errors,
    rate_limited,
)
from backend.errors import NotFound
from backend.models import TaskPublic
from backend.models.common import DecimalDigits
from backend.models.references import Action, Reference
from backend.models.trash import (
    TRASH_DAYS,
    RestoredTaskEnvelope,
    TaskTrash,
    TrashedTaskPublic,
    TrashEnvelope,
)
from backend.models.types import TASK_ID_MAX
from backend.services.history.trash import TRASH_NOT_FOUND, TrashService, cursor_key
from backend.storage.app import delete_objects

router = APIRouter(
    prefix="/api/trash", tags=["trash"], responses=errors(401, 422, 503), route_class=DoorRoute
)
TAGS = {
    "trash": f"Deleted tasks, with their subtasks and comments, restorable for {TRASH_DAYS} days."
}

TrashId = Annotated[
    int,
    Path(ge=1, le=TASK_ID_MAX, description="The deleted task's id.", examples=[42]),
    DecimalDigits,
    Reference(TaskTrash.__tablename__, Action.TASK_WRITE),
]
TRASHED_NOT_FOUND = ErrorExample.of(
    "trashed_not_found", "No such task in a trash you may restore from", NotFound(TRASH_NOT_FOUND)
)
_KIND = "trash"
_RESTORE_REFUSALS = (FORBIDDEN, TRASHED_NOT_FOUND, CONFLICT, PRECONDITION, KEY_MISMATCH, LIST_FULL)


class _Restoring(BaseModel):
    """What an Idempotency-Key's record of a restore is keyed by (it has no body)."""

    trash_id: int


@router.get(
    "",
    operation_id="listTrash",
    response_model=TrashEnvelope,
    summary="List the deleted tasks you may restore",
    description="Most recently deleted first, keyset-paged (follow `meta.next_cursor` until "
    "null): your own deleted tasks, and those of the shared lists where you are `editor` or "
    f"more. Each stays {TRASH_DAYS} days (`purge_at`), with its subtasks and comments.",
    responses=errors(422, examples=(VALIDATION, INVALID_CURSOR)),
)
def list_trash(
    door: Door,
    trash: Annotated[TrashService, uses(TrashService)],
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> TrashEnvelope:
    def key(row: Any) -> int:
        return cursor_key(row.deleted_at)

    rows, meta = row_page(door, _KIND, limit, cursor, lambda at: trash.page(at, limit), key)
    return TrashEnvelope(data=[TrashedTaskPublic.model_validate(row) for row in rows], meta=meta)


@router.post(
    "/{trash_id}/restore",
    openapi_extra=acts(Action.TASK_WRITE),
    operation_id="restoreTask",
    response_model=RestoredTaskEnvelope,
    summary="Restore a deleted task",
    description="Brings the task back with its id, subtasks, comments, the assignees still "
    "allowed in its list and its reminders (those in the future fire): to its list and parent "
    "if they still exist and you may still edit there, else to the top level. Needs `editor` "
    "or more in its list (a personal task: its owner). Refused, changing nothing, when the "
    "list or the top-level task would pass its limit. `If-Match` takes the `ETag` the task "
    "had when it was deleted.",
    responses=rate_limited(200, "The task as restored.", "ETag", "Idempotent-Replayed")
    | errors(403, 404, 409, 412, 422, 429, examples=(*_RESTORE_REFUSALS, VALIDATION)),
)
def restore_task(
    door: Door,
    trash: Annotated[TrashService, uses(TrashService)],
    trash_id: TrashId,
    response: Response,
    idempotent: IdempotentDep,
    if_match: IfMatch = None,
) -> RestoredTaskEnvelope | Response:
    expected = if_match_versions(if_match, trash_id)

    def restore() -> RestoredTaskEnvelope:
        task = trash.restore(trash_id, expected)
        response.headers["ETag"] = task_etag(task)
        return RestoredTaskEnvelope(data=TaskPublic.model_validate(task))

    return idempotent.respond(door, _Restoring(trash_id=trash_id), status.HTTP_200_OK, restore)


@router.delete(
    "/{trash_id}",
    openapi_extra=acts(Action.TASK_WRITE),
    operation_id="purgeTask",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a task for good",
    description="Removes a deleted task from the trash at once (else it goes after "
    f"{TRASH_DAYS} days). Needs `editor` or more in its list (a personal task: its owner).",
    responses=rate_limited(204, "Gone for good.")
    | errors(403, 404, 429, examples=(FORBIDDEN, TRASHED_NOT_FOUND)),
)
def purge_task(
    trash: Annotated[TrashService, uses(TrashService)],
    trash_id: TrashId,
    request: Request,
    later: BackgroundTasks,
) -> None:
    # The bytes after the response, so after the commit (`DoorRoute`).
    later.add_task(delete_objects, request.app, trash.purge(trash_id))
