"""Every route that reaches a list's rows by id says which action it performs, so the role
matrix (test_role_matrix.py) covers it: a new route with `{list_id}`, `{task_id}`, `{trash_id}`
or `{event_id}` in its path that declares no action (`openapi_extra=acts(...)`,
backend/api/actions.py) fails here, as does a route that answers change events (the feed, its
live stream) without `feeds(...)`, and a tool by such an id without its `action`. Every id a
body, a query or a tool's arguments carries says what it names (backend/models/references.py),
so the reference matrix (test_reference_matrix.py) covers it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (registers every table on the metadata)
from backend.api.actions import TASK_STATE, acts
from backend.api.live import ChangeStream
from backend.mcp.tools import TOOLS as MCP_TOOLS
from backend.models.envelopes import TaskChangesEnvelope
from backend.models.references import Subject
from backend.services.statements.access import LEAST_ROLE, Action
from tests import resources
from tests.conftest import Account, api_routes
from tests.sharing.references import FEEDS, ID_NAME, ROUTES, TOOLS, id_fields, tool_fields

# The published contract's `/api/{user_id}/...` twins answer as their `/api/...` routes do
# (one implementation); they are checked through those.
_TWINS = "/api/{user_id}/"
# Path parameters naming a list's rows: a list, a task, a deleted task (the trash's), an
# activity entry (its undo).
_BY_ID = ("list_id", "task_id", "trash_id", "event_id")


def _by_id(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in api_routes(app):
        if route.path.startswith(_TWINS):
            continue
        if any(f"{{{name}}}" in route.path for name in _BY_ID):
            found.update((method, route.path) for method in route.methods - {"HEAD"})
    return found


def test_every_route_by_id_declares_its_action(app: FastAPI) -> None:
    assert _by_id(app) - set(ROUTES) == set()


def test_every_declared_route_exists(app: FastAPI) -> None:
    assert set(ROUTES) - _by_id(app) == set()


def test_every_route_answering_changes_is_a_declared_feed(app: FastAPI) -> None:
    """The change feed and its live stream read a list's rows by no id: `FEEDS` puts them in
    the role matrix; a new route answering change events must be there too."""
    feeds = {
        (method, route.path)
        for route in api_routes(app)
        if not route.path.startswith(_TWINS)
        and (route.response_model is TaskChangesEnvelope or route.response_class is ChangeStream)
        for method in route.methods - {"HEAD"}
    }
    assert feeds == set(FEEDS)


def test_every_tool_by_id_declares_its_action() -> None:
    by_id = {
        tool.name
        for tool in MCP_TOOLS
        if {"task_id", "list_id", "trash_id"} & set(tool.arguments.model_fields)
    }
    assert by_id == set(TOOLS)


def test_every_id_field_declares_what_it_names(app: FastAPI) -> None:
    """A field of a body, a query or a tool's arguments that carries an id (`id`, `*_id`,
    `*_ids`, `assignee(s)`) says what it names (backend/models/references.py), so the
    reference matrix (test_reference_matrix.py) sends it every kind of row: a new one without
    a marker fails here."""
    undeclared = [f.id for f in id_fields(app) if ID_NAME.search(f.name) and not f.markers]
    assert undeclared == []


def test_a_tool_by_id_declares_its_action() -> None:
    """A tool whose arguments name the row it acts on (`SUBJECT`) has its action in
    its `action`; a tool with one without a subject reaches its list by a reference."""
    subjects = {f.target[1] for f in tool_fields() if Subject() in f.markers}
    referring = {f.target[1] for f in tool_fields() if f.reference and f.reference.action}
    assert subjects <= set(TOOLS)
    assert set(TOOLS) - subjects <= referring


def test_every_reference_names_a_known_table_and_action(app: FastAPI) -> None:
    for field in id_fields(app):
        reference = field.reference
        if reference is not None:
            assert reference.table in SQLModel.metadata.tables, field.id
            assert reference.action is None or reference.action in LEAST_ROLE, field.id


def test_a_task_state_is_declared_as_a_patch_of_the_task() -> None:
    """`acts(..., task=...)`: the fields a route's task must hold, a valid `TaskUpdate` body
    (a field no task has fails where the route is declared), under `x-task-state`."""
    declared = acts(Action.TASK_WRITE, task={"due_date": "2026-12-01T09:00:00Z"})
    assert declared[TASK_STATE] == {"due_date": "2026-12-01T09:00:00Z"}
    assert TASK_STATE not in acts(Action.TASK_WRITE)
    with pytest.raises(ValidationError):
        acts(Action.TASK_WRITE, task={"due": "2026-12-01"})


def test_the_guards_put_a_routes_task_in_its_declared_state(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What every generated guard calls after making a route's task (tests/resources.py
    `in_state`): the task then holds the declared fields; a route declaring none is left be."""
    route = ("POST", "/api/tasks/{task_id}/declared-state")
    state = {"due_date": "2026-12-01T09:00:00Z", "priority": "high"}
    monkeypatch.setattr(resources, "_task_states", lambda: {route: state})
    made = client.post("/api/tasks", json={"title": "t"}, headers=alice.headers)
    task_id = made.json()["data"]["id"]
    url = f"/api/tasks/{task_id}"
    resources.in_state(client, alice, task_id, "GET", "/api/tasks/{task_id}")
    assert client.get(url, headers=alice.headers).json()["data"]["due_date"] is None
    resources.in_state(client, alice, task_id, *route)
    task = client.get(url, headers=alice.headers).json()["data"]
    assert {key: task[key] for key in state} == state
