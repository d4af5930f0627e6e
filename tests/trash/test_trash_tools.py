"""The MCP trash tools (issue 53): `list_trash` shows what `delete_task` put in the trash, as
`GET /api/trash` does, and `restore_task` brings a task back as `POST /api/trash/{id}/restore`
does. Over real PostgreSQL, through /mcp."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc, rpc_error


def _call(client: TestClient, user: Account, name: str, **arguments: Any) -> dict[str, Any]:
    return call_tool_rpc(client, "/mcp", user.token, name, arguments)


def _add(client: TestClient, user: Account, title: str, **fields: Any) -> int:
    made = client.post("/api/tasks", json={"title": title, **fields}, headers=user.headers)
    assert made.status_code == 201, made.text
    task_id: int = made.json()["data"]["id"]
    return task_id


def test_a_deleted_task_is_listed_and_restored_with_its_subtasks(
    client: TestClient, alice: Account
) -> None:
    parent = _add(client, alice, "Plan trip")
    sub = _add(client, alice, "Book train", parent_id=parent)
    before = client.get(f"/api/tasks/{parent}", headers=alice.headers).json()["data"]
    older = _add(client, alice, "Old one")
    assert _call(client, alice, "delete_task", task_id=older)["isError"] is False
    assert _call(client, alice, "delete_task", task_id=parent)["isError"] is False

    listed = _call(client, alice, "list_trash", limit=1)

    assert listed["isError"] is False, listed
    page = listed["structuredContent"]
    assert [t["id"] for t in page["tasks"]] == [parent]  # the newest deletion first
    assert page["tasks"][0]["subtask_count"] == 1
    assert page["has_more"] is True
    rest = client.get("/api/trash", params={"limit": 1}, headers=alice.headers).json()["data"]
    assert page["tasks"] == rest

    restored = _call(client, alice, "restore_task", trash_id=parent)

    assert restored["isError"] is False, restored
    assert restored["structuredContent"] == {
        "task_id": parent,
        "status": "restored",
        "title": "Plan trip",
    }
    back = client.get(f"/api/tasks/{parent}", headers=alice.headers).json()["data"]
    assert {k: back[k] for k in ("title", "subtask_count", "list_id", "parent_id")} == {
        k: before[k] for k in ("title", "subtask_count", "list_id", "parent_id")
    }
    assert client.get(f"/api/tasks/{sub}", headers=alice.headers).status_code == 200
    left = _call(client, alice, "list_trash")["structuredContent"]
    assert [t["id"] for t in left["tasks"]] == [older]
    assert left["has_more"] is False


def test_restoring_what_is_in_no_trash_of_yours_is_not_found_and_changes_nothing(
    client: TestClient, alice: Account, bob: Account
) -> None:
    mine = _add(client, alice, "Mine")
    assert _call(client, alice, "delete_task", task_id=mine)["isError"] is False

    theirs = rpc_error(_call(client, bob, "restore_task", trash_id=mine))
    missing = rpc_error(_call(client, bob, "restore_task", trash_id=mine + 1000))
    live = _add(client, bob, "Not deleted")
    not_deleted = rpc_error(_call(client, bob, "restore_task", trash_id=live))

    assert theirs == missing == not_deleted
    assert theirs["code"] == "NOT_FOUND"
    assert theirs["message"] == "Deleted task not found in the trash"
    assert _call(client, bob, "list_trash")["structuredContent"] == {"tasks": [], "has_more": False}
    assert [t["id"] for t in _call(client, alice, "list_trash")["structuredContent"]["tasks"]] == [
        mine
    ]
    bad = rpc_error(_call(client, alice, "restore_task", trash_id="1"))
    assert bad["code"] == "VALIDATION_ERROR"
