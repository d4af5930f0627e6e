"""Isolation for every route that takes the door (a signed-in caller), generated from the
app's route table: a new route is covered without anyone listing it.

For each route, method and sample body, Bob sends the request aimed at Alice's rows (every
path parameter: `{task_id}`, `{list_id}` and any other, made through its collection's POST
route, tests/resources.py; a bulk operation's task) and the same request aimed at rows that do
not exist: the two answers must be identical (status, body, header names). A path with more
than one row in it is also aimed at Alice's row in one parameter, Bob's in the others. A
body that names other rows (`list_id`, `parent_id`, `after_id`, `before_id`) is sent again
aimed at Bob's own row, naming Alice's rows, and naming rows that do not exist: identical
answers again. Routes that name nothing of anyone's must not reveal Alice's rows in their
answer. Alice's rows in every table with a `user_id` column (read from the database, so a new
table is compared without being named) must be exactly as before, whatever Bob sent.

Under /api/{user_id}/tasks and /api/{user_id}/lists, Bob puts Alice's user id in the path (and
aims at Alice's row): every route, those naming nothing included, must answer exactly as Bob's
own path does for a row that does not exist (a 404), and change nothing of Alice's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Engine

from tests.conftest import Account
from tests.resources import (
    LIST,
    LIST_REF,
    REF,
    SAMPLES,
    TASK,
    Creator,
    body_model,
    body_of,
    creators,
    fill_path,
    fill_sample,
    in_state,
    make_row,
    path_parameters,
    placeholders_in,
    samples,
    snapshot,
    takes_the_door,
    the_app_routes,
    unfillable,
    unique,
)
from tests.sharing.references import ROUTES as SHARING_ROUTES

ALICE_TITLE = "alice-secret-title"
ALICE_LIST = "alice-secret-list"
TWIN_STEMS = ("/api/{user_id}/tasks", "/api/{user_id}/lists")


# Chat's routes have their two-user tests in tests/chat/test_isolation.py (ChatKit's in
# tests/chat/test_chatkit_isolation.py, every request type): a turn needs the fake model
# server, and a conversation exists only once a turn stored it.
CHAT_PATHS = {
    "/api/chat",
    "/api/chatkit",
    "/api/{user_id}/chat",
    "/api/conversations",
    "/api/conversations/{conversation_id}",
    "/api/conversations/{conversation_id}/messages",
}

# Routes that succeed only with a secret another user made (an invitation's token: its
# sample is no token of anyone's); their own tests: tests/sharing/test_invitations.py.
NEEDS_A_SECRET = {"/api/invitations/accept"}


def _door_routes(
    skipped: set[str] = CHAT_PATHS,
) -> list[tuple[str, str, type[BaseModel] | None]]:
    found = []
    for route in the_app_routes():
        if not takes_the_door(route) or route.path in skipped:
            continue
        for method in sorted(route.methods):
            found.append((method, route.path, body_model(route)))
    return found


ROUTES = _door_routes()
MAKERS: dict[str, Creator] = creators(the_app_routes())
CASES = [
    pytest.param(method, path, model, index, id=f"{method} {path} {index}")
    for method, path, model in ROUTES
    for index in range(len(samples(model)) if model is not None else 1)
]


def test_only_chat_routes_are_left_to_their_own_tests() -> None:
    every = {path for _, path, _ in _door_routes(skipped=set())}
    assert every - {path for _, path, _ in ROUTES} == CHAT_PATHS


def test_every_path_parameter_can_be_filled() -> None:
    """Each `{name}` of every route is made by its collection's POST route (with a sample
    body) or is declared in `MADE_ELSEWHERE`: otherwise the routes naming it go untested."""
    missing = unfillable(the_app_routes())
    assert not missing, (
        f"path parameters no guard can fill: {missing}; give the collection a POST route and "
        "its body schema `examples` (or a sample in tests/resources.py SAMPLES), or declare it in "
        "MADE_ELSEWHERE"
    )
    assert {"task_id", "list_id"} <= set(MAKERS)


def test_rows_made_from_one_sample_differ_in_their_free_text() -> None:
    """A row for a path and the command's own body come from one sample (tests/resources.py,
    scripts/api.sh's generated run): their free text differs, so a name that must be unique (a
    list's) takes both, and what the schema constrains (an enum, a format, a pattern) stays
    as valid as the sample was."""
    models = {m.__name__: m for r in the_app_routes() if (m := body_model(r)) is not None}
    first, second = (unique(SAMPLES["ListCreate"][0], models["ListCreate"]) for _ in range(2))
    assert first["name"] != second["name"]
    invitation = unique(SAMPLES["InvitationCreate"][1], models["InvitationCreate"])
    assert (invitation["role"], invitation["email"]) == ("admin", "eve@example.com")
    for name, bodies in SAMPLES.items():
        for sample in bodies:
            try:
                models[name].model_validate(sample)
            except ValueError:
                continue  # a placeholder's id (filled when sent)
            models[name].model_validate(unique(sample, models[name]))


def test_a_sample_is_filled_by_its_structure() -> None:
    """A placeholder is replaced where it stands, at any depth; nothing else is touched: a
    date (`2026-12-01`, `-1` inside it) or a string that spells a placeholder is sent as
    written (a text substitution of `-1`..`-4` turned the date into `202652-01`)."""
    sample = {
        "due_date": "2026-12-01",
        "until": "2026-11-14T09:00:00-01:00",
        "note": "<task> -1 -2",
        "minutes": -1,
        "id": TASK,
        "operations": [{"op": "move", "id": REF, "list_id": LIST, "before_id": LIST_REF}],
    }
    rows = {TASK: 51, REF: 52, LIST: 53, LIST_REF: 54}
    assert fill_sample(sample, rows) == {
        "due_date": "2026-12-01",
        "until": "2026-11-14T09:00:00-01:00",
        "note": "<task> -1 -2",
        "minutes": -1,
        "id": 51,
        "operations": [{"op": "move", "id": 52, "list_id": 53, "before_id": 54}],
    }
    assert placeholders_in(sample) == {TASK, REF, LIST, LIST_REF}
    assert not _names_rows({"due_date": "2026-12-01", "id": TASK})
    with pytest.raises(AssertionError, match="nothing fills"):
        fill_sample({"parent_id": REF}, {TASK: 51})


def test_the_route_table_is_found() -> None:
    paths = {path for _, path, _ in ROUTES}
    assert {"/api/tasks", "/api/tasks/{task_id}", "/api/tasks/bulk", "/api/auth/me"} <= paths
    assert {"/api/lists", "/api/lists/{list_id}", "/api/tasks/{task_id}/move"} <= paths
    assert len(ROUTES) >= 10
    # Every /api/tasks and /api/lists route and method has its /api/{user_id}/... twin.
    # (Shared lists' new routes live under /api alone: issue 39.)
    served = {(method, path) for method, path, _ in ROUTES}
    for stem, twin_stem in zip(("/api/tasks", "/api/lists"), TWIN_STEMS, strict=True):
        own = {
            r
            for r in ROUTES
            if r[1].startswith(stem)
            and not (
                (r[0], r[1]) in SHARING_ROUTES
                and (r[0], r[1].replace(stem, twin_stem, 1)) not in served
            )
        }
        twins = {(m, p.replace(stem, twin_stem, 1), b) for m, p, b in own}
        assert twins == {r for r in ROUTES if r[1].startswith(twin_stem)}
    for _, _, model in ROUTES:
        if model is not None:
            assert samples(model), f"no sample body for {model.__name__}: declare `examples`"


@dataclass(frozen=True)
class Rows:
    """One user's rows a request may aim at or name."""

    task: int
    list: int
    ref: int  # another task: a parent, an anchor
    list_ref: int  # another list: an anchor
    more: dict[str, int] = field(default_factory=dict)  # any other path parameter's row

    def fill(self, sample: Any) -> Any:
        placeholders = {TASK: self.task, LIST: self.list, REF: self.ref, LIST_REF: self.list_ref}
        return fill_sample(sample, placeholders)

    def path(self) -> dict[str, int]:
        return {"task_id": self.task, "list_id": self.list, **self.more}


def _names_rows(sample: Any) -> bool:
    return bool(placeholders_in(sample) & {LIST, REF, LIST_REF})


def _rows_of(
    client: TestClient, account: Account, title: str, name: str, method: str, path: str
) -> Rows:
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
    # The target in the state the route declares (`acts(..., task=...)`), Alice's as Bob's:
    # a route that reads the state first must not answer differently for Alice's task.
    in_state(client, account, rows.task, method, path)
    # The rows of the path's other parameters, made through their collections.
    known = rows.path()
    for parameter in path_parameters(path):
        make_row(client, account, parameter, known, MAKERS)
    return replace(rows, more={k: v for k, v in known.items() if k not in rows.path()})


MISSING = 10_000_000


@pytest.mark.parametrize(("method", "path", "model", "index"), CASES)
def test_bob_cannot_reach_alices_rows(
    client: TestClient,
    db_engine: Engine,
    alice: Account,
    bob: Account,
    method: str,
    path: str,
    model: type[BaseModel] | None,
    index: int,
) -> None:
    alices = _rows_of(client, alice, ALICE_TITLE, ALICE_LIST, method, path)
    bobs = _rows_of(client, bob, "bob's own", "bob's list", method, path)
    extra = {name: MISSING + 10 + n for n, name in enumerate(sorted(alices.more))}
    missing = Rows(MISSING, MISSING + 1, MISSING + 2, MISSING + 3, extra)
    before = snapshot(db_engine, alice.id)
    sample = samples(model)[index] if model is not None else None

    def send(
        target: Rows,
        named: Rows,
        user_id: str = alice.id,
        route: str = path,
        verb: str = method,
    ) -> Any:
        url = fill_path(route, {**target.path(), "user_id": quote(user_id, safe="")})
        body = None
        if sample is not None and verb == method:
            # The bulk operation's task is the target; everything else named is `named`'s.
            body = Rows(target.task, named.list, named.ref, named.list_ref).fill(sample)
        return client.request(verb, url, **body_of(verb, route, body), headers=bob.headers)

    def same(foreign: Any, absent: Any) -> None:
        assert foreign.status_code == absent.status_code == 404, foreign.text
        assert foreign.content == absent.content
        ignore = {"x-request-id", "content-length"}
        assert set(foreign.headers) - ignore == set(absent.headers) - ignore

    parameters = path_parameters(path)
    aims = bool(parameters) or (model is not None and model.__name__ == "BulkRequest")

    def one(rows: Rows, parameter: str, value: int) -> Rows:
        """`rows` with one path parameter's row swapped for `value`."""
        if parameter == "task_id":
            return replace(rows, task=value)
        if parameter == "list_id":
            return replace(rows, list=value)
        return replace(rows, more={**rows.more, parameter: value})

    twin = next((stem for stem in TWIN_STEMS if path.startswith(stem)), None)
    if twin is not None:
        # Alice's id in Bob's path: what Bob's own path answers for a row that does not
        # exist (this request on a missing row, or, where it names none, a GET of one).
        foreign = send(alices, bobs)
        nobody = send(alices, bobs, "no-such-user")
        if aims:
            absent = send(missing, bobs, bob.id)
            same(foreign, absent)
            # The same for an id nobody has.
            assert nobody.content == absent.content
        else:
            resource = "/{task_id}" if twin.endswith("tasks") else "/{list_id}"
            absent = send(missing, bobs, bob.id, twin + resource, "GET")
            assert foreign.content == absent.content
            # Headers as for an id nobody has, with the same method: a write is counted
            # against Bob's own limit (its RateLimit headers) whosever id the path names.
            same(foreign, nobody)
    else:
        if aims:
            # Alice's task or list as the target (naming Bob's own rows otherwise).
            same(send(alices, bobs), send(missing, bobs))
            if len(parameters) > 1:
                # One parameter Alice's row, the others Bob's own: as if it did not exist.
                for parameter in parameters:
                    foreign_one = one(bobs, parameter, alices.path()[parameter])
                    absent_one = one(bobs, parameter, missing.path()[parameter])
                    same(send(foreign_one, bobs), send(absent_one, bobs))
        if sample is not None and _names_rows(sample):
            # Bob's own target, naming Alice's rows: as if they did not exist.
            same(send(bobs, alices), send(bobs, missing))
        if path in NEEDS_A_SECRET:
            # Bob without the secret: the one 404, nothing of Alice's in it.
            answer = send(bobs, bobs)
            assert answer.status_code == 404, answer.text
            assert ALICE_LIST not in answer.text and alice.id not in answer.text
        elif not aims and not (sample is not None and _names_rows(sample)):
            answer = send(bobs, bobs)
            assert answer.status_code < 400, answer.text
            assert ALICE_TITLE not in answer.text and alice.id not in answer.text
            # Bob may name a list as Alice did.
            if ALICE_LIST not in json.dumps(sample, default=repr):
                assert ALICE_LIST not in answer.text, answer.text
    assert snapshot(db_engine, alice.id) == before
