"""What the generated guards know about the resources, declared once for all of them: the sample
bodies of each body schema, how to make the row a path parameter names, and every per-user
table (to compare before and after).

The guards that read this (tests/api/test_isolation_routes.py, tests/mcp/test_isolation.py,
tests/test_round_trips.py) enumerate routes and tools themselves; a new resource declares
here only what cannot be derived: a sample body for each body schema (`samples`: `SAMPLES`, or
the schema's own `examples`, so a new resource's schema that declares them needs no entry). A
path parameter `{<name>_id}` is filled by the POST route of its collection (the route path
without the last `/{<name>_id}`, its body from `samples`), so a new resource needs nothing else;
one whose rows no POST route creates fails `test_every_path_parameter_can_be_filled` until it
has an entry in `MADE_ELSEWHERE`.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Engine, text

from backend.api.actions import task_states
from backend.api.deps import door
from backend.config import Settings
from backend.main import create_app
from backend.models.task_children import CHILDREN
from tests.conftest import Account, api_routes


@dataclass(frozen=True)
class Placeholder:
    """In a sample body, the id of a row the guard makes, put in where the
    placeholder stands (`fill_sample`, by the sample's structure: no text is rewritten, so a
    date like `2026-12-01` in a sample is sent as written)."""

    name: str

    def __repr__(self) -> str:
        return f"<{self.name}>"


# Placeholders in the sample bodies: the target task (a bulk operation's), a list, another
# task (a parent or an anchor) and another list (a list's anchor).
TASK, LIST = Placeholder("task"), Placeholder("list")
REF, LIST_REF = Placeholder("ref"), Placeholder("list_ref")
# Valid bodies for each body schema a route takes (each one is sent by the isolation test; the
# first is what the round-trip test sends where it has no body of its own, and what makes a
# row for a path parameter). A body schema missing here is sampled by its own `examples`
# (`samples`), or a task's child's by its declaration; one with none fails the guards.
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
    # A task's child's bodies need no line: its declared `sample` (`child_samples`). Comments'
    # second body is a multi-line one.
    "CommentCreate": [{"body": "alice-secret-comment"}, {"body": "two\nlines"}],
    # Sharing (issue 39): a member to transfer to, an invitation, a token (a member's new role:
    # MemberUpdate's own `examples`).
    "Transfer": [{"user_id": "not-a-member"}],
    "InvitationCreate": [{"role": "viewer"}, {"role": "admin", "email": "eve@example.com"}],
    "InvitationAccept": [{"token": "not-a-token"}],
    "CalendarFeedCreate": [{}, {"scope": "list", "list_id": LIST, "kind": "todos"}],
}


def samples(model: type[BaseModel]) -> list[Any]:
    """The sample bodies of a body schema: `SAMPLES`'s, else the `examples` the schema declares
    (`model_config = ConfigDict(json_schema_extra={"examples": [...]})`: Swagger shows them too),
    else a task's child's declared `sample`, else its required fields' own `examples`; none:
    an empty list (the guards say which schema needs them)."""
    if model.__name__ in SAMPLES:
        return SAMPLES[model.__name__]
    schema = model.model_json_schema()
    examples: list[Any] = schema.get("examples", [])
    return examples or child_samples().get(model.__name__, []) or _from_fields(schema)


def _from_fields(schema: dict[str, Any]) -> list[Any]:
    """A body of each required field's first `examples` (`Field(examples=[3])`), as a tool's
    arguments are (tests/mcp/test_isolation.py): a schema whose required fields all declare
    one needs no model-level `examples`; none: no sample."""
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    if not required or any("examples" not in properties[name] for name in required):
        return []
    return [{name: properties[name]["examples"][0] for name in required}]


@functools.cache
def child_samples() -> dict[str, list[Any]]:
    """Body schema name -> its sample, for the bodies of a task's child's routes (`CHILDREN`):
    its declared `sample`'s client fields, so a new child's schemas need no line in `SAMPLES`."""
    found: dict[str, list[Any]] = {}
    for child in CHILDREN:
        if child.path is None:
            continue
        body = {k: v for k, v in child.sample.items() if k in child.fields} or dict(child.sample)
        collection = f"/api/tasks/{{task_id}}/{child.path}"
        for route in the_app_routes():
            model = body_model(route)
            if model is not None and route.path.startswith(collection):
                found.setdefault(model.__name__, [body])
    return found


# Path parameters the guards fill without a POST route: the caller's own id, and rows that
# only something else makes (each with where its tests are).
MADE_ELSEWHERE: dict[str, str] = {
    "user_id": "the caller's id (or another user's): every guard puts it in itself",
    "conversation_id": "a chat turn stores it (needs the fake model): tests/chat/test_isolation.py"
    " and test_round_trips._chat",
    "event_id": "an activity entry: a write of the route's task makes one (`make_row`); tests/undo",
    "token": "a calendar feed's secret, in the answer of POST /api/calendar-feeds only: "
    "tests/calendar and test_round_trips._share",
    "segment": "a DAV collection's path segment (a list's id, or `no-list`), signed in with an "
    "app password: tests/dav and test_round_trips._dav_request",
    "rest": "any other path under the DAV root, the one 404: tests/dav",
}
# Collections whose rows another collection's DELETE makes (no POST of their own): a trashed
# task is a task deleted, and its id is the task's (`/api/trash`, issue 53).
DELETED_INTO: dict[str, str] = {"/api/trash": "/api/tasks"}
# The /api/{user_id}/... twins answer as their own routes (backend/api/routes/user_tasks.py).
TWIN_PREFIX = "/api/{user_id}/"


def path_parameters(path: str) -> list[str]:
    """The path's parameters in order, `{user_id}` left out."""
    return [name for name in re.findall(r"\{(\w+)\}", path) if name != "user_id"]


def fill_path(path: str, values: Mapping[str, Any]) -> str:
    """Every `{name}` of the path from `values`; a parameter without one is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"{path}: nothing fills {{{name}}}"
        return str(values[name])

    return re.sub(r"\{(\w+)\}", value, path)


def body_model(route: APIRoute) -> type[BaseModel] | None:
    """The route's body schema (`X | None`, an optional body: the model inside)."""
    bodies = [f.field_info.annotation for f in route.dependant.body_params]
    body = next((b for b in bodies if b is not None), None)
    return next((a for a in getattr(body, "__args__", (body,)) if isinstance(a, type)), None)


def takes_the_door(route: APIRoute) -> bool:
    return any(dependency.call is door for dependency in route.dependant.dependencies)


def the_app_routes() -> list[APIRoute]:
    return api_routes(create_app(Settings(environment="test", jwt_secret="t" * 48)))


@dataclass(frozen=True)
class Creator:
    """How a path parameter's row is made: POST to its collection with the schema's sample."""

    collection: str
    model: type[BaseModel] | None
    # Made, then deleted (`DELETED_INTO`): the row is the deleted one.
    deleted: bool = False


def creators(routes: list[APIRoute]) -> dict[str, Creator]:
    """Each path parameter (but `MADE_ELSEWHERE`'s) -> the POST route that makes its rows:
    the route at the path up to the parameter, under /api/ (not a twin)."""
    posts = {r.path: r for r in routes if "POST" in r.methods}
    found: dict[str, Creator] = {}
    for route in routes:
        for name in path_parameters(route.path):
            if name in MADE_ELSEWHERE or name in found:
                continue
            head = route.path.split("/{" + name + "}", 1)[0]
            deleted = head in DELETED_INTO
            head = DELETED_INTO.get(head, head)
            post = posts.get(head)
            if post is not None and not head.startswith(TWIN_PREFIX):
                found[name] = Creator(head, body_model(post), deleted)
    return found


def unfillable(routes: list[APIRoute]) -> dict[str, list[str]]:
    """Path parameter -> the routes naming it that no guard can fill."""
    made = creators(routes)
    missing: dict[str, list[str]] = {}
    for route in routes:
        for name in path_parameters(route.path):
            if name not in made and name not in MADE_ELSEWHERE:
                missing.setdefault(name, []).append(route.path)
                continue
            model = made[name].model if name in made else None
            if model is not None and not samples(model):
                missing.setdefault(name, []).append(f"{route.path} (no sample {model.__name__})")
    return missing


_UNIQUE = itertools.count(1)


def takes_text(model: type[BaseModel], key: str, candidate: str) -> bool:
    """The body schema's property `key` is free text that `candidate` satisfies: a string
    with no `enum`, `const` or `format`, whose `maxLength` and `pattern`, if any, allow it."""
    prop = model.model_json_schema(by_alias=True).get("properties", {}).get(key)
    if prop is None:
        return False
    strings = [p for p in prop.get("anyOf", [prop]) if p.get("type") == "string"]
    if len(strings) != 1 or {"enum", "const", "format"} & set(strings[0]):
        return False
    if len(candidate) > strings[0].get("maxLength", len(candidate)):
        return False
    pattern = strings[0].get("pattern")
    return pattern is None or re.search(pattern, candidate) is not None


def unique(sample: Any, model: type[BaseModel] | None) -> Any:
    """The sample with a number after each free-text string (`takes_text`), new on every
    call: two rows made from one sample never collide on a name that must be unique (a
    list's, a new resource's), with no sample edited."""
    if model is None or not isinstance(sample, dict):
        return sample
    n = next(_UNIQUE)
    varied = dict(sample)
    for key, value in sample.items():
        if isinstance(value, str) and takes_text(model, key, f"{value} {n}"):
            varied[key] = f"{value} {n}"
    return varied


# The routes that take a file, not JSON: each declared child without a JSON create adds its
# rows from a multipart upload (attachments), from the declarations (no hand edit).
FILE_ROUTES = frozenset(
    ("POST", f"/api/tasks/{{task_id}}/{child.path}")
    for child in CHILDREN
    if child.path and child.create is None
)
SAMPLE_FILE = ("sample.txt", b"a sample file\n", "text/plain")
# An import takes a file that must be one (`POST /api/imports`, multipart): our own export with
# a task and its subtask, their ids new on every call so that each import creates them.
IMPORT_ROUTE = ("POST", "/api/imports")


def sample_import() -> dict[str, Any]:
    from tests.transfer.archive import export_zip, task

    parent = 10**12 + next(_UNIQUE)
    child = task(10**12 + next(_UNIQUE), "Its subtask", parent_id=parent)
    data = export_zip(tasks=[task(parent, "Imported"), child])
    return {"files": {"file": ("tasks-export.zip", data, "application/zip")}}


def body_of(method: str, template: str, body: Any) -> dict[str, Any]:
    """A request's body arguments for the test client: a one-part file upload for a route in
    FILE_ROUTES (its template's), an export's zip for an import, else `body` as JSON."""
    if (method.upper(), template) in FILE_ROUTES:
        return {"files": {"file": SAMPLE_FILE}}
    if (method.upper(), template) == IMPORT_ROUTE:
        return sample_import()
    return {"json": body}


def fill_sample(sample: Any, rows: Mapping[Placeholder, Any]) -> Any:
    """A copy of a sample with each `Placeholder` where it stands, at any depth, replaced
    by its row's id; every other value as it is (a string is never searched)."""
    if isinstance(sample, Placeholder):
        assert sample in rows, f"nothing fills the placeholder {sample!r}"
        return rows[sample]
    if isinstance(sample, dict):
        return {key: fill_sample(value, rows) for key, value in sample.items()}
    if isinstance(sample, list | tuple):
        return [fill_sample(value, rows) for value in sample]
    return sample


def placeholders_in(sample: Any) -> set[Placeholder]:
    """The placeholders a sample holds, at any depth."""
    if isinstance(sample, Placeholder):
        return {sample}
    if isinstance(sample, dict):
        return set().union(*map(placeholders_in, sample.values()))
    if isinstance(sample, list | tuple):
        return set().union(*map(placeholders_in, sample))
    return set()


@functools.cache
def _task_states() -> dict[tuple[str, str], dict[str, Any]]:
    return task_states(create_app(Settings(environment="test", jwt_secret="t" * 48)))


def task_state(method: str, template: str) -> dict[str, Any]:
    """The state the route's task must be in (`acts(..., task=...)`, backend/api/actions.py:
    `x-task-state`); none: any task will do."""
    return dict(_task_states().get((method.upper(), template), {}))


def in_state(client: TestClient, owner: Account, task_id: int, method: str, template: str) -> None:
    """The task a guard made for the route put in the state the route declares, by its
    owner's PATCH (nothing to do for a route that declares none): every generated guard that
    makes a task for a route by id calls this, so a route's state is set up from its
    declaration alone."""
    state = task_state(method, template)
    if state:
        answer = client.patch(f"/api/tasks/{task_id}", json=state, headers=owner.headers)
        assert answer.status_code == 200, (method, template, state, answer.text)


def make_row(
    client: TestClient,
    account: Account,
    name: str,
    known: dict[str, int],
    made: Mapping[str, Creator],
) -> int:
    """A row for `{name}`, owned by `account`, made through the API (its collection's own path
    parameters from `known`, made first when missing); remembered in `known`."""
    if name in known:
        return known[name]
    if name == "event_id":
        return _activity_entry(client, account, known, made)
    if name == "import_id":
        return _import(client, account, known)
    assert name in made, f"nothing makes {{{name}}}: see test_every_path_parameter_can_be_filled"
    creator = made[name]
    for outer in path_parameters(creator.collection):
        make_row(client, account, outer, known, made)
    body = None
    if creator.model is not None:
        placeholders = {TASK: known.get("task_id", 0), LIST: known.get("list_id", 0)}
        sample = unique(samples(creator.model)[0], creator.model)
        body = fill_sample(sample, placeholders)
    url = fill_path(creator.collection, known)
    sent = body_of("POST", creator.collection, body)
    created = client.post(url, **sent, headers=account.headers)
    assert created.status_code in (200, 201), (url, created.text)
    row_id: int = created.json()["data"]["id"]
    if creator.deleted:
        gone = client.delete(f"{url}/{row_id}", headers=account.headers)
        assert gone.status_code == 204, (url, gone.text)
    known[name] = row_id
    return row_id


def _import(client: TestClient, account: Account, known: dict[str, int]) -> int:
    """A done import to name (`{import_id}`): queued by its route, then run to its end by a
    runner (as the worker's or the API's thread would), so an undo can undo it."""
    from backend.transfer.runner import ImportRunner

    queued = client.post("/api/imports", **sample_import(), headers=account.headers)
    assert queued.status_code == 202, queued.text
    import_id = int(queued.json()["data"]["id"])
    runner = getattr(client, "import_runner", None)  # a live server's client carries its own
    if runner is None:
        state = client.app.state  # type: ignore[attr-defined]
        runner = ImportRunner(state.engine, state.settings)
    runner.run_once(only=import_id)
    known["import_id"] = import_id
    return import_id


def _activity_entry(
    client: TestClient, account: Account, known: dict[str, int], made: Mapping[str, Creator]
) -> int:
    """An activity entry to name (`{event_id}`): a change of the title of the route's task,
    which an undo can write back."""
    task_id = make_row(client, account, "task_id", known, made)
    title = f"Renamed {next(_UNIQUE)}"
    changed = client.patch(f"/api/tasks/{task_id}", json={"title": title}, headers=account.headers)
    assert changed.status_code == 200, changed.text
    newest = client.get("/api/activity", params={"limit": 1}, headers=account.headers)
    assert newest.status_code == 200, newest.text
    known["event_id"] = int(newest.json()["data"][0]["id"])
    return known["event_id"]


def per_user_tables(engine: Engine) -> list[str]:
    """Every table with a `user_id` column: the database's (what the migrations made), which
    must include every such table of the metadata (what the models say)."""
    from sqlmodel import SQLModel

    import backend.models  # noqa: F401  (registers every table on the metadata)

    query = text(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND column_name = 'user_id' ORDER BY table_name"
    )
    with engine.connect() as conn:
        tables = [row[0] for row in conn.execute(query)]
    modelled = {t.name for t in SQLModel.metadata.tables.values() if "user_id" in t.c}
    assert modelled <= set(tables), modelled - set(tables)
    return tables


def snapshot(engine: Engine, user_id: str) -> dict[str, list[str]]:
    """Every row of every per-user table that belongs to `user_id`, each as JSON, in order."""
    state = {}
    with engine.connect() as conn:
        for table in per_user_tables(engine):
            rows = conn.execute(
                text(f'SELECT to_jsonb(t)::text FROM "{table}" AS t WHERE user_id = :user'),
                {"user": user_id},
            )
            state[table] = sorted(row[0] for row in rows)
    return state
