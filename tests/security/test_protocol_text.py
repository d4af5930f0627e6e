"""A client's text is data, never a message to the server (issue 30): text that looks like the
request path's private notices (`task_api_rate_limit 1 60 x`, `task_api_refused TA429`, ...),
SQLSTATE-like codes, parameter markers, quotes and dollar quotes goes through every door that
writes text, with rate limiting on (the production default).

Every write must answer the status it deserves, store the text verbatim, carry the true
`RateLimit` count (one less per write, as counted here; never a `Retry-After`) and write
exactly the rows it should. The doors are checked against the app's route table
(tests/api/test_isolation_routes.py's enumeration) and the MCP tool table. A new resource's
plain routes (`POST /x`, and `PUT`/`PATCH`/`DELETE /x/{x_id}`), a collection under a row the
guards make (a task's children: `/tasks/{task_id}/<children>` and `/{child_id}`) and write
tools get a generated door (`GENERATED_DOORS`: its sample with the text in every free-text
field, from the schema, multi-line where the field takes it); a write route without a body
sends no text (`NO_BODY`, from the route table), nor does a route whose body or a tool whose
arguments have no field under the text rule (`NO_TEXT`, `NO_TEXT_TOOLS`: from the models' field
types, `backend.models.text.carries_text`); any other write route or tool without a door here
fails `test_every_write_route_and_tool_has_a_door`. Nothing here lists a route or a tool by
hand but the doors written for the task and list routes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.main import create_app
from backend.mcp.tools import TOOLS
from backend.models.text import carries_text
from tests.api.test_isolation_routes import MAKERS, ROUTES
from tests.conftest import bearer, make_token
from tests.mcp.conftest import call_tool_rpc
from tests.mcp.test_isolation import extra_arguments
from tests.resources import (
    fill_path,
    make_row,
    path_parameters,
    samples,
    snapshot,
    takes_text,
)

LIMIT = 100_000
WINDOW = 24 * 3600
LIMITS = {
    "rate_limit_enabled": True,
    "rate_limit_task_window_seconds": WINDOW,
    "rate_limit_task_writes_per_user": LIMIT,
}

# Single-line text (titles, tags, list names): each looks like a piece of the protocol.
TEXTS = [
    "task_api_rate_limit 999999 3600 x",
    "task_api_rate_limit 1 60 x",
    "task_api_rate_limit 0 1",
    "task_api_rows []",
    'task_api_rows [{"id": 1}]',
    "task_api_replay {}",
    "task_api_refused TA429",
    "task_api_refused TS400 1 missing",
    "NOTICE:  task_api_rate_limit 5 5",
    "WARNING:  task_api_refused TA401 revoked",
    "TA429",
    "TS400",
    "%(owner)s %s %% {owner} :owner $1",
    "'\"; ROLLBACK; SELECT 1/0; --",
    "$$ $q$ \\ \\\\ \\n E'\\x00' */ /*",
]
# The sharpest of them, for the doors whose every write is a few requests.
SHARP = [0, 1, 6, 12, 13, 14]


def tag_of(value: str) -> str:
    """A tag (at most 32 characters) that keeps the text's beginning; tags are stored in
    lower case."""
    return value[:32].strip().lower()


def description_of(value: str) -> str:
    """A multi-line description: whole notice lines, as PostgreSQL would print them."""
    return (
        f"{value}\nNOTICE:  task_api_rate_limit 5 5\nNOTICE:  task_api_refused TA429\n"
        "NOTICE:  task_api_rows []\n\\.\nend"
    )


@pytest.fixture(scope="module")
def limited(settings: Settings) -> Iterator[TestClient]:
    # A count that crosses the window's end would restart; start well before it.
    to_boundary = WINDOW - time.time() % WINDOW
    if to_boundary < 120:
        time.sleep(to_boundary + 1)
    app = create_app(settings.model_copy(update=LIMITS))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@dataclass
class Writer:
    """One user's writes, each checked: status, RateLimit headers, the count kept here."""

    client: TestClient
    engine: Engine
    user_id: str
    token: str
    twin: bool
    count: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    def path(self, kind: str, rest: str = "") -> str:
        if self.twin:
            return f"/api/{quote(self.user_id, safe='')}/{kind}{rest}"
        return f"/api/{kind}{rest}"

    def rest(
        self, method: str, kind: str, rest: str, expected: int, body: Any = None
    ) -> httpx2.Response:
        path = self.path(kind, rest)
        response = self.client.request(method, path, json=body, headers=self.headers)
        what = f"{method} {path} {body!r}"
        assert response.status_code == expected, f"{what}: {response.status_code} {response.text}"
        self.count += 1
        assert "retry-after" not in response.headers, what
        assert response.headers["ratelimit-policy"] == f'"task-writes";q={LIMIT};w={WINDOW}'
        assert re.fullmatch(
            rf'"task-writes";r={LIMIT - self.count};t=\d+', response.headers["ratelimit"]
        ), f"{what}: {response.headers['ratelimit']} after {self.count} writes"
        return response

    def mcp(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = call_tool_rpc(self.client, "/mcp", self.token, tool, arguments)
        assert result["isError"] is False, f"{tool} {arguments!r}: {result}"
        self.count += 1
        self.assert_counted()
        structured: dict[str, Any] = result["structuredContent"]
        return structured

    def assert_counted(self) -> None:
        """The window's count in the database is the number of writes sent."""
        key = "task-writes:" + hashlib.sha256(self.user_id.encode()).hexdigest()
        with self.engine.connect() as conn:
            hits = conn.execute(
                text("SELECT hits FROM rate_limits WHERE key = :key"), {"key": key}
            ).scalar_one_or_none()
        assert hits == self.count

    def get(self, kind: str, rest: str = "") -> Any:
        response = self.client.get(self.path(kind, rest), headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            found = conn.execute(
                text(f"SELECT * FROM {table} WHERE user_id = :user ORDER BY id"),
                {"user": self.user_id},
            )
            return [dict(row._mapping) for row in found]

    def create_task(self, value: str, tags: list[str] | None = None) -> int:
        tags = [tag_of(value)] if tags is None else tags
        body = {"title": value, "description": description_of(value), "tags": tags}
        created = self.rest("POST", "tasks", "", 201, body).json()["data"]
        self.assert_task(created["id"], value, tags)
        return int(created["id"])

    def assert_task(self, task_id: int, value: str, tags: list[str] | None = None) -> None:
        """Stored verbatim: through the API and in the table, one row for the task."""
        tags = [tag_of(value)] if tags is None else tags
        read = self.get("tasks", f"/{task_id}")
        assert (read["title"], read["description"], read["tags"]) == (
            value,
            description_of(value),
            tags,
        )
        (row,) = [r for r in self.rows("tasks") if r["id"] == task_id]
        assert (row["title"], row["description"], list(row["tags"])) == (
            value,
            description_of(value),
            tags,
        )

    def create_list(self, value: str) -> int:
        created = self.rest("POST", "lists", "", 201, {"name": value}).json()["data"]
        self.assert_list(created["id"], value)
        return int(created["id"])

    def assert_list(self, list_id: int, value: str) -> None:
        assert self.get("lists", f"/{list_id}")["name"] == value
        assert [r["name"] for r in self.rows("task_lists") if r["id"] == list_id] == [value]


# Each door: what it sends with the text, and what must then be stored. Setup writes go
# through the same checks (they are writes too).
Door = Callable[[Writer, str], None]


def _create(w: Writer, value: str) -> None:
    w.create_task(value)
    assert len(w.rows("tasks")) == 1


def _put(w: Writer, value: str) -> None:
    task_id = w.create_task("plain")
    body = {"title": value, "description": description_of(value), "tags": [tag_of(value)]}
    w.rest("PUT", "tasks", f"/{task_id}", 200, body)
    w.assert_task(task_id, value)
    assert len(w.rows("tasks")) == 1


def _patch(w: Writer, value: str) -> None:
    task_id = w.create_task("plain")
    body = {"title": value, "description": description_of(value), "tags": [tag_of(value)]}
    w.rest("PATCH", "tasks", f"/{task_id}", 200, body)
    w.assert_task(task_id, value)
    assert len(w.rows("tasks")) == 1


def _complete(w: Writer, value: str) -> None:
    task_id = w.create_task(value)
    w.rest("PATCH", "tasks", f"/{task_id}/complete", 200)
    assert w.get("tasks", f"/{task_id}")["completed"] is True
    w.rest("PATCH", "tasks", f"/{task_id}/complete", 200, {"completed": False})
    w.assert_task(task_id, value)
    assert len(w.rows("tasks")) == 1


def _delete(w: Writer, value: str) -> None:
    task_id = w.create_task(value)
    w.rest("DELETE", "tasks", f"/{task_id}", 204)
    assert w.rows("tasks") == []


def _clear_completed(w: Writer, value: str) -> None:
    task_id = w.create_task(value)
    w.rest("PATCH", "tasks", f"/{task_id}/complete", 200)
    w.rest("DELETE", "tasks", "/completed", 200)
    assert w.rows("tasks") == []


def _move(w: Writer, value: str) -> None:
    task_id = w.create_task(value)
    list_id = w.create_list(value)
    moved = w.rest("POST", "tasks", f"/{task_id}/move", 200, {"list_id": list_id})
    assert moved.json()["data"]["list_id"] == list_id
    w.assert_task(task_id, value)
    assert len(w.rows("tasks")) == len(w.rows("task_lists")) == 1


def _bulk(w: Writer, operations: list[dict[str, Any]]) -> None:
    answer = w.rest("POST", "tasks", "/bulk", 200, {"operations": operations})
    assert answer.json()["data"], answer.text


def _bulk_tags(w: Writer, value: str) -> None:
    task_id = w.create_task(value, tags=[])
    _bulk(w, [{"op": "add_tag", "id": task_id, "tag": tag_of(value)}])
    w.assert_task(task_id, value)
    _bulk(w, [{"op": "remove_tag", "id": task_id, "tag": tag_of(value)}])
    w.assert_task(task_id, value, tags=[])
    assert len(w.rows("tasks")) == 1


def _bulk_complete_move_delete(w: Writer, value: str) -> None:
    task_id = w.create_task(value)
    list_id = w.create_list(value)
    _bulk(
        w,
        [
            {"op": "complete", "id": task_id},
            {"op": "move", "id": task_id, "list_id": list_id},
            {"op": "add_tag", "id": task_id, "tag": tag_of("x" + value)},
        ],
    )
    stored = w.get("tasks", f"/{task_id}")
    assert (stored["completed"], stored["list_id"]) == (True, list_id)
    w.assert_task(task_id, value, tags=[tag_of(value), tag_of("x" + value)])
    _bulk(w, [{"op": "reopen", "id": task_id}, {"op": "delete", "id": task_id}])
    assert w.rows("tasks") == []


def _lists(w: Writer, value: str) -> None:
    list_id = w.create_list("plain")
    w.rest("PUT", "lists", f"/{list_id}", 200, {"name": value})
    w.assert_list(list_id, value)
    w.rest("PATCH", "lists", f"/{list_id}", 200, {"name": value + "!"})
    w.assert_list(list_id, value + "!")
    other = w.create_list(value)
    w.rest("POST", "lists", f"/{other}/move", 200, {"before_id": list_id})
    w.assert_list(other, value)
    assert len(w.rows("task_lists")) == 2
    w.rest("DELETE", "lists", f"/{other}", 204)
    w.rest("DELETE", "lists", f"/{list_id}", 204)
    assert w.rows("task_lists") == []


def _mcp_tasks(w: Writer, value: str) -> None:
    w.mcp("create_list", {"name": value})
    added = w.mcp(
        "add_task",
        {
            "title": value,
            "description": description_of(value),
            "tags": [tag_of(value)],
            "list": value,
        },
    )
    assert (added["status"], added["title"]) == ("created", value)
    task_id = added["task_id"]
    w.assert_task(task_id, value)
    w.mcp("update_task", {"task_id": task_id, "title": value + "?", "tags": [tag_of(value)]})
    assert w.get("tasks", f"/{task_id}")["title"] == value + "?"
    w.mcp("update_task", {"task_id": task_id, "title": value})
    w.mcp("complete_task", {"task_id": task_id})
    w.mcp("reopen_task", {"task_id": task_id})
    w.mcp("assign_task", {"task_id": task_id, "assignees": [w.user_id]})
    w.assert_task(task_id, value)
    assert len(w.rows("tasks")) == 1
    w.mcp("delete_task", {"task_id": task_id})
    assert w.rows("tasks") == []


def _mcp_lists(w: Writer, value: str) -> None:
    w.mcp("create_list", {"name": "plain"})
    w.mcp("rename_list", {"list": "plain", "name": value})
    (row,) = w.rows("task_lists")
    assert row["name"] == value
    w.mcp("rename_list", {"list": value, "name": value + "!"})
    assert [r["name"] for r in w.rows("task_lists")] == [value + "!"]
    w.mcp("delete_list", {"list": value + "!"})
    assert w.rows("task_lists") == []


def _quick_add(w: Writer, value: str) -> None:
    # The line is read by the grammar (tokens leave it), never by the database: the task
    # created holds the title the preview showed, byte for byte, and the preview wrote nothing.
    body = {"text": value, "time_zone": "UTC"}
    preview = w.rest("POST", "tasks", "/parse", 200, body).json()["data"]
    assert w.rows("tasks") == []
    created = w.rest("POST", "tasks", "/quick", 201, body).json()["data"]
    assert created["title"] == preview["task"]["title"]
    assert w.get("tasks", f"/{created['id']}")["title"] == preview["task"]["title"]
    (row,) = w.rows("tasks")
    assert (row["title"], list(row["tags"])) == (preview["task"]["title"], preview["task"]["tags"])
    assert len(w.rows("tasks")) == 1


REST_DOORS: dict[str, tuple[Door, set[tuple[str, str]]]] = {
    "quick-add": (_quick_add, {("POST", "/tasks/parse"), ("POST", "/tasks/quick")}),
    "create": (_create, {("POST", "/tasks")}),
    "put": (_put, {("PUT", "/tasks/{task_id}")}),
    "patch": (_patch, {("PATCH", "/tasks/{task_id}")}),
    "complete": (_complete, {("PATCH", "/tasks/{task_id}/complete")}),
    "delete": (_delete, {("DELETE", "/tasks/{task_id}")}),
    "clear-completed": (_clear_completed, {("DELETE", "/tasks/completed")}),
    "move": (_move, {("POST", "/tasks/{task_id}/move")}),
    "bulk-tags": (_bulk_tags, {("POST", "/tasks/bulk")}),
    "bulk-complete-move-delete": (_bulk_complete_move_delete, {("POST", "/tasks/bulk")}),
    "lists": (
        _lists,
        {
            ("POST", "/lists"),
            ("PUT", "/lists/{list_id}"),
            ("PATCH", "/lists/{list_id}"),
            ("POST", "/lists/{list_id}/move"),
            ("DELETE", "/lists/{list_id}"),
        },
    ),
}
MCP_DOORS: dict[str, tuple[Door, set[str]]] = {
    "mcp-tasks": (
        _mcp_tasks,
        {
            "create_list",
            "add_task",
            "update_task",
            "complete_task",
            "reopen_task",
            "assign_task",
            "delete_task",
        },
    ),
    "mcp-lists": (_mcp_lists, {"create_list", "rename_list", "delete_list"}),
}


# Write routes and tools that carry no human text are found, not listed: a body or arguments
# model with no field under the text rule (`backend.models.text.carries_text`: no
# `SingleLineText`/`MultiLineText` anywhere in it; a role, a user id, an invitation's token, an
# address validated as an email, a feed's kind, a browser's push subscription, notification
# switches; a calendar feed's kind and list, an activity entry's id, a deleted task's id, whose
# restore writes back the text stored before: tests/trash) sends no text for a door to send
# (`NO_TEXT`, `NO_TEXT_TOOLS`, below); tests/sharing, tests/calendar and tests/reminders test
# their input. A route without a body (a delete, a stream ticket, a restore) sends none either:
# `NO_BODY`.


# -- generated doors: a new resource's plain routes and write tools ---------------------------

WRITES: dict[tuple[str, str], Any] = {
    (method, path.replace("/api/{user_id}", "/api").removeprefix("/api")): model
    for method, path, model in ROUTES
    if method in {"POST", "PUT", "PATCH", "DELETE"} and not path.startswith("/api/auth/")
}
# Write routes that take no body: no client text reaches them (found from the route table).
NO_BODY = {route for route, model in WRITES.items() if model is None}
# Write routes whose body, and write tools whose arguments, take no human text (found from
# their models' field types: `carries_text`).
NO_TEXT = {
    route for route, model in WRITES.items() if model is not None and not carries_text(model)
}
NO_TEXT_TOOLS = {tool.name for tool in TOOLS if tool.writes and not carries_text(tool.arguments)}


def _texts(model: Any, value: str, lines: bool = False) -> dict[str, str]:
    """Each free-text field of the schema with `value` (`lines`: the multi-line
    `description_of(value)` where the field takes it)."""
    properties = model.model_json_schema(by_alias=True).get("properties", {})
    found = {}
    for key in properties:
        if key == "user_id" or key in MAKERS or not takes_text(model, key, value):
            continue
        many = description_of(value)
        found[key] = many if lines and takes_text(model, key, many) else value
    return found


def _with_text(
    model: Any, sample: dict[str, Any], value: str, lines: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """The sample with `value` in every free-text field of its schema, and those fields."""
    texts = _texts(model, value, lines)
    return {**sample, **texts}, texts


def _stored(w: Writer, value: str) -> bool:
    """Some row of the writer's, in any per-user table, holds `value` verbatim in a column."""
    rows = [json.loads(row) for table in snapshot(w.engine, w.user_id).values() for row in table]
    return any(value in row.values() for row in rows)


def _resource_door(collection: str) -> tuple[Door, set[tuple[str, str]]]:
    """POST `collection` with the text (multi-line where a field takes it), then its row's PUT
    and PATCH with the text and "!" and its DELETE, where the resource has them: each answer
    and the stored row hold the text. A collection under another row (a task's children,
    `/tasks/{task_id}/comments`) is under a row of the writer's, made first."""
    depth = collection.count("/") + 1
    items = {p for (_, p) in WRITES if p.startswith(collection + "/{") and p.count("/") == depth}
    item = min(items, default="")
    routes = {("POST", collection)} | {(m, item) for m in ("PUT", "PATCH", "DELETE")} & set(WRITES)

    def door(w: Writer, value: str) -> None:
        w.twin = False  # a new resource has no /api/{user_id} twin
        known: dict[str, int] = {}
        for name in path_parameters(collection):
            make_row(w.client, w, name, known, MAKERS)  # type: ignore[arg-type]
        w.count += len(known)  # each row made is a write the limit counted
        kind = fill_path(collection, known).removeprefix("/")
        model = WRITES[("POST", collection)]
        body, texts = _with_text(model, samples(model)[0], value, lines=True)
        assert texts, f"POST {collection}: its text-rule fields take no text sent here"
        created = w.rest("POST", kind, "", 201, body).json()["data"]
        assert {key: created[key] for key in texts} == texts
        assert all(_stored(w, text_) for text_ in texts.values())
        row = f"/{created['id']}"
        for method in ("PUT", "PATCH"):
            if (method, item) in routes and (changed := WRITES[(method, item)]) is not None:
                body, texts = _with_text(changed, samples(changed)[0], value + "!")
                answer = w.rest(method, kind, row, 200, body).json()["data"]
                assert {key: answer[key] for key in texts} == texts
                assert _stored(w, value + "!")
        if ("DELETE", item) in routes:
            w.rest("DELETE", kind, row, 204)
            assert not _stored(w, value + "!") and not _stored(w, value)

    return door, routes


def _tool_door(tool: Any) -> Door:
    """The tool with its derived arguments (tests/mcp/test_isolation.py), the text in every
    free-text one (multi-line where it takes it), a row of the writer's for any argument a
    path parameter names."""

    def door(w: Writer, value: str) -> None:
        derived = extra_arguments(tool)[0]
        texts = {k: v for k, v in _texts(tool.arguments, value, lines=True).items() if k in derived}
        arguments = {**derived, **texts}
        # The row it acts on (a required `task_id`, ...): one of the writer's.
        required = set(tool.arguments.model_json_schema(by_alias=True).get("required", []))
        for key in (arguments.keys() | required) & MAKERS.keys():
            known: dict[str, int] = {}
            arguments[key] = make_row(w.client, w, key, known, MAKERS)  # type: ignore[arg-type]
            w.count += len(known)  # each row made is a write the limit counted
        w.mcp(tool.name, arguments)
        assert all(_stored(w, text_) for text_ in texts.values())

    return door


def _generated() -> tuple[dict[str, tuple[Door, set[tuple[str, str]]]], dict[str, Door]]:
    """A door for each collection a POST with a body adds to (`/x`, or under rows the guards
    make: `/tasks/{task_id}/<children>`) that no door here covers, and each write tool."""
    covered = set().union(*(routes for _, routes in REST_DOORS.values())) | NO_TEXT | NO_BODY
    rest = {
        path: _resource_door(path)
        for method, path in sorted(WRITES.keys() - covered)
        if method == "POST"
        and not path.endswith("}")
        and all(name in MAKERS for name in path_parameters(path))
    }
    named = set().union(*(names for _, names in MCP_DOORS.values())) | NO_TEXT_TOOLS
    tools = {f"mcp-{t.name}": _tool_door(t) for t in TOOLS if t.writes and t.name not in named}
    return rest, tools


GENERATED_DOORS, GENERATED_TOOL_DOORS = _generated()


def test_every_write_route_and_tool_has_a_door() -> None:
    doors = {**REST_DOORS, **GENERATED_DOORS}
    covered = set().union(*(routes for _, routes in doors.values())) | NO_TEXT | NO_BODY
    assert WRITES.keys() - covered == set(), "write routes without a door here"
    tools = set().union(*(names for _, names in MCP_DOORS.values()))
    tools |= {name.removeprefix("mcp-") for name in GENERATED_TOOL_DOORS}
    assert {tool.name for tool in TOOLS if tool.writes} - tools - NO_TEXT_TOOLS == set()


def _registered(client: TestClient, engine: Engine, twin: bool) -> Writer:
    email = f"text-{time.monotonic_ns()}@example.com"
    response = client.post("/api/auth/register", json={"email": email, "password": "pass-1234"})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return Writer(client, engine, data["user"]["id"], data["access_token"], twin)


# (door, twin, the TEXTS sent through it)
EVERY = range(len(TEXTS))
PLAN: list[tuple[str, bool, Any]] = (
    [
        (name, twin, EVERY if name == "create" else SHARP)
        for name in REST_DOORS
        for twin in (False, True)
    ]
    + [(name, False, EVERY if name == "mcp-tasks" else SHARP) for name in MCP_DOORS]
    + [(name, False, SHARP) for name in [*GENERATED_DOORS, *GENERATED_TOOL_DOORS]]
)
DOORS: dict[str, Door] = {
    **{name: door for name, (door, _) in {**REST_DOORS, **MCP_DOORS, **GENERATED_DOORS}.items()},
    **GENERATED_TOOL_DOORS,
}


def _cases(plan: list[tuple[str, bool, Any]]) -> list[Any]:
    return [
        pytest.param(name, twin, TEXTS[n], id=f"{name}{'-twin' if twin else ''}-text{n}")
        for name, twin, texts in plan
        for n in texts
    ]


@pytest.mark.parametrize(("door", "twin", "value"), _cases(PLAN))
def test_protocol_text_is_stored_as_data(
    limited: TestClient, db_engine: Engine, door: str, twin: bool, value: str
) -> None:
    writer = _registered(limited, db_engine, twin)
    DOORS[door](writer, value)
    writer.assert_counted()


# A user id with a "/" cannot be spelled in /api/{user_id}/... (Starlette decodes %2F before
# routing: a 404), so the twins take the texts without one.
NO_SLASH = [n for n in SHARP if "/" not in TEXTS[n]]
SUBJECT_PLAN: list[tuple[str, bool, Any]] = [
    ("create", False, EVERY),
    ("create", True, NO_SLASH),
    ("lists", True, NO_SLASH),
    ("mcp-tasks", False, SHARP),
]


@pytest.mark.parametrize(("door", "twin", "value"), _cases(SUBJECT_PLAN))
def test_protocol_text_as_the_token_subject(
    limited: TestClient, db_engine: Engine, door: str, twin: bool, value: str
) -> None:
    """An external issuer's user whose `sub` is the text (provisioned on first use): its
    writes, also under /api/{user_id}/... with the text as the path's user id."""
    writer = Writer(limited, db_engine, value, make_token(sub=value), twin)
    DOORS[door](writer, "plain " + tag_of(value))
    writer.assert_counted()


@pytest.mark.parametrize("value", [TEXTS[n] for n in SHARP])
def test_the_generated_doors_hold_for_lists(
    limited: TestClient, db_engine: Engine, value: str
) -> None:
    """The doors a new resource gets, generated for lists (which have their own): a real
    check of the text, the answers, the rows and the count."""
    door, routes = _resource_door("/lists")
    item = "/lists/{list_id}"
    assert routes == {("POST", "/lists"), ("PUT", item), ("PATCH", item), ("DELETE", item)}
    writer = _registered(limited, db_engine, False)
    door(writer, value)
    _tool_door(next(tool for tool in TOOLS if tool.name == "create_list"))(writer, value)
    assert [row["name"] for row in writer.rows("task_lists")] == [value]
    writer.assert_counted()
