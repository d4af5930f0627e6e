"""`/api/tasks/{task_id}/comments`: a task's comments (issue 39, "Shared lists"). Thin: enter
through the door, call `door.comments`, return the envelope. Each route's action is the
declared child's (backend/models/task_children.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from backend.api.actions import acts
from backend.api.deps import Door, DoorRoute, SettingsDep
from backend.api.pagination import MAX_CURSOR_LENGTH, decode_row_cursor, encode_row_cursor
from backend.api.responses import (
    COMMENT_NOT_FOUND,
    FORBIDDEN,
    INVALID_CURSOR,
    NOT_THE_AUTHOR,
    NOT_THE_AUTHOR_OR_ADMIN,
    TASK_NOT_FOUND,
    TOO_MANY_COMMENTS,
    VALIDATION,
    errors,
    ok,
    rate_limited,
)
from backend.api.routes.tasks import TaskId
from backend.models.common import DecimalDigits, ListMeta
from backend.models.envelopes import CommentEnvelope, CommentsEnvelope
from backend.models.references import COMMENTS, Action, Reference
from backend.models.sharing import CommentCreate, CommentPublic, CommentUpdate, TaskComment
from backend.models.task_children import COMMENTS_PER_TASK, child_of
from backend.models.types import TASK_ID_MAX

router = APIRouter(
    prefix="/api/tasks", tags=["comments"], responses=errors(401, 422, 503), route_class=DoorRoute
)

_COMMENT_ID = Path(ge=1, le=TASK_ID_MAX, description="The comment's id.", examples=[11])
CommentId = Annotated[int, _COMMENT_ID, DecimalDigits, Reference(COMMENTS, Action.COMMENT_ADD)]
ReadCommentId = Annotated[int, _COMMENT_ID, DecimalDigits, Reference(COMMENTS, Action.COMMENT_READ)]
PAGE_MAX = 100
PageSize = Annotated[
    int, Query(ge=1, le=PAGE_MAX, description=f"Page size, 1-{PAGE_MAX}."), DecimalDigits
]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`meta.next_cursor` of the previous page."),
]
# Its routes' actions are the declared child's (`read`, `write`: backend/models/task_children.py).
_CHILD = child_of(TaskComment)
_READ, _WRITE = acts(_CHILD.action(writes=False)), acts(_CHILD.action(writes=True))
_COMMENTS = "/{task_id}/comments"
_COMMENT = "/{task_id}/comments/{comment_id}"
_MISSING = (TASK_NOT_FOUND, COMMENT_NOT_FOUND)


def _kind(task_id: int) -> str:
    """What a page cursor belongs to (with the caller): this task's comments."""
    return f"comments/{task_id}"


@router.get(
    _COMMENTS,
    openapi_extra=_READ,
    operation_id="listTaskComments",
    response_model=CommentsEnvelope,
    summary="List a task's comments",
    description="Oldest first, keyset-paged: follow `meta.next_cursor` until it is null. "
    "Anyone who may read the task may read its comments (a shared list's viewer and up).",
    responses={
        **ok(200, "One page of the task's comments."),
        **errors(404, 422, examples=(TASK_NOT_FOUND, VALIDATION, INVALID_CURSOR)),
    },
)
def list_task_comments(
    door: Door,
    settings: SettingsDep,
    task_id: TaskId,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> CommentsEnvelope:
    secret, user_id, kind = settings.signing_secret(), door.caller_id, _kind(task_id)
    after = decode_row_cursor(secret, kind, user_id, cursor)[1] if cursor else None
    rows, more = door.comments.page(task_id, limit, after)
    next_cursor = encode_row_cursor(secret, kind, user_id, 0, rows[-1].id) if more else None
    return CommentsEnvelope(
        data=[CommentPublic.model_validate(row) for row in rows],
        meta=ListMeta(count=len(rows), limit=limit, has_more=more, next_cursor=next_cursor),
    )


@router.post(
    _COMMENTS,
    openapi_extra=_WRITE,
    operation_id="createTaskComment",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentEnvelope,
    summary="Comment on a task",
    description="The caller is its author. Needs `commenter` or more in the task's list (a "
    f"personal task: its owner). At most {COMMENTS_PER_TASK} comments a task.",
    responses={
        **rate_limited(
            201, "Created; `Location` is the new comment's path (PATCH, DELETE).", "Location"
        ),
        **errors(
            400,
            403,
            404,
            413,
            422,
            429,
            examples=(FORBIDDEN, TASK_NOT_FOUND, VALIDATION, TOO_MANY_COMMENTS),
        ),
    },
)
def create_task_comment(
    door: Door, task_id: TaskId, data: CommentCreate, request: Request, response: Response
) -> CommentEnvelope:
    row = door.comments.add(task_id, data.model_dump())
    root = request.scope.get("root_path", "")
    response.headers["Location"] = f"{root}/api/tasks/{task_id}/comments/{row.id}"
    return CommentEnvelope(data=CommentPublic.model_validate(row))


@router.get(
    _COMMENT,
    openapi_extra=_READ,
    operation_id="getTaskComment",
    response_model=CommentEnvelope,
    summary="Get one comment",
    description="Anyone who may read the task may read its comments (a shared list's viewer "
    "and up).",
    responses={
        **ok(200, "The comment."),
        **errors(404, 422, examples=(*_MISSING, VALIDATION)),
    },
)
def get_task_comment(door: Door, task_id: TaskId, comment_id: ReadCommentId) -> CommentEnvelope:
    return CommentEnvelope(
        data=CommentPublic.model_validate(door.comments.get(task_id, comment_id))
    )


@router.patch(
    _COMMENT,
    openapi_extra=_WRITE,
    operation_id="updateTaskComment",
    response_model=CommentEnvelope,
    summary="Edit your comment",
    description="Only its author, while still `commenter` or more in the task's list.",
    responses={
        **rate_limited(200, "The comment as changed."),
        **errors(
            400,
            403,
            404,
            413,
            422,
            429,
            examples=(FORBIDDEN, NOT_THE_AUTHOR, *_MISSING, VALIDATION),
        ),
    },
)
def update_task_comment(
    door: Door, task_id: TaskId, comment_id: CommentId, data: CommentUpdate
) -> CommentEnvelope:
    row = door.comments.change(task_id, comment_id, data.model_dump())
    return CommentEnvelope(data=CommentPublic.model_validate(row))


@router.delete(
    _COMMENT,
    openapi_extra=_WRITE,
    operation_id="deleteTaskComment",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a comment",
    description="Its author (`commenter` or more), or an `admin` or the owner of the task's "
    "list (a personal task: its owner).",
    responses={
        **rate_limited(204, "Deleted."),
        **errors(403, 404, 429, examples=(FORBIDDEN, NOT_THE_AUTHOR_OR_ADMIN, *_MISSING)),
    },
)
def delete_task_comment(door: Door, task_id: TaskId, comment_id: CommentId) -> None:
    door.comments.remove(task_id, comment_id)
