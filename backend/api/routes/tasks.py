"""`/api/tasks`: the caller's tasks. Thin: parse, call `TaskService`, wrap in the envelope."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from pydantic import StringConstraints
from starlette.convertors import StringConvertor, register_url_convertor

from backend.api.conditional import IfMatch, IfNoneMatch, etag, if_match_versions, none_match
from backend.api.door import SettingsDep, TaskAccessDep, TaskWriterDep
from backend.api.idempotency import IdempotentDep
from backend.api.pagination import MAX_CURSOR_LENGTH, decode_cursor, encode_cursor
from backend.api.responses import errors, etag_header, json_response, not_modified
from backend.models import (
    DataEnvelope,
    ListEnvelope,
    ListMeta,
    Priority,
    SortOrder,
    Task,
    TaskCompletion,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)
from backend.models.common import DecimalDigits, StorableText
from backend.models.task import TASK_ID_MAX, Instant, Tag
from backend.models.task_ops import (
    BulkRequest,
    BulkResponse,
    BulkResult,
    ClearedCompleted,
    TaskStatsPublic,
)
from backend.services import TaskService
from backend.services.task_listing import TaskFilters, TaskListQuery

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_FILTER_VALUES = 10

router = APIRouter(prefix="/api/tasks", tags=["tasks"], responses=errors(401, 422, 503))
# Writes (POST, PUT, PATCH, DELETE) are rate-limited per user: 429 with Retry-After.


class _TaskIdConvertor(StringConvertor):
    """Any path segment except the fixed routes' names, so `PUT /api/tasks/stats` is a 405
    (not a 422 for an id "stats"); other non-integer ids still reach the route and get 422."""

    regex = "(?!(?:stats|bulk|completed)$)[^/]+"


register_url_convertor("task_id", _TaskIdConvertor())

TaskId = Annotated[
    int, Path(ge=1, le=TASK_ID_MAX, description="The task's id.", examples=[42]), DecimalDigits
]
Envelope = DataEnvelope[TaskPublic]
# The 200 of every route that changes one task: the new state and its new ETag.
_CHANGED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The task as changed, with its new `ETag`.", **etag_header()}
}
SearchTerm = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), StorableText]


def _envelope(task: Task, response: Response) -> Envelope:
    """One task, with its ETag on the response."""
    response.headers["ETag"] = etag(task)
    return Envelope(data=TaskPublic.model_validate(task))


def _one(task: Task, response: Response) -> Response:
    """One task as the 200 JSON response, with its ETag."""
    return json_response(_envelope(task, response), response)


async def list_query(
    status_: Annotated[
        TaskStatus,
        Query(alias="status", description="Filter by completion state.", examples=["pending"]),
    ] = TaskStatus.all,
    priority: Annotated[
        list[Priority],
        Query(
            max_length=MAX_FILTER_VALUES,
            description="Any of these priorities (repeatable).",
            examples=[["high", "medium"]],
        ),
    ] = [],  # noqa: B006  (FastAPI copies query defaults)
    tag: Annotated[
        list[Tag],
        Query(
            max_length=MAX_FILTER_VALUES,
            description="Has all of these tags (repeatable).",
            examples=[["work"]],
        ),
    ] = [],  # noqa: B006
    due_before: Annotated[
        Instant | None,
        Query(description="Due strictly before this instant or date.", examples=["2026-12-01"]),
    ] = None,
    due_after: Annotated[
        Instant | None,
        Query(
            description="Due at or after this instant or date.",
            examples=["2026-11-22T00:00:00Z"],
        ),
    ] = None,
    overdue: Annotated[
        bool | None,
        Query(
            description="`true`: pending and past due. `false`: everything else.",
            examples=[True],
        ),
    ] = None,
    q: Annotated[
        SearchTerm | None,
        Query(
            description="Case-insensitive substring of title or description; "
            "`%`, `_` and `\\` match literally."
        ),
    ] = None,
    updated_since: Annotated[
        Instant | None,
        Query(
            description="Changed at or after this instant (inclusive), for polling clients.",
            examples=["2026-11-22T17:00:00Z"],
        ),
    ] = None,
    sort: Annotated[
        TaskSort,
        Query(
            description="`created` (default newest first), `updated` (newest first), "
            "`title` (A to Z, case-insensitive), `due_date` (soonest first; no due date "
            "last in both orders), `priority` (high first). Ties are broken by id."
        ),
    ] = TaskSort.created,
    order: Annotated[
        SortOrder | None,
        Query(description="Overrides the sort key's default direction.", examples=["asc"]),
    ] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT}.", examples=[50]),
        DecimalDigits,
    ] = DEFAULT_LIMIT,
    include_total: Annotated[
        bool,
        Query(description="Also count every matching task into `meta.total`.", examples=[True]),
    ] = False,
) -> TaskListQuery:
    filters = TaskFilters(
        status=status_,
        priorities=tuple(dict.fromkeys(priority)),
        tags=tuple(dict.fromkeys(tag)),
        due_before=due_before,
        due_after=due_after,
        overdue=overdue,
        q=q or None,
        updated_since=updated_since,
    )
    return TaskListQuery(
        filters=filters, sort=sort, order=order, limit=limit, include_total=include_total
    )


@router.get(
    "",
    response_model=ListEnvelope[TaskPublic],
    summary="List your tasks",
    description="Filters combine with AND. Pages are keyset-based: follow `meta.next_cursor` "
    '(or the `Link: rel="next"` header) until it is null; tasks added or deleted meanwhile '
    "never make an unchanged task repeat or go missing.",
)
def list_tasks(
    tasks: TaskAccessDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    query: Annotated[TaskListQuery, Depends(list_query)],
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="`meta.next_cursor` of the previous page."),
    ] = None,
) -> Response:
    secret = settings.signing_secret()
    with tasks.transaction() as service:
        user_id = service.user_id
        if cursor:
            query = replace(query, after=decode_cursor(secret, user_id, query, cursor))
        page = service.list_page(query)
    next_cursor = encode_cursor(secret, user_id, query, page.next) if page.next else None
    if next_cursor:
        next_url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    body = ListEnvelope[TaskPublic](
        data=[TaskPublic.model_validate(t) for t in page.items],
        meta=ListMeta(
            count=len(page.items),
            limit=query.limit,
            has_more=page.next is not None,
            next_cursor=next_cursor,
            total=page.total,
        ),
    )
    return json_response(body, response)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Envelope,
    summary="Create a task",
    responses={
        201: {
            "description": "Created; `Location` points at the new task. A replay of an "
            "Idempotency-Key's first response adds `Idempotent-Replayed: true`.",
            **etag_header(),
        },
        **errors(400, 409, 413, 429),
    },
)
def create_task(
    tasks: TaskWriterDep,
    data: TaskCreate,
    request: Request,
    response: Response,
    idempotent: IdempotentDep,
) -> Response:
    with tasks.transaction() as service:

        def create() -> Envelope:
            task = service.create(data)
            root = request.scope.get("root_path", "")
            response.headers["Location"] = f"{root}/api/tasks/{task.id}"
            return _envelope(task, response)

        return idempotent.respond(service, data, status.HTTP_201_CREATED, create)


# Fixed paths come before /{task_id}, which would otherwise claim them.
@router.get("/stats", response_model=DataEnvelope[TaskStatsPublic], summary="Counts of your tasks")
def task_stats(tasks: TaskAccessDep) -> DataEnvelope[TaskStatsPublic]:
    with tasks.transaction() as service:
        stats = service.stats()
    return DataEnvelope[TaskStatsPublic](data=TaskStatsPublic.model_validate(asdict(stats)))


@router.post(
    "/bulk",
    response_model=DataEnvelope[BulkResponse],
    summary="Apply several operations, all or nothing",
    description="Operations run in order in one transaction. If any fails (a task that is not "
    "yours is a 404, as everywhere), nothing is changed and the error names the operation.",
    responses=errors(400, 404, 409, 413, 429),
)
def bulk(tasks: TaskWriterDep, data: BulkRequest, idempotent: IdempotentDep) -> Response:
    with tasks.transaction() as service:
        return idempotent.respond(service, data, status.HTTP_200_OK, lambda: _apply(service, data))


def _apply(tasks: TaskService, data: BulkRequest) -> DataEnvelope[BulkResponse]:
    outcomes = tasks.apply(data.operations)
    results = [
        BulkResult(
            index=index,
            op=operation.op,
            id=operation.id,
            task=TaskPublic.model_validate(task) if task is not None else None,
        )
        for index, (operation, task) in enumerate(zip(data.operations, outcomes, strict=True))
    ]
    return DataEnvelope[BulkResponse](data=BulkResponse(results=results))


@router.delete(
    "/completed",
    response_model=DataEnvelope[ClearedCompleted],
    summary="Delete all your completed tasks",
    responses=errors(429),
)
def clear_completed(tasks: TaskWriterDep) -> DataEnvelope[ClearedCompleted]:
    with tasks.transaction() as service:
        deleted = service.delete_completed()
    return DataEnvelope[ClearedCompleted](data=ClearedCompleted(deleted=deleted))


@router.get(
    "/{task_id:task_id}",
    response_model=Envelope,
    summary="Get a task",
    responses={200: {"description": "The task.", **etag_header()}, **not_modified(), **errors(404)},
)
def get_task(
    tasks: TaskAccessDep, task_id: TaskId, response: Response, if_none_match: IfNoneMatch = None
) -> Response:
    with tasks.transaction() as service:
        task = service.get(task_id)
    if none_match(if_none_match, etag(task)):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(task)})
    return _one(task, response)


@router.put(
    "/{task_id:task_id}",
    response_model=Envelope,
    summary="Replace a task's editable fields",
    responses={**_CHANGED, **errors(400, 404, 412, 413, 429)},
)
def replace_task(
    tasks: TaskWriterDep,
    task_id: TaskId,
    data: TaskReplace,
    response: Response,
    if_match: IfMatch = None,
) -> Response:
    expected = if_match_versions(if_match, task_id)
    with tasks.transaction() as service:
        task = service.replace(task_id, data, expected)
    return _one(task, response)


@router.patch(
    "/{task_id:task_id}",
    response_model=Envelope,
    summary="Change some fields of a task",
    responses={**_CHANGED, **errors(400, 404, 412, 413, 429)},
)
def update_task(
    tasks: TaskWriterDep,
    task_id: TaskId,
    data: TaskUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> Response:
    expected = if_match_versions(if_match, task_id)
    with tasks.transaction() as service:
        task = service.update(task_id, data, expected)
    return _one(task, response)


@router.patch(
    "/{task_id:task_id}/complete",
    response_model=Envelope,
    summary="Toggle or set completion",
    description='With no body, toggles `completed`. With `{"completed": true|false}`, sets it.',
    responses={**_CHANGED, **errors(400, 404, 412, 413, 429)},
)
def complete_task(
    tasks: TaskWriterDep,
    task_id: TaskId,
    response: Response,
    data: Annotated[TaskCompletion | None, Body()] = None,
    if_match: IfMatch = None,
) -> Response:
    completed = None if data is None else data.completed
    expected = if_match_versions(if_match, task_id)
    with tasks.transaction() as service:
        task = service.set_completed(task_id, completed, expected)
    return _one(task, response)


@router.delete(
    "/{task_id:task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a task",
    responses=errors(404, 412, 429),
)
def delete_task(tasks: TaskWriterDep, task_id: TaskId, if_match: IfMatch = None) -> None:
    # Returns nothing (not a Response) so the rate-limit headers set on the request's
    # response reach the 204.
    expected = if_match_versions(if_match, task_id)
    with tasks.transaction() as service:
        service.delete(task_id, expected)
