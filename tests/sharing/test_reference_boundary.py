"""A reference a request names (`parent_id`, `after_id`, `before_id`, `list_id`) is resolved
through the caller's access with the role the action needs on that row, never as "a row of the
same owner" (issue 49, defect 1).

Owner O (alice) shares list L with E (bob) as editor or admin; T is a task of L. O also has a
private list with a task PL, a completed personal task PC, and a list V where E is a viewer,
with a task VT. Through T, E must reach none of O's other rows: PL and PC answer what a missing
id answers, byte for byte (404); VT, which E reads but may not write, is 403 `FORBIDDEN`; and
nothing changes (T stays in L, PC stays completed, no list changes). A member cannot move T to
no list either (`list_id: null` is the owner's personal space): 403 `FORBIDDEN`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc
from tests.sharing.helpers import add_member, make_list, make_task

MISSING = 2_000_000_000


@dataclass
class World:
    owner: Account
    member: Account
    shared: int  # L: the member is editor or admin
    viewed: int  # V: the member is a viewer
    task: int  # T, in L
    subtask: int  # under T
    sibling: int  # another top-level task of L
    private_task: int  # PL, in one of O's unshared lists
    personal: int  # PC, O's completed task in no list
    viewed_task: int  # VT, in V


def _world(
    client: TestClient, db_engine: Engine, owner: Account, member: Account, role: str
) -> World:
    shared = make_list(client, owner, "Team")
    viewed = make_list(client, owner, "Viewed")
    private = make_list(client, owner, "Private")
    add_member(db_engine, owner, shared, member, role)
    add_member(db_engine, owner, viewed, member, "viewer")
    task = make_task(client, owner, "T", list_id=shared)
    return World(
        owner=owner,
        member=member,
        shared=shared,
        viewed=viewed,
        task=task,
        subtask=make_task(client, owner, "T's step", parent_id=task),
        sibling=make_task(client, owner, "sibling", list_id=shared),
        private_task=make_task(client, owner, "PL", list_id=private),
        personal=make_task(client, owner, "PC", completed=True),
        viewed_task=make_task(client, owner, "VT", list_id=viewed),
    )


def _rows(engine: Engine) -> list[dict[str, Any]]:
    """Every task and every list, every column: what a refused request must leave as it was."""
    with engine.connect() as conn:
        tasks = conn.execute(text("SELECT * FROM tasks ORDER BY id"))
        lists = conn.execute(text("SELECT * FROM task_lists ORDER BY id"))
        return [dict(r._mapping) for r in tasks] + [dict(r._mapping) for r in lists]


# Every way a member names a task of the owner's through a shared task: (what it sends, the
# request). `{ref}` is the id referenced, `{task}` the shared task, `{list}` its list.
REST_PATHS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("PATCH parent_id", "PATCH", "/api/tasks/{task}", {"parent_id": "{ref}"}),
    ("PUT parent_id", "PUT", "/api/tasks/{task}", {"title": "T", "parent_id": "{ref}"}),
    (
        "PATCH list+parent",
        "PATCH",
        "/api/tasks/{task}",
        {"list_id": "{list}", "parent_id": "{ref}"},
    ),
    ("move parent_id", "POST", "/api/tasks/{task}/move", {"parent_id": "{ref}"}),
    ("move after_id", "POST", "/api/tasks/{task}/move", {"after_id": "{ref}"}),
    ("move before_id", "POST", "/api/tasks/{task}/move", {"before_id": "{ref}"}),
    (
        "move list+after",
        "POST",
        "/api/tasks/{task}/move",
        {"list_id": "{list}", "after_id": "{ref}"},
    ),
    ("create parent_id", "POST", "/api/tasks", {"title": "new", "parent_id": "{ref}"}),
    (
        "create list+parent",
        "POST",
        "/api/tasks",
        {"title": "new", "list_id": "{list}", "parent_id": "{ref}"},
    ),
]
MCP_PATHS: list[tuple[str, str, dict[str, Any]]] = [
    ("mcp update_task parent_id", "update_task", {"task_id": "{task}", "parent_id": "{ref}"}),
    ("mcp add_task parent_id", "add_task", {"title": "new", "parent_id": "{ref}"}),
    (
        "mcp add_task list+parent",
        "add_task",
        {"title": "new", "list_id": "{list}", "parent_id": "{ref}"},
    ),
]


def _fill(template: dict[str, Any], world: World, ref: int) -> dict[str, Any]:
    values = {"{ref}": ref, "{task}": world.task, "{list}": world.shared}
    return {k: values.get(v, v) if isinstance(v, str) else v for k, v in template.items()}


def _rest(
    client: TestClient, world: World, method: str, path: str, body: dict[str, Any], ref: int
) -> Any:
    return client.request(
        method,
        path.format(task=world.task),
        json=_fill(body, world, ref),
        headers=world.member.headers,
    )


def _mcp(client: TestClient, world: World, tool: str, arguments: dict[str, Any], ref: int) -> Any:
    result = call_tool_rpc(client, "/mcp", world.member.token, tool, _fill(arguments, world, ref))
    assert result["isError"] is True, (tool, ref, result)
    error_text: str = result["content"][0]["text"]
    return error_text


@pytest.fixture(params=["editor", "admin"])
def world(
    request: pytest.FixtureRequest,
    client: TestClient,
    db_engine: Engine,
    alice: Account,
    bob: Account,
) -> World:
    return _world(client, db_engine, alice, bob, request.param)


def test_an_unreadable_reference_is_a_missing_ones_404_and_changes_nothing(
    client: TestClient, db_engine: Engine, world: World
) -> None:
    before = _rows(db_engine)
    for name, method, path, body in REST_PATHS:
        missing = _rest(client, world, method, path, body, MISSING)
        assert missing.status_code == 404, (name, missing.text)
        for ref in (world.private_task, world.personal):
            answer = _rest(client, world, method, path, body, ref)
            assert answer.status_code == 404, (name, ref, answer.text)
            assert answer.content == missing.content, (name, ref, answer.text, missing.text)
            assert _rows(db_engine) == before, (name, ref)
    for name, tool, arguments in MCP_PATHS:
        missing_text = _mcp(client, world, tool, arguments, MISSING)
        assert json.loads(missing_text)["error"]["code"] == "NOT_FOUND", (name, missing_text)
        for ref in (world.private_task, world.personal):
            assert _mcp(client, world, tool, arguments, ref) == missing_text, (name, ref)
            assert _rows(db_engine) == before, (name, ref)
    # Seen by the owner: T (and its step) still in L, PC still completed.
    owner = world.owner.headers
    task = client.get(f"/api/tasks/{world.task}", headers=owner).json()["data"]
    assert (task["list_id"], task["parent_id"]) == (world.shared, None)
    step = client.get(f"/api/tasks/{world.subtask}", headers=owner).json()["data"]
    assert (step["list_id"], step["parent_id"]) == (world.shared, world.task)
    assert client.get(f"/api/tasks/{world.personal}", headers=owner).json()["data"]["completed"]


def test_a_readable_reference_the_member_may_not_write_is_403(
    client: TestClient, db_engine: Engine, world: World
) -> None:
    """VT is in a list where the member is a viewer: `list_id` of that list is 403, and so is
    reaching it through `parent_id`, `after_id` or `before_id`."""
    before = _rows(db_engine)
    by_list = client.patch(
        f"/api/tasks/{world.task}", json={"list_id": world.viewed}, headers=world.member.headers
    )
    assert by_list.status_code == 403, by_list.text
    for name, method, path, body in REST_PATHS:
        answer = _rest(client, world, method, path, body, world.viewed_task)
        assert answer.status_code == 403, (name, answer.text)
        assert answer.json()["error"]["code"] == "FORBIDDEN", (name, answer.text)
        assert _rows(db_engine) == before, name
    for name, tool, arguments in MCP_PATHS:
        error = json.loads(_mcp(client, world, tool, arguments, world.viewed_task))["error"]
        assert error["code"] == "FORBIDDEN", (name, error)
        assert _rows(db_engine) == before, name


def test_a_member_cannot_move_a_shared_task_to_no_list(
    client: TestClient, db_engine: Engine, world: World
) -> None:
    """`list_id: null` would put the task in the owner's personal space: 403, every way."""
    before = _rows(db_engine)
    headers = world.member.headers
    task = f"/api/tasks/{world.task}"
    for method, path, body in (
        ("PATCH", task, {"list_id": None}),
        ("PUT", task, {"title": "T", "list_id": None}),
        ("POST", f"{task}/move", {"list_id": None}),
        ("POST", f"{task}/move", {"list_id": None, "parent_id": None}),
        ("PATCH", f"/api/tasks/{world.subtask}", {"list_id": None, "parent_id": None}),
        (
            "POST",
            "/api/tasks/bulk",
            {"operations": [{"op": "move", "id": world.task, "list_id": None}]},
        ),
    ):
        answer = client.request(method, path, json=body, headers=headers)
        assert answer.status_code == 403, (method, path, body, answer.text)
        assert answer.json()["error"]["code"] == "FORBIDDEN", answer.text
        assert _rows(db_engine) == before, (method, path, body)
    result = call_tool_rpc(
        client, "/mcp", world.member.token, "update_task", {"task_id": world.task, "list_id": None}
    )
    assert result["isError"] is True, result
    assert json.loads(result["content"][0]["text"])["error"]["code"] == "FORBIDDEN", result
    assert _rows(db_engine) == before


def test_what_the_member_may_write_it_still_may(
    client: TestClient, db_engine: Engine, alice: Account, bob: Account
) -> None:
    """The rule is not "the caller's own rows": an editor places tasks among the list's tasks,
    and across two of the owner's lists it may write; the owner reaches all its rows."""
    world = _world(client, db_engine, alice, bob, "editor")
    other = make_list(client, alice, "Other team")
    add_member(db_engine, alice, other, bob, "editor")
    there = make_task(client, alice, "there", list_id=other)
    member, owner = bob.headers, alice.headers
    task = f"/api/tasks/{world.task}"

    under = client.patch(task, json={"parent_id": world.sibling}, headers=member)
    assert under.status_code == 200, under.text
    assert under.json()["data"]["parent_id"] == world.sibling
    after = client.post(f"{task}/move", json={"after_id": world.sibling}, headers=member)
    assert after.status_code == 200, after.text
    assert after.json()["data"]["parent_id"] is None
    moved = client.post(f"{task}/move", json={"parent_id": there}, headers=member)
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["list_id"] == other
    made = client.post("/api/tasks", json={"title": "n", "parent_id": there}, headers=member)
    assert made.status_code == 201, made.text
    # A row the member may write, but in its own space, not the task's owner's: the 422 of a
    # list of another owner, on the field that named it (it reads the row: never a 404).
    own = make_task(client, bob, "mine")
    before = _rows(db_engine)
    for path, body, field in (
        (task, {"parent_id": own}, "body.parent_id"),
        (f"{task}/move", {"after_id": own}, "body.after_id"),
        (f"{task}/move", {"before_id": own}, "body.before_id"),
    ):
        method = "PATCH" if path == task else "POST"
        crossed = client.request(method, path, json=body, headers=member)
        assert crossed.status_code == 422, crossed.text
        assert crossed.json()["error"]["details"][0]["field"] == field, crossed.text
    assert _rows(db_engine) == before
    # The owner may put its task under its own private or personal rows.
    mine = client.patch(task, json={"parent_id": world.private_task}, headers=owner)
    assert mine.status_code == 200, mine.text
    out = client.patch(task, json={"list_id": None, "parent_id": None}, headers=owner)
    assert out.status_code == 200, out.text
    assert out.json()["data"]["list_id"] is None
