"""Every route that reaches a list's rows by id says which action it performs, so the role
matrix (test_role_matrix.py) covers it: a new route with `{list_id}` or `{task_id}` in its
path and no entry in backend/services/access.py's `ROUTES` fails here."""

from __future__ import annotations

from fastapi import FastAPI

from backend.mcp.tools import TOOLS as MCP_TOOLS
from backend.services.access import ROUTES, TOOLS
from tests.conftest import api_routes

# The published contract's `/api/{user_id}/...` twins answer as their `/api/...` routes do
# (one implementation); they are checked through those.
_TWINS = "/api/{user_id}/"


def _by_id(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in api_routes(app):
        if route.path.startswith(_TWINS):
            continue
        if "{list_id}" in route.path or "{task_id}" in route.path:
            found.update((method, route.path) for method in route.methods - {"HEAD"})
    return found


def test_every_route_by_id_declares_its_action(app: FastAPI) -> None:
    assert _by_id(app) - set(ROUTES) == set()


def test_every_declared_route_exists(app: FastAPI) -> None:
    assert set(ROUTES) - _by_id(app) == set()


def test_every_tool_by_id_declares_its_action() -> None:
    by_id = {
        tool.name for tool in MCP_TOOLS if {"task_id", "list_id"} & set(tool.arguments.model_fields)
    }
    assert by_id == set(TOOLS)
