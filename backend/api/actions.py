"""What each route does to a list's rows, declared on the route itself: `acts(Action.X)` for
a route by a row's id, `feeds(Action.X)` for one answering change events. It is part of the
OpenAPI operation (`x-action`, `x-least-role`), so clients read it too, and `declared` reads it
back for the role matrix (tests/sharing/test_declared.py): no table of routes beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from backend.models.references import Action
from backend.services.statements.access import least_role

ACTION = "x-action"
FEED = "x-feed-action"
LEAST = "x-least-role"
# A route whose methods act differently (a DAV resource: PROPFIND and GET read, PUT and DELETE
# write): method -> action.
BY_METHOD = "x-actions-by-method"


def acts(action: Action) -> dict[str, Any]:
    """A route's `openapi_extra`: it performs `action` on the list's rows it names."""
    return {ACTION: action.value, LEAST: least_role(action)}


def feeds(action: Action) -> dict[str, Any]:
    """A route's `openapi_extra`: it answers the changes of the lists where the caller may
    `action` (and, after it lost the role, none)."""
    return {FEED: action.value, LEAST: least_role(action)}


def acts_by_method(actions: Mapping[str, Action]) -> dict[str, Any]:
    """A route's `openapi_extra`: each of its methods performs its action on the list's rows
    the route names (`BY_METHOD`; HEAD declared as itself)."""
    return {BY_METHOD: {method: action.value for method, action in actions.items()}}


def declared(app: FastAPI, key: str = ACTION) -> dict[tuple[str, str], Action]:
    """(method, path) -> the action each route of `app` declares under `key` (`ACTION`,
    `FEED`, or `BY_METHOD`: each method's own)."""
    found: dict[tuple[str, str], Action] = {}
    stack: list[Any] = list(app.routes)
    while stack:
        route = stack.pop()
        # An included router is one entry of `app.routes`, its routes inside.
        inner = getattr(route, "original_router", None)
        stack.extend(inner.routes if inner is not None else ())
        if isinstance(route, APIRoute) and key in (route.openapi_extra or {}):
            value = route.openapi_extra[key]  # type: ignore[index]
            if isinstance(value, dict):
                found |= {(m, route.path): Action(a) for m, a in value.items()}
                continue
            action = Action(value)
            methods = route.methods or set()
            found |= {(method, route.path): action for method in methods - {"HEAD"}}
    return found
