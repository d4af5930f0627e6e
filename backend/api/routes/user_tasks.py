"""`/api/{user_id}/tasks...` and `/api/{user_id}/lists...`: the published hackathon contract's
paths, served by the `/api/tasks...` and `/api/lists...` endpoints themselves.

The token selects, as everywhere: the user id is compared with the caller once the door is open
(the twin's 401, 422 and 429); any other id gets the twin's 404 for a missing task, byte for
byte, and nothing is read or written. Matched last (`api_router`): `/api/tasks` pays nothing.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Annotated, Any, get_type_hints

from fastapi import APIRouter, Path
from fastapi.routing import APIRoute

from backend.api.actions import TASK_STATE, task_state
from backend.api.deps import Door, DoorRoute
from backend.api.responses import (
    BULK_TASK_NOT_FOUND,
    EXAMPLES,
    LIST_NOT_FOUND,
    TASK_NOT_FOUND,
    ErrorExample,
    errors,
)
from backend.api.routes import changes, lists, tasks
from backend.api.routes.tasks import TaskRoute
from backend.contracts.tasks import USER_ID_MAX_LENGTH, USER_ID_MIN_LENGTH
from backend.errors import NotFound
from backend.models.common import StorableText
from backend.services.unit_of_work import UnitOfWork

PREFIX = "/api/{user_id}/tasks"
LISTS_PREFIX = "/api/{user_id}/lists"
TAG = "user-tasks"
LISTS_TAG = "user-lists"

_NOUN = re.compile(r"(Task|List)")
_CALLER = "caller_for_path_user"


def user_operation_id(operation_id: str) -> str:
    """A twin's own operation id, derived (a generated client has both): `listTasks` ->
    `listUserTasks`, `createList` -> `createUserList`, `taskStats` -> `userTaskStats`."""
    if operation_id.startswith(("task", "list")) and not _NOUN.search(operation_id):
        return "user" + operation_id[0].upper() + operation_id[1:]
    return _NOUN.sub(r"User\1", operation_id, count=1)


UserId = Annotated[
    str,
    Path(
        min_length=USER_ID_MIN_LENGTH,
        max_length=USER_ID_MAX_LENGTH,
        description="The caller's user id (the token's `sub`). Any other id answers 404 "
        "`Task not found`, as for a task that does not exist.",
        examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"],
    ),
    StorableText,
]

_NO_TASK = (
    "No such task for this user, or `user_id` is not the caller's id (`NOT_FOUND`): "
    "the same answer either way, and the same as for another user's task."
)


def for_path_user(endpoint: Callable[..., Any], missing: ErrorExample) -> Callable[..., Any]:
    """`endpoint` with a leading `user_id` path parameter that must be the caller's id, checked
    in the unit of work where the caller is resolved: else `missing`, before any statement."""
    hints = get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    if "user_id" in signature.parameters:
        raise TypeError(f"{endpoint.__name__} already takes a user_id")
    # The caller's door, to check `user_id` against: the endpoint's own (a dependency is
    # resolved once per request), whether it takes it or only services through it.
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("user_id", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=UserId),
        *(p.replace(annotation=hints[p.name]) for p in signature.parameters.values()),
        inspect.Parameter(_CALLER, keyword, annotation=Door),
    ]

    def endpoint_for_path_user(user_id: str, **values: Any) -> Any:
        door: UnitOfWork = values.pop(_CALLER)
        if user_id != door.caller_id:
            raise NotFound(missing.message, details=missing.details)
        return endpoint(**values)

    endpoint_for_path_user.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=inspect.Signature.empty
    )
    # The same, for readers of annotations (`typing.get_type_hints`) rather than signatures.
    endpoint_for_path_user.__annotations__ = {p.name: p.annotation for p in parameters}
    endpoint_for_path_user.__name__ = f"{endpoint.__name__}_for_path_user"
    endpoint_for_path_user.__doc__ = endpoint.__doc__
    return endpoint_for_path_user


def _not_found(twin: APIRoute, missing: ErrorExample) -> list[ErrorExample]:
    """The twin's documented 404 examples, the first what another user id gets: `missing`
    (a task, a list), or for bulk its first operation's task."""
    shown = twin.responses.get(404, {}).get("content", {}).get("application/json", {})
    documented = [EXAMPLES[name] for name in shown.get("examples", {})]
    first = BULK_TASK_NOT_FOUND if BULK_TASK_NOT_FOUND in documented else missing
    return [first, *(example for example in documented if example is not first)]


def _responses(twin: APIRoute, missing: ErrorExample, text: str) -> dict[int | str, dict[str, Any]]:
    """The twin's responses, with a 404 that also covers a user id that is not the caller's."""
    not_found = errors(404, examples=_not_found(twin, missing), descriptions={404: text})
    return {**twin.responses, **not_found}


def _description(twin: APIRoute, missing: ErrorExample) -> str:
    method = sorted(twin.methods or ())[0]
    note = (
        f"The published contract's path for `{method} {twin.path}`: the same answer when "
        f"`user_id` is the caller's id, 404 `{missing.message}` when it is not."
    )
    return f"{twin.description}\n\n{note}" if twin.description else note


_NO_LIST = (
    "No such list (or task) for this user, or `user_id` is not the caller's id "
    "(`NOT_FOUND`): the same answer either way, and the same as for another user's list."
)


def _router(
    prefix: str,
    twinned: tuple[APIRouter, ...],
    tag: str,
    missing: ErrorExample,
    text: str,
    route_class: type[APIRoute],
) -> APIRouter:
    router = APIRouter(prefix=prefix, route_class=route_class)
    stem = prefix.replace("/{user_id}", "")
    for twin in (route for routes in twinned for route in routes.routes):
        if not isinstance(twin, APIRoute):
            continue
        answer = _not_found(twin, missing)[0]
        router.add_api_route(
            twin.path.removeprefix(stem),
            for_path_user(inspect.unwrap(twin.endpoint), answer),
            methods=sorted(twin.methods or ()),
            response_model=twin.response_model,
            status_code=twin.status_code,
            tags=[tag],
            summary=twin.summary,
            description=_description(twin, answer),
            response_description=twin.response_description,
            responses=_responses(twin, missing, text),
            operation_id=user_operation_id(twin.operation_id or ""),
            name=f"{twin.name}_for_path_user",
            # The task the twin acts on must be in its state too (api/actions.py).
            openapi_extra={TASK_STATE: state} if (state := task_state(twin)) else None,
        )
        # Idempotency-Key records are per route path: a retry through either spelling of
        # the path is the same request (backend/api/idempotency.py reads this).
        router.routes[-1].canonical_path = twin.path  # type: ignore[attr-defined]
    return router


# Both, in this order (backend/api/routes/__init__.py includes them).
ROUTERS = (
    _router(PREFIX, (tasks.router, changes.router), TAG, TASK_NOT_FOUND, _NO_TASK, TaskRoute),
    _router(LISTS_PREFIX, (lists.router,), LISTS_TAG, LIST_NOT_FOUND, _NO_LIST, DoorRoute),
)
