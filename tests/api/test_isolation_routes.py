"""Isolation for every route that takes the door (a signed-in caller), generated from the
app's route table: a new route is covered without anyone listing it.

For each route and method, Bob sends the request aimed at Alice's task and, where the route
names a task, the same request aimed at a task that does not exist: the two answers must be
identical (status, body, header names), and Alice's tasks must be exactly as before. Routes
that name no task must not reveal Alice's tasks in their answer.

Under /api/{user_id}/tasks, Bob puts Alice's user id in the path (and, where the route names
a task, aims at Alice's task): every route, those naming no task included, must answer exactly
as Bob's own path does for a task that does not exist (a 404), and change nothing of Alice's.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from backend.api.door import door
from backend.config import Settings
from backend.main import create_app
from tests.conftest import Account, api_routes

# A valid body for each body schema a task route takes, `TASK` standing for the target id.
# A route with a body schema missing here fails the test below: add a sample.
TASK = -1
SAMPLES: dict[str, Any] = {
    "TaskCreate": {"title": "bob's"},
    # With a rule: the write reads the stored task first (its series), which must be as
    # invisible to Bob as the write itself.
    "TaskReplace": {
        "title": "hijacked",
        "completed": True,
        "tags": ["x"],
        "due_date": "2030-01-01",
        "recurrence": "daily",
        "time_zone": "Europe/Berlin",
        "reminders": [{"minutes_before_due": 5}],
    },
    "TaskUpdate": {"title": "hijacked", "priority": "low", "recurrence": "weekly"},
    "TaskCompletion": {"completed": True},
    "BulkRequest": {
        "operations": [
            {"op": "set_priority", "id": TASK, "priority": "low"},
            {"op": "complete", "id": TASK},
        ]
    },
}
ALICE_TITLE = "alice-secret-title"
USER_PATHS = "/api/{user_id}/tasks"


def _door_routes() -> list[tuple[str, str, type[BaseModel] | None]]:
    settings = Settings(environment="test", jwt_secret="t" * 48)
    found = []
    for route in api_routes(create_app(settings)):
        if not any(dependency.call is door for dependency in route.dependant.dependencies):
            continue
        bodies = [f.field_info.annotation for f in route.dependant.body_params]
        body = next((b for b in bodies if b is not None), None)
        # `X | None` (an optional body): the model inside.
        model = next((a for a in getattr(body, "__args__", (body,)) if isinstance(a, type)), None)
        for method in sorted(route.methods):
            found.append((method, route.path, model))
    return found


ROUTES = _door_routes()


def _body(model: type[BaseModel] | None, task_id: int) -> Any:
    if model is None:
        return None
    if model.__name__ not in SAMPLES:
        pytest.fail(f"no sample body for {model.__name__}: add one to SAMPLES")
    return json.loads(json.dumps(SAMPLES[model.__name__]).replace(str(TASK), str(task_id)))


def test_the_route_table_is_found() -> None:
    paths = {path for _, path, _ in ROUTES}
    assert {"/api/tasks", "/api/tasks/{task_id}", "/api/tasks/bulk", "/api/auth/me"} <= paths
    assert len(ROUTES) >= 10
    # Every /api/tasks route and method has its /api/{user_id}/tasks twin.
    tasks = {r for r in ROUTES if r[1].startswith("/api/tasks")}
    twins = {(m, p.replace("/api/tasks", USER_PATHS, 1), b) for m, p, b in tasks}
    assert twins == {r for r in ROUTES if r[1].startswith(USER_PATHS)}


@pytest.mark.parametrize(
    ("method", "path", "model"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_bob_cannot_reach_alices_tasks(
    client: TestClient,
    alice: Account,
    bob: Account,
    method: str,
    path: str,
    model: type[BaseModel] | None,
) -> None:
    alices = [
        client.post(
            "/api/tasks",
            json={"title": ALICE_TITLE, "priority": "high", "tags": ["a"], "completed": done},
            headers=alice.headers,
        ).json()["data"]
        for done in (False, True)
    ]
    target = alices[0]["id"]
    missing = target + 10_000

    def send(task_id: int, user_id: str = alice.id, route: str = path, verb: str = method) -> Any:
        url = route.replace("{task_id}", str(task_id)).replace("{user_id}", quote(user_id, safe=""))
        body = _body(model, task_id) if verb == method else None
        return client.request(verb, url, json=body, headers=bob.headers)

    foreign = send(target)
    names_a_task = "{task_id}" in path or (model is not None and model.__name__ == "BulkRequest")
    if path.startswith(USER_PATHS):
        # Alice's id in Bob's path: what Bob's own path answers for a task that does not
        # exist (this request on a missing task, or, where it names none, a GET of one).
        if names_a_task:
            absent = send(missing, bob.id)
        else:
            absent = send(missing, bob.id, USER_PATHS + "/{task_id}", "GET")
        assert foreign.status_code == absent.status_code == 404, foreign.text
        assert foreign.content == absent.content
        ignore = {"x-request-id", "content-length"}
        assert set(foreign.headers) - ignore == set(absent.headers) - ignore
        # The same for an id nobody has.
        assert send(target, "no-such-user").content == absent.content
    elif names_a_task:
        absent = send(missing)
        assert foreign.status_code == absent.status_code == 404, foreign.text
        assert foreign.content == absent.content
        ignore = {"x-request-id", "content-length"}
        assert set(foreign.headers) - ignore == set(absent.headers) - ignore
    else:
        assert foreign.status_code < 400, foreign.text
        assert ALICE_TITLE not in foreign.text and alice.id not in foreign.text

    after = [
        client.get(f"/api/tasks/{task['id']}", headers=alice.headers).json()["data"]
        for task in alices
    ]
    assert after == alices
