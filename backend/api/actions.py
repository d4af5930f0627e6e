"""What each route does to a list's rows, declared on the route itself: `acts(Action.X)` for
a route by a row's id, `feeds(Action.X)` for one answering change events. It is part of the
OpenAPI operation (`x-action`, `x-least-role`), so clients read it too, and `declared` reads it
back for the role matrix (tests/sharing/test_declared.py): no table of routes beside them.
A route by a task's id that succeeds only on a task in some state (a snooze: one with a due
date) says so beside its action, `acts(Action.X, task={"due_date": ...})` (`x-task-state`):
every generated guard that makes a task for the route puts it in that state (`task_states`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from backend.models.references import Action
from backend.models.task import TaskUpdate
from backend.services.statements.access import least_role

ACTION = "x-action"
FEED = "x-feed-action"
LEAST = "x-least-role"
# A route whose methods act differently (a DAV resource: PROPFIND and GET read, PUT and DELETE
# write): method -> action.
BY_METHOD = "x-actions-by-method"
# The state a route's task must be in for a 2xx: fields of a task, each with a value that will
# do, as a PATCH of the task sets them (a snooze: `{"due_date": ...}`; any other task: 409).
TASK_STATE = "x-task-state"


def acts(action: Action, *, task: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A route's `openapi_extra`: it performs `action` on the list's rows it names; `task`:
    the fields its task must hold for it to succeed (`TASK_STATE`, a `TaskUpdate` body)."""
    declared: dict[str, Any] = {ACTION: action.value, LEAST: least_role(action)}
    if task:
        TaskUpdate.model_validate(task)  # a field no task has fails at import
        declared[TASK_STATE] = dict(task)
    return declared


def feeds(action: Action) -> dict[str, Any]:
    """A route's `openapi_extra`: it answers the changes of the lists where the caller may
    `action` (and, after it lost the role, none)."""
    return {FEED: action.value, LEAST: least_role(action)}


def acts_by_method(actions: Mapping[str, Action]) -> dict[str, Any]:
    """A route's `openapi_extra`: each of its methods performs its action on the list's rows
    the route names (`BY_METHOD`; HEAD declared as itself)."""
    return {BY_METHOD: {method: action.value for method, action in actions.items()}}


def _routes(app: FastAPI) -> list[APIRoute]:
    found: list[APIRoute] = []
    stack: list[Any] = list(app.routes)
    while stack:
        route = stack.pop()
        # An included router is one entry of `app.routes`, its routes inside.
        inner = getattr(route, "original_router", None)
        stack.extend(inner.routes if inner is not None else ())
        if isinstance(route, APIRoute):
            found.append(route)
    return found


def declared(app: FastAPI, key: str = ACTION) -> dict[tuple[str, str], Action]:
    """(method, path) -> the action each route of `app` declares under `key` (`ACTION`,
    `FEED`, or `BY_METHOD`: each method's own)."""
    found: dict[tuple[str, str], Action] = {}
    for route in _routes(app):
        if key in (route.openapi_extra or {}):
            value = route.openapi_extra[key]  # type: ignore[index]
            if isinstance(value, dict):
                found |= {(m, route.path): Action(a) for m, a in value.items()}
                continue
            action = Action(value)
            methods = route.methods or set()
            found |= {(method, route.path): action for method in methods - {"HEAD"}}
    return found


def task_state(route: APIRoute) -> dict[str, Any]:
    """The fields the route's task must hold (`acts(..., task=...)`); none: any task."""
    return dict((route.openapi_extra or {}).get(TASK_STATE) or {})


def task_states(app: FastAPI) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> the state each route of `app` needs its task in, where it declares
    one (its /api/{user_id}/... twin's too)."""
    return {
        (method, route.path): state
        for route in _routes(app)
        if (state := task_state(route))
        for method in (route.methods or set()) - {"HEAD"}
    }
