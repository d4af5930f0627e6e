"""The MCP `undo` tool (issue 53: "undo that"): by an activity entry's id, or without one the
caller's own newest change; a refusal is a tool error carrying the REST envelope, with nothing
changed. Over real PostgreSQL, through /mcp."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc, rpc_error, task_rows
from tests.sharing.conftest import SharedList
from tests.undo.helpers import last_entry


def _call(client: TestClient, user: Account, name: str, **arguments: Any) -> dict[str, Any]:
    return call_tool_rpc(client, "/mcp", user.token, name, arguments)


def test_undo_that_reverts_the_callers_newest_change(client: TestClient, alice: Account) -> None:
    added = _call(client, alice, "add_task", title="Buy milk")["structuredContent"]
    task_id = added["task_id"]
    assert (
        _call(client, alice, "update_task", task_id=task_id, title="Buy oat milk")["isError"]
        is False
    )
    assert _call(client, alice, "complete_task", task_id=task_id)["isError"] is False

    first = _call(client, alice, "undo")
    assert first["isError"] is False, first
    assert first["structuredContent"] == {
        "task_id": task_id,
        "status": "undone",
        "title": "Buy oat milk",
    }
    task = client.get(f"/api/tasks/{task_id}", headers=alice.headers).json()["data"]
    assert task["completed"] is False

    entry = last_entry(client, alice, task_id, "task.updated")
    # The newest change is now the undo itself (a reopening): the title's entry by its id.
    by_id = _call(client, alice, "undo", activity_id=entry["id"])
    assert by_id["isError"] is False, by_id
    assert by_id["structuredContent"]["title"] == "Buy milk"


def test_a_refused_undo_is_a_tool_error_with_nothing_changed(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    added = _call(client, alice, "add_task", title="Draft")["structuredContent"]
    task_id = added["task_id"]
    _call(client, alice, "update_task", task_id=task_id, title="Second")
    entry = last_entry(client, alice, task_id, "task.updated")
    _call(client, alice, "update_task", task_id=task_id, title="Third")
    before = task_rows(db_engine)

    conflict = rpc_error(_call(client, alice, "undo", activity_id=entry["id"]))

    assert conflict["code"] == "CONFLICT"
    assert conflict["details"][0]["current"] == "Third"
    assert task_rows(db_engine) == before
    assert rpc_error(_call(client, alice, "undo", activity_id="1"))["code"] == "VALIDATION_ERROR"


def test_nothing_of_ones_own_to_undo_and_anothers_entry_are_not_found(
    client: TestClient, shared_list: SharedList, bob: Account
) -> None:
    assert rpc_error(_call(client, bob, "undo"))["code"] == "NOT_FOUND"
    entry = last_entry(client, shared_list.owner, shared_list.task_id, "task.created")
    assert rpc_error(_call(client, bob, "undo", activity_id=entry["id"]))["code"] == "NOT_FOUND"


def test_undo_that_after_a_deletion_restores_the_task(client: TestClient, alice: Account) -> None:
    """An agent's "undo that" right after deleting a task brings the task back (the newest
    change is the deletion), not an older edit of another task."""
    edited = _call(client, alice, "add_task", title="Keep")["structuredContent"]["task_id"]
    _call(client, alice, "update_task", task_id=edited, title="Kept")
    gone = _call(client, alice, "add_task", title="Call mum")["structuredContent"]["task_id"]
    assert _call(client, alice, "delete_task", task_id=gone)["isError"] is False
    assert client.get(f"/api/tasks/{gone}", headers=alice.headers).status_code == 404

    undone = _call(client, alice, "undo")

    assert undone["isError"] is False, undone
    assert undone["structuredContent"] == {"task_id": gone, "status": "undone", "title": "Call mum"}
    assert client.get(f"/api/tasks/{gone}", headers=alice.headers).status_code == 200
    kept = client.get(f"/api/tasks/{edited}", headers=alice.headers).json()["data"]
    assert kept["title"] == "Kept"


def test_undo_that_after_a_lists_deletion_says_where_its_tasks_went(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A list's deletion records each of its tasks' deletions after its own: "undo that" does
    not take the newest of those (it would bring back one task of the list and call it done)
    but the list's deletion, which it refuses, naming the trash; nothing changes."""
    made = client.post("/api/lists", json={"name": "Groceries"}, headers=alice.headers)
    list_id = made.json()["data"]["id"]
    for title in ("Milk", "Eggs", "Bread"):
        client.post("/api/tasks", json={"title": title, "list_id": list_id}, headers=alice.headers)
    assert _call(client, alice, "delete_list", list_id=list_id)["isError"] is False
    before = task_rows(db_engine)

    refused = rpc_error(_call(client, alice, "undo"))

    assert refused["code"] == "VALIDATION_ERROR"
    assert refused["message"].startswith("A list's deletion is not undone")
    assert task_rows(db_engine) == before
    trashed = client.get("/api/trash", headers=alice.headers).json()["data"]
    assert sorted(t["title"] for t in trashed) == ["Bread", "Eggs", "Milk"]


def test_undo_that_twice_after_a_deletion_says_it_is_undone_already(
    client: TestClient, alice: Account
) -> None:
    gone = _call(client, alice, "add_task", title="Call mum")["structuredContent"]["task_id"]
    _call(client, alice, "delete_task", task_id=gone)
    assert _call(client, alice, "undo")["isError"] is False

    again = rpc_error(_call(client, alice, "undo"))

    assert again["code"] == "CONFLICT"
    assert again["message"] == "This deletion is undone already: the task is back"
    assert client.get(f"/api/tasks/{gone}", headers=alice.headers).status_code == 200
