"""`/api/tasks`: the caller's tasks. Thin: parse, call `TaskService`, wrap in the envelope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from backend.api.responses import errors
from backend.deps import TaskServiceDep, TaskWriteLimit
from backend.models import (
    DataEnvelope,
    ListEnvelope,
    ListMeta,
    SortOrder,
    TaskCompletion,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)
from backend.models.task import TASK_ID_MAX

DEFAULT_LIMIT = 100
MAX_LIMIT = 500

router = APIRouter(prefix="/api/tasks", tags=["tasks"], responses=errors(401, 422, 503))
# Writes (POST, PUT, PATCH, DELETE) are rate-limited per user: 429 with Retry-After.

TaskId = Annotated[int, Path(ge=1, le=TASK_ID_MAX, description="The task's id.", examples=[42])]
Envelope = DataEnvelope[TaskPublic]


def _one(task: object) -> Envelope:
    return Envelope(data=TaskPublic.model_validate(task))


@router.get("", response_model=ListEnvelope[TaskPublic], summary="List your tasks")
def list_tasks(
    tasks: TaskServiceDep,
    status_: Annotated[
        TaskStatus, Query(alias="status", description="Filter by completion state.")
    ] = TaskStatus.all,
    sort: Annotated[
        TaskSort,
        Query(
            description="`created` (default order: newest first) or `title` (A to Z, "
            "case-insensitive). Ties are broken by id."
        ),
    ] = TaskSort.created,
    order: Annotated[
        SortOrder | None, Query(description="Overrides the sort key's default direction.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT}.")
    ] = DEFAULT_LIMIT,
) -> ListEnvelope[TaskPublic]:
    items, has_more = tasks.list(status=status_, sort=sort, order=order, limit=limit)
    return ListEnvelope[TaskPublic](
        data=[TaskPublic.model_validate(t) for t in items],
        meta=ListMeta(count=len(items), limit=limit, has_more=has_more),
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Envelope,
    summary="Create a task",
    dependencies=[TaskWriteLimit],
    responses={
        201: {"description": "Created; `Location` points at the new task."},
        **errors(413, 429),
    },
)
def create_task(
    tasks: TaskServiceDep, data: TaskCreate, request: Request, response: Response
) -> Envelope:
    task = tasks.create(data)
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/api/tasks/{task.id}"
    return _one(task)


@router.get("/{task_id}", response_model=Envelope, summary="Get a task", responses=errors(404))
def get_task(tasks: TaskServiceDep, task_id: TaskId) -> Envelope:
    return _one(tasks.get(task_id))


@router.put(
    "/{task_id}",
    response_model=Envelope,
    summary="Replace a task's editable fields",
    dependencies=[TaskWriteLimit],
    responses=errors(404, 413, 429),
)
def replace_task(tasks: TaskServiceDep, task_id: TaskId, data: TaskReplace) -> Envelope:
    return _one(tasks.replace(task_id, data))


@router.patch(
    "/{task_id}",
    response_model=Envelope,
    summary="Change some fields of a task",
    dependencies=[TaskWriteLimit],
    responses=errors(404, 413, 429),
)
def update_task(tasks: TaskServiceDep, task_id: TaskId, data: TaskUpdate) -> Envelope:
    return _one(tasks.update(task_id, data))


@router.patch(
    "/{task_id}/complete",
    response_model=Envelope,
    summary="Toggle or set completion",
    dependencies=[TaskWriteLimit],
    description='With no body, toggles `completed`. With `{"completed": true|false}`, sets it.',
    responses=errors(404, 413, 429),
)
def complete_task(
    tasks: TaskServiceDep,
    task_id: TaskId,
    data: Annotated[TaskCompletion | None, Body()] = None,
) -> Envelope:
    return _one(tasks.set_completed(task_id, None if data is None else data.completed))


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a task",
    dependencies=[TaskWriteLimit],
    responses=errors(404, 429),
)
def delete_task(tasks: TaskServiceDep, task_id: TaskId) -> None:
    # Returns nothing (not a Response) so the rate-limit headers set on the request's
    # response reach the 204.
    tasks.delete(task_id)
