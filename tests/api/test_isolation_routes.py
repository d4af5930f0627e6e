"""Isolation for every route that takes the door (a signed-in caller), generated from the
app's route table: a new route is covered without anyone listing it.

For each route, method and sample body, Bob sends the request aimed at Alice's task or list
(the path's `{task_id}` / `{list_id}`, a bulk operation's task) and the same request aimed at
one that does not exist: the two answers must be identical (status, body, header names). A
body that names other rows (`list_id`, `parent_id`, `after_id`, `before_id`) is sent again
aimed at Bob's own row, naming Alice's rows, and naming rows that do not exist: identical
answers again. Routes that name nothing of anyone's must not reveal Alice's rows in their
answer. Alice's tasks and lists must be exactly as before, whatever Bob sent.

Under /api/{user_id}/tasks and /api/{user_id}/lists, Bob puts Alice's user id in the path (and
aims at Alice's row): every route, those naming nothing included, must answer exactly as Bob's
own path does for a row that does not exist (a 404), and change nothing of Alice's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from backend.api.door import door
from backend.config import Settings
from backend.main import create_app
from tests.conftest import Account, api_routes

# Placeholders in the sample bodies: the target task (a bulk operation's), a list, another
# task (a parent or an anchor) and another list (a list's anchor).
TASK, LIST, REF, LIST_REF = -1, -2, -3, -4
# Valid bodies for each body schema a route takes (each one is sent). A route with a body
# schema missing here fails the test below: add a sample.
SAMPLES: dict[str, list[Any]] = {
    "TaskCreate": [
        {"title": "bob's"},
        {"title": "in a list", "list_id": LIST},
        {"title": "a subtask", "parent_id": REF},
    ],
    # With a rule: the write reads the stored task first (its series), which must be as
    # invisible to Bob as the write itself.
    "TaskReplace": [
        {
            "title": "hijacked",
            "completed": True,
            "tags": ["x"],
            "due_date": "2030-01-01",
            "recurrence": "daily",
            "time_zone": "Europe/Berlin",
            "reminders": [{"minutes_before_due": 5}],
        },
        {"title": "moved", "list_id": LIST},
        {"title": "moved", "parent_id": REF},
    ],
    "TaskUpdate": [
        {"title": "hijacked", "priority": "low", "recurrence": "weekly"},
        {"list_id": LIST},
        {"parent_id": REF, "title": "moved"},
    ],
    "TaskCompletion": [{"completed": True}],
    "BulkRequest": [
        {
            "operations": [
                {"op": "set_priority", "id": TASK, "priority": "low"},
                {"op": "complete", "id": TASK},
            ]
        },
        {"operations": [{"op": "move", "id": TASK, "list_id": LIST}]},
    ],
    "TaskMove": [
        {"list_id": LIST},
        {"parent_id": REF},
        {"after_id": REF},
        {"before_id": REF},
        {"list_id": LIST, "before_id": REF},
    ],
    "ListCreate": [{"name": "alice-secret-list"}],
    "ListReplace": [{"name": "hijacked", "color": "#000000"}],
    "ListUpdate": [{"name": "hijacked"}],
    "ListMove": [{}, {"after_id": LIST_REF}, {"before_id": LIST_REF}],
}
ALICE_TITLE = "alice-secret-title"
ALICE_LIST = "alice-secret-list"
TWIN_STEMS = ("/api/{user_id}/tasks", "/api/{user_id}/lists")


# Chat's routes have their two-user tests in tests/chat/test_isolation.py: a turn needs the
# fake model server, and a conversation exists only once a turn stored it.
CHAT_PATHS = {
    "/api/chat",
    "/api/{user_id}/chat",
    "/api/conversations",
    "/api/conversations/{conversation_id}",
    "/api/conversations/{conversation_id}/messages",
}


def _door_routes(
    skipped: set[str] = CHAT_PATHS,
) -> list[tuple[str, str, type[BaseModel] | None]]:
    settings = Settings(environment="test", jwt_secret="t" * 48)
    found = []
    for route in api_routes(create_app(settings)):
        if not any(dependency.call is door for dependency in route.dependant.dependencies):
            continue
        if route.path in skipped:
            continue
        bodies = [f.field_info.annotation for f in route.dependant.body_params]
        body = next((b for b in bodies if b is not None), None)
        # `X | None` (an optional body): the model inside.
        model = next((a for a in getattr(body, "__args__", (body,)) if isinstance(a, type)), None)
        for method in sorted(route.methods):
            found.append((method, route.path, model))
    return found


ROUTES = _door_routes()
CASES = [
    pytest.param(method, path, model, index, id=f"{method} {path} {index}")
    for method, path, model in ROUTES
    for index in range(len(SAMPLES.get(model.__name__, [None])) if model is not None else 1)
]


def test_only_chat_routes_are_left_to_their_own_tests() -> None:
    every = {path for _, path, _ in _door_routes(skipped=set())}
    assert every - {path for _, path, _ in ROUTES} == CHAT_PATHS


def test_the_route_table_is_found() -> None:
    paths = {path for _, path, _ in ROUTES}
    assert {"/api/tasks", "/api/tasks/{task_id}", "/api/tasks/bulk", "/api/auth/me"} <= paths
    assert {"/api/lists", "/api/lists/{list_id}", "/api/tasks/{task_id}/move"} <= paths
    assert len(ROUTES) >= 10
    # Every /api/tasks and /api/lists route and method has its /api/{user_id}/... twin.
    for stem, twin_stem in zip(("/api/tasks", "/api/lists"), TWIN_STEMS, strict=True):
        own = {r for r in ROUTES if r[1].startswith(stem)}
        twins = {(m, p.replace(stem, twin_stem, 1), b) for m, p, b in own}
        assert twins == {r for r in ROUTES if r[1].startswith(twin_stem)}
    for _, _, model in ROUTES:
        if model is not None:
            assert model.__name__ in SAMPLES, f"no sample body for {model.__name__}: add one"


@dataclass(frozen=True)
class Rows:
    """One user's rows a request may aim at or name."""

    task: int
    list: int
    ref: int  # another task: a parent, an anchor
    list_ref: int  # another list: an anchor

    def fill(self, sample: Any) -> Any:
        text = json.dumps(sample)
        for placeholder, value in (
            (TASK, self.task),
            (LIST, self.list),
            (REF, self.ref),
            (LIST_REF, self.list_ref),
        ):
            text = text.replace(str(placeholder), str(value))
        return json.loads(text)


def _names_rows(sample: Any) -> bool:
    text = json.dumps(sample)
    return any(str(p) in text for p in (LIST, REF, LIST_REF))


def _rows_of(client: TestClient, account: Account, title: str, name: str) -> Rows:
    def task(**extra: Any) -> int:
        created = client.post("/api/tasks", json={"title": title, **extra}, headers=account.headers)
        assert created.status_code == 201, created.text
        task_id: int = created.json()["data"]["id"]
        return task_id

    def a_list(suffix: str) -> int:
        created = client.post("/api/lists", json={"name": name + suffix}, headers=account.headers)
        assert created.status_code == 201, created.text
        list_id: int = created.json()["data"]["id"]
        return list_id

    listed = a_list("")
    rows = Rows(
        task=task(priority="high", tags=["a"]), list=listed, ref=task(), list_ref=a_list(" 2")
    )
    task(list_id=listed, completed=True)  # a task in the list, completed
    task(parent_id=rows.ref)  # a subtask
    return rows


def _state(client: TestClient, account: Account) -> Any:
    tasks = client.get("/api/tasks", params={"limit": 500}, headers=account.headers).json()["data"]
    lists = client.get("/api/lists", headers=account.headers).json()["data"]
    return tasks, lists


MISSING = 10_000_000


@pytest.mark.parametrize(("method", "path", "model", "index"), CASES)
def test_bob_cannot_reach_alices_rows(
    client: TestClient,
    alice: Account,
    bob: Account,
    method: str,
    path: str,
    model: type[BaseModel] | None,
    index: int,
) -> None:
    alices = _rows_of(client, alice, ALICE_TITLE, ALICE_LIST)
    bobs = _rows_of(client, bob, "bob's own", "bob's list")
    missing = Rows(task=MISSING, list=MISSING + 1, ref=MISSING + 2, list_ref=MISSING + 3)
    before = _state(client, alice)
    sample = SAMPLES[model.__name__][index] if model is not None else None

    def send(
        target: Rows,
        named: Rows,
        user_id: str = alice.id,
        route: str = path,
        verb: str = method,
    ) -> Any:
        url = (
            route.replace("{task_id}", str(target.task))
            .replace("{list_id}", str(target.list))
            .replace("{user_id}", quote(user_id, safe=""))
        )
        body = None
        if sample is not None and verb == method:
            # The bulk operation's task is the target; everything else named is `named`'s.
            body = Rows(target.task, named.list, named.ref, named.list_ref).fill(sample)
        return client.request(verb, url, json=body, headers=bob.headers)

    def same(foreign: Any, absent: Any) -> None:
        assert foreign.status_code == absent.status_code == 404, foreign.text
        assert foreign.content == absent.content
        ignore = {"x-request-id", "content-length"}
        assert set(foreign.headers) - ignore == set(absent.headers) - ignore

    aims = (
        "{task_id}" in path
        or "{list_id}" in path
        or (model is not None and model.__name__ == "BulkRequest")
    )
    twin = next((stem for stem in TWIN_STEMS if path.startswith(stem)), None)
    if twin is not None:
        # Alice's id in Bob's path: what Bob's own path answers for a row that does not
        # exist (this request on a missing row, or, where it names none, a GET of one).
        foreign = send(alices, bobs)
        if aims:
            absent = send(missing, bobs, bob.id)
        else:
            resource = "/{task_id}" if twin.endswith("tasks") else "/{list_id}"
            absent = send(missing, bobs, bob.id, twin + resource, "GET")
        same(foreign, absent)
        # The same for an id nobody has.
        assert send(alices, bobs, "no-such-user").content == absent.content
    else:
        if aims:
            # Alice's task or list as the target (naming Bob's own rows otherwise).
            same(send(alices, bobs), send(missing, bobs))
        if sample is not None and _names_rows(sample):
            # Bob's own target, naming Alice's rows: as if they did not exist.
            same(send(bobs, alices), send(bobs, missing))
        if not aims and not (sample is not None and _names_rows(sample)):
            answer = send(bobs, bobs)
            assert answer.status_code < 400, answer.text
            assert ALICE_TITLE not in answer.text and alice.id not in answer.text
            if ALICE_LIST not in json.dumps(sample):  # Bob may name a list as Alice did
                assert ALICE_LIST not in answer.text, answer.text
    assert _state(client, alice) == before
