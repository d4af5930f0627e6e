"""`/api/tasks`: the caller's tasks. Thin: enter through the door, call `TaskService`, return
the envelope."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, ClassVar

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from backend.api.actions import acts
from backend.api.conditional import IfMatch, IfNoneMatch, if_match_versions, none_match, task_etag
from backend.api.deps import Door, DoorRoute, uses
from backend.api.encoding import TaskPageJSON
from backend.api.idempotency import IdempotentDep
from backend.api.pagination import (
    MAX_CURSOR_LENGTH,
    decode_cursor,
    encode_changes_cursor,
    encode_cursor,
)
from backend.api.responses import (
    BULK_TASK_NOT_FOUND,
    CONFLICT,
    INVALID_CURSOR,
    KEY_MISMATCH,
    LIST_FULL,
    LIST_REFERENCE_NOT_FOUND,
    PARENT_NOT_FOUND,
    PRECONDITION,
    SUBTASK_CYCLE,
    TASK_NOT_FOUND,
    VALIDATION,
    errors,
    not_modified,
    ok,
    rate_limited,
)
from backend.api.routes.filters import FILTER_NOT_FOUND
from backend.contracts.saved_filters import filtered
from backend.contracts.task_listing import QueryString, listing_fields, query_of
from backend.contracts.tasks import TASK_ID_MAX, TASK_ID_MIN, move_placement, stats_public
from backend.models import TaskCompletion, TaskCreate, TaskPublic, TaskReplace, TaskRow, TaskUpdate
from backend.models.common import DecimalDigits
from backend.models.envelopes import (
    BulkResponseEnvelope,
    ClearedCompletedEnvelope,
    CountMeta,
    TaskEnvelope,
    TaskListEnvelope,
    TaskListMeta,
    TaskOccurrencesEnvelope,
    TaskStatsEnvelope,
    TaskSubtreeEnvelope,
)
from backend.models.quick_add import QuickAddEnvelope, QuickAddRequest
from backend.models.references import SUBJECT, Action, Reference
from backend.models.saved_filter import FILTER_ID_MAX, SavedFilter
from backend.models.task_ops import (
    OCCURRENCES_MAX,
    BulkRequest,
    BulkResponse,
    BulkResult,
    ClearedCompleted,
    TaskMove,
    TaskOccurrences,
)
from backend.services.tasks.quick_add import QuickAddService
from backend.services.tasks.service import TaskPage, TaskService
from backend.services.tasks.task_listing import TaskListQuery

STEM = "/api/tasks/"


def fixed_paths(routes: Iterable[BaseRoute]) -> frozenset[str]:
    """The fixed paths' names under /api/tasks (`stats`, `bulk`, ...): each first segment after
    it that is no parameter, of any router's routes (`changes` is the changes router's)."""
    segments = (getattr(route, "path", "").partition(STEM) for route in routes)
    named = (rest.partition("/")[0] for before, _, rest in segments if not before and rest)
    return frozenset(name for name in named if name and not name.startswith("{"))


class TaskRoute(DoorRoute):
    """`/{task_id}` matches any segment but the fixed paths' names, so `PUT /api/tasks/stats`
    is a 405 (not a 422 for an id "stats"); other non-integer ids reach the route: 422.
    `fixed` is derived from every route once they are all built (backend/api/routes)."""

    fixed: ClassVar[frozenset[str]] = frozenset()

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and child["path_params"].get("task_id") in self.fixed:
            return Match.NONE, {}
        return match, child


# Writes (POST, PUT, PATCH, DELETE) are rate-limited per user: 429 with Retry-After.
router = APIRouter(
    prefix="/api/tasks", tags=["tasks"], responses=errors(401, 422, 503), route_class=TaskRoute
)

TaskId = Annotated[
    int,
    Path(ge=TASK_ID_MIN, le=TASK_ID_MAX, description="The task's id.", examples=[42]),
    DecimalDigits,
    SUBJECT,
]
# The 200 of every route that changes one task: the new state and its new ETag.
_CHANGED = rate_limited(200, "The task as changed, with its new `ETag`.", "ETag")
# What a creating route may refuse: a key reused for another request, besides the usual.
_IDEMPOTENT_EXAMPLES = (CONFLICT, VALIDATION, KEY_MISMATCH)
# What a write that places a task (list_id, parent_id) may refuse, besides the usual.
_PLACED_EXAMPLES = (LIST_REFERENCE_NOT_FOUND, PARENT_NOT_FOUND, SUBTASK_CYCLE, LIST_FULL)
_WRITE_EXAMPLES = (TASK_NOT_FOUND, VALIDATION, PRECONDITION, *_PLACED_EXAMPLES)
_CREATE_EXAMPLES = (*_IDEMPOTENT_EXAMPLES, LIST_REFERENCE_NOT_FOUND, PARENT_NOT_FOUND, LIST_FULL)
# The 201 of a route that creates a task.
_CREATED = rate_limited(
    201,
    "Created; `Location` points at the new task. A replay of an Idempotency-Key's "
    "first response adds `Idempotent-Replayed: true`.",
    "Location",
    "ETag",
    "Idempotent-Replayed",
)


def one_task(task: TaskRow, response: Response) -> TaskEnvelope:
    """One task, with its ETag on the response."""
    response.headers["ETag"] = task_etag(task)
    return TaskEnvelope(data=TaskPublic.model_validate(task))


def _created(task: TaskRow, request: Request, response: Response) -> TaskEnvelope:
    """A new task, with its ETag and `Location`."""
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/api/tasks/{task.id}"
    return one_task(task, response)


class _ListParams(BaseModel):
    """The listing's query string as one model (one pydantic-core pass, where a dozen query
    parameters cost FastAPI a step each): `LISTING_PARAMS`' fields, then REST's own."""

    model_config = ConfigDict(populate_by_name=True)

    def query(self) -> TaskListQuery:
        return query_of(self, "rest")


if TYPE_CHECKING:

    class ListParams(_ListParams):
        cursor: str | None
        filter: int | None

else:
    ListParams = create_model(
        "ListParams",
        __base__=_ListParams,
        __module__=__name__,
        **listing_fields("rest", QueryString()),
        cursor=(
            str | None,
            Field(
                default=None,
                max_length=MAX_CURSOR_LENGTH,
                description="`meta.next_cursor` of the previous page.",
            ),
        ),
        filter=(
            Annotated[
                int,
                Field(ge=1, le=FILTER_ID_MAX),
                DecimalDigits,
                Reference(SavedFilter.__tablename__, None),
            ]
            | None,
            Field(
                default=None,
                description="Apply a saved filter of yours (its id, `/api/filters`): its "
                "parameters, and those sent beside it, which replace its own. Another user's or "
                "a missing filter: 404 `Filter not found`.",
                examples=[3],
            ),
        ),
    )


@router.get(
    "",
    operation_id="listTasks",
    response_model=TaskListEnvelope,
    summary="List your tasks",
    responses=ok(200, "One page of your tasks; `Link` names the next page.", "Link")
    | errors(
        404,
        422,
        examples=(FILTER_NOT_FOUND, VALIDATION, INVALID_CURSOR),
        descriptions={404: "`filter` names no saved filter of yours (`NOT_FOUND`)."},
    ),
    description="Filters combine with AND. Pages are keyset-based: follow `meta.next_cursor` "
    '(or the `Link: rel="next"` header) until it is null; tasks added or deleted meanwhile '
    "never make an unchanged task repeat or go missing.",
)
def list_tasks(
    door: Door,
    tasks: Annotated[TaskService, uses(TaskService)],
    request: Request,
    params: Annotated[ListParams, Query()],
) -> TaskPageJSON:
    secret = door.settings.signing_secret()
    user_id = door.caller_id

    def read(query: TaskListQuery) -> tuple[TaskListQuery, int | None, TaskPage]:
        feed = None
        if params.cursor:
            after, feed = decode_cursor(secret, user_id, query, params.cursor)
            query = replace(query, after=after)
        return query, feed, tasks.list_page(query, feed_position=feed is None)

    if params.filter is None:
        query, feed, page = read(params.query())
    else:
        query, feed, page = filtered(door, params.filter, params, "rest", read)
    if feed is None:
        feed = page.feed_position or 0
    next_cursor = encode_cursor(secret, user_id, query, page.next, feed) if page.next else None
    meta = TaskListMeta(
        count=len(page.items),
        limit=query.limit,
        has_more=page.next is not None,
        next_cursor=next_cursor,
        total=page.total,
        changes_cursor=encode_changes_cursor(secret, user_id, feed),
    )
    body = TaskPageJSON(page.items, meta)
    if next_cursor:
        next_url = request.url.include_query_params(cursor=next_cursor)
        body.headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    return body


@router.post(
    "",
    operation_id="createTask",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskEnvelope,
    summary="Create a task",
    responses=_CREATED | errors(400, 404, 409, 413, 422, 429, examples=_CREATE_EXAMPLES),
)
def create_task(
    door: Door,
    tasks: Annotated[TaskService, uses(TaskService)],
    data: TaskCreate,
    request: Request,
    response: Response,
    idempotent: IdempotentDep,
) -> TaskEnvelope | Response:
    return idempotent.respond(
        door, data, status.HTTP_201_CREATED, lambda: _created(tasks.create(data), request, response)
    )


_QUICK_ADD_EXAMPLES = (VALIDATION, LIST_REFERENCE_NOT_FOUND)
_QUICK_CREATE_EXAMPLES = (*_IDEMPOTENT_EXAMPLES, LIST_REFERENCE_NOT_FOUND, LIST_FULL)


@router.post(
    "/parse",
    operation_id="parseQuickAddTask",
    response_model=QuickAddEnvelope,
    summary="Preview a task typed as text",
    description="Reads a line as a person types it (`Buy milk tomorrow 5pm #Home @errands "
    "!high`) into the task `POST /api/tasks/quick` would create from the same body, and the "
    "tokens it was read from (chips a client draws; `ignore` rejects one). Creates nothing. "
    "The grammar: docs, Quick add.",
    responses=rate_limited(200, "The task the text makes and its tokens.")
    | errors(400, 403, 404, 413, 422, 429, examples=_QUICK_ADD_EXAMPLES),
)
def parse_quick_add(
    quick_add: Annotated[QuickAddService, uses(QuickAddService)], body: QuickAddRequest
) -> QuickAddEnvelope:
    return QuickAddEnvelope(data=quick_add.read(body).preview)


@router.post(
    "/quick",
    operation_id="quickAddTask",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskEnvelope,
    summary="Create a task typed as text",
    description="Creates exactly what `POST /api/tasks/parse` shows for the same body, as "
    "`POST /api/tasks` creates a task (`Location`, `ETag`, `Idempotency-Key`, events).",
    responses=_CREATED | errors(400, 403, 404, 409, 413, 422, 429, examples=_QUICK_CREATE_EXAMPLES),
)
def quick_add_task(
    door: Door,
    tasks: Annotated[TaskService, uses(TaskService)],
    quick_add: Annotated[QuickAddService, uses(QuickAddService)],
    body: QuickAddRequest,
    request: Request,
    response: Response,
    idempotent: IdempotentDep,
) -> TaskEnvelope | Response:
    def create() -> TaskEnvelope:
        return _created(tasks.create(quick_add.read(body).task), request, response)

    return idempotent.respond(door, body, status.HTTP_201_CREATED, create)


# Fixed paths come before /{task_id}, which would otherwise claim them.
@router.get(
    "/stats",
    operation_id="taskStats",
    response_model=TaskStatsEnvelope,
    summary="Counts of your tasks",
)
def task_stats(tasks: Annotated[TaskService, uses(TaskService)]) -> TaskStatsEnvelope:
    return TaskStatsEnvelope(data=stats_public(tasks.stats()))


@router.post(
    "/bulk",
    operation_id="bulkTasks",
    response_model=BulkResponseEnvelope,
    summary="Apply several operations, all or nothing",
    description="Operations run in order in one transaction. If any fails (a task that is not "
    "yours is a 404, as everywhere; one of a list shared with you below editor, a 403, before "
    "any check of the operation's values), nothing is changed and the error names the "
    "operation.",
    responses=rate_limited(
        200,
        "Each operation's result, in order. A replay of an Idempotency-Key's first "
        "response adds `Idempotent-Replayed: true`.",
        "Idempotent-Replayed",
    )
    | errors(400, 404, 409, 413, 422, 429, examples=(BULK_TASK_NOT_FOUND, *_IDEMPOTENT_EXAMPLES)),
)
def bulk(
    door: Door,
    tasks: Annotated[TaskService, uses(TaskService)],
    data: BulkRequest,
    idempotent: IdempotentDep,
) -> BulkResponseEnvelope | Response:
    return idempotent.respond(door, data, status.HTTP_200_OK, lambda: _apply(tasks, data))


def _apply(tasks: TaskService, data: BulkRequest) -> BulkResponseEnvelope:
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
    return BulkResponseEnvelope(data=BulkResponse(results=results))


@router.delete(
    "/completed",
    operation_id="clearCompletedTasks",
    response_model=ClearedCompletedEnvelope,
    summary="Delete all your completed tasks",
    responses=rate_limited(200, "How many completed tasks were deleted.") | errors(429),
)
def clear_completed(tasks: Annotated[TaskService, uses(TaskService)]) -> ClearedCompletedEnvelope:
    return ClearedCompletedEnvelope(data=ClearedCompleted(deleted=tasks.delete_completed()))


@router.get(
    "/{task_id}",
    openapi_extra=acts(Action.LIST_READ),
    operation_id="getTask",
    response_model=TaskEnvelope,
    summary="Get a task",
    responses=ok(200, "The task.", "ETag") | not_modified() | errors(404),
)
def get_task(
    tasks: Annotated[TaskService, uses(TaskService)],
    task_id: TaskId,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> TaskEnvelope | Response:
    task = tasks.get(task_id)
    tag = response.headers["ETag"] = task_etag(task)
    if if_none_match is not None and none_match(if_none_match, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
    return TaskEnvelope(data=TaskPublic.model_validate(task))


@router.put(
    "/{task_id}",
    openapi_extra=acts(Action.TASK_WRITE),
    operation_id="replaceTask",
    response_model=TaskEnvelope,
    summary="Change the fields sent (as PATCH does)",
    description="A field the body does not name keeps its stored value, so a form that "
    "knows fewer fields than the task has never erases the others; `null` clears a nullable "
    "field; an empty body is 422. To replace every field, send every field.",
    responses=_CHANGED | errors(400, 404, 412, 413, 422, 429, examples=_WRITE_EXAMPLES),
)
def replace_task(
    tasks: Annotated[TaskService, uses(TaskService)],
    task_id: TaskId,
    data: TaskReplace,
    response: Response,
    if_match: IfMatch = None,
) -> TaskEnvelope:
    return one_task(tasks.update(task_id, data, if_match_versions(if_match, task_id)), response)


@router.patch(
    "/{task_id}",
    openapi_extra=acts(Action.TASK_WRITE),
    operation_id="updateTask",
    response_model=TaskEnvelope,
    summary="Change some fields of a task",
    description="A `list_id` or `parent_id` other than the task's moves it, with its "
    "subtasks, last into that place; the task's own ones keep it where it is. "
    "`POST /api/tasks/{task_id}/move` places it exactly.",
    responses=_CHANGED | errors(400, 404, 412, 413, 422, 429, examples=_WRITE_EXAMPLES),
)
def update_task(
    tasks: Annotated[TaskService, uses(TaskService)],
    task_id: TaskId,
    data: TaskUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> TaskEnvelope:
    return one_task(tasks.update(task_id, data, if_match_versions(if_match, task_id)), response)


@router.patch(
    "/{task_id}/complete",
    openapi_extra=acts(Action.TASK_WRITE),
    operation_id="completeTask",
    response_model=TaskEnvelope,
    summary="Toggle or set completion",
    description='With no body, toggles `completed`. With `{"completed": true|false}`, sets it.',
    responses=_CHANGED | errors(400, 404, 412, 413, 429),
)
def complete_task(
    tasks: Annotated[TaskService, uses(TaskService)],
    task_id: TaskId,
    response: Response,
    data: Annotated[TaskCompletion | None, Body()] = None,
    if_match: IfMatch = None,
) -> TaskEnvelope:
    completed = None if data is None else data.completed
    expected = if_match_versions(if_match, task_id)
    return one_task(tasks.set_completed(task_id, completed, expected), response)


@router.post(
    "/{task_id}/move",
    openapi_extra=acts(Action.TASK_WRITE),
    operation_id="moveTask",
    response_model=TaskEnvelope,
    summary="Move a task, with its subtasks, to an exact place",
    description="To another list, under another parent, and/or next to a sibling, in one "
    "request (see the body). Its subtasks move with it (into its list). A move writes the "
    "task and, when it changes lists, its subtasks; it takes a place between its new "
    "neighbours without renumbering them (a few are respaced only when they are adjacent).",
    responses=_CHANGED | errors(400, 404, 412, 413, 422, 429, examples=_WRITE_EXAMPLES),
)
def move_task(
    tasks: Annotated[TaskService, uses(TaskService)],
    task_id: TaskId,
    data: TaskMove,
    response: Response,
    if_match: IfMatch = None,
) -> TaskEnvelope:
    expected = if_match_versions(if_match, task_id)
    return one_task(tasks.move(task_id, move_placement(data), expected), response)


@router.get(
    "/{task_id}/subtree",
    openapi_extra=acts(Action.LIST_READ),
    operation_id="getTaskSubtree",
    response_model=TaskSubtreeEnvelope,
    summary="A task and all its subtasks",
    description="The task, then its subtasks depth-first in manual order (each followed by "
    "its own): a checklist in one read. At most 201 tasks (a top-level task has at most 200 "
    "subtasks).",
    responses=errors(404),
)
def task_subtree(
    tasks: Annotated[TaskService, uses(TaskService)], task_id: TaskId
) -> TaskSubtreeEnvelope:
    rows = tasks.subtree(task_id)
    return TaskSubtreeEnvelope(
        data=[TaskPublic.model_validate(row) for row in rows], meta=CountMeta(count=len(rows))
    )


@router.get(
    "/{task_id}/occurrences",
    openapi_extra=acts(Action.LIST_READ),
    operation_id="listTaskOccurrences",
    response_model=TaskOccurrencesEnvelope,
    summary="Preview a recurring task's next due dates",
    description="The due dates its series gives after this task's own, in order: the first "
    "is `next_due_date`, the one completing this task creates. Fewer than `count` when COUNT "
    "or UNTIL ends the series (or nothing comes within 100 years); an empty list for a task "
    "that does not recur.",
    responses=errors(404),
)
def task_occurrences(
    tasks: Annotated[TaskService, uses(TaskService)],
    task_id: TaskId,
    count: Annotated[
        int,
        Query(ge=1, le=OCCURRENCES_MAX, description=f"How many, 1-{OCCURRENCES_MAX}."),
        DecimalDigits,
    ] = 10,
) -> TaskOccurrencesEnvelope:
    task, due_dates = tasks.occurrences(task_id, count)
    return TaskOccurrencesEnvelope(
        data=TaskOccurrences(
            task_id=task.id,
            recurrence=task.recurrence,
            time_zone=task.time_zone,
            occurrences=due_dates,
        )
    )


@router.delete(
    "/{task_id}",
    openapi_extra=acts(Action.TASK_WRITE),
    operation_id="deleteTask",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a task",
    responses=rate_limited(204, "Deleted.") | errors(404, 412, 429),
)
def delete_task(
    tasks: Annotated[TaskService, uses(TaskService)], task_id: TaskId, if_match: IfMatch = None
) -> None:
    tasks.delete(task_id, expected=if_match_versions(if_match, task_id))
