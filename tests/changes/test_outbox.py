"""Every write path records exactly one change per task changed, in the write's own
transaction (migration 0008's trigger); a rolled-back write records none."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc


def events(engine: Engine, user_id: str | None = None) -> list[dict[str, Any]]:
    """Every recorded change (of one user), in id order."""
    where = "" if user_id is None else "WHERE user_id = :u"
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT * FROM task_events {where} ORDER BY id"), {"u": user_id}
        ).mappings()
        return [dict(row) for row in rows]


def kinds(engine: Engine, user_id: str | None = None) -> list[tuple[str, int]]:
    return [(e["type"], e["task_id"]) for e in events(engine, user_id)]


def create(client: TestClient, account: Account, title: str = "t", **fields: Any) -> int:
    response = client.post("/api/tasks", json={"title": title, **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    task_id: int = response.json()["data"]["id"]
    return task_id


def test_create_records_created_with_the_task_as_the_api_shows_it(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    response = client.post(
        "/api/tasks", json={"title": "Milk", "tags": ["errands"]}, headers=alice.headers
    )
    task = response.json()["data"]
    [event] = events(db_engine)
    assert (event["type"], event["task_id"], event["user_id"]) == ("created", task["id"], alice.id)
    assert event["task"]["title"] == "Milk" and event["task"]["tags"] == ["errands"]
    assert event["task"]["version"] == 1
    assert event["state"] == "pending"


def test_each_single_task_write_records_one_change_of_the_right_type(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task_id = create(client, alice)
    path, headers = f"/api/tasks/{task_id}", alice.headers
    toggle = f"{path}/complete"
    steps: list[tuple[str, str, dict[str, Any] | None, str]] = [
        ("PUT", path, {"title": "new", "completed": False}, "updated"),
        ("PATCH", path, {"priority": "high"}, "updated"),
        ("PATCH", path, {"completed": True}, "completed"),
        ("PATCH", path, {"completed": True}, "updated"),  # already completed
        ("PATCH", toggle, None, "reopened"),
        ("PATCH", toggle, {"completed": True}, "completed"),
        ("PUT", path, {"title": "x", "completed": False}, "reopened"),
        ("DELETE", path, None, "deleted"),
    ]
    for number, (method, url, body, kind) in enumerate(steps, start=2):
        response = client.request(method, url, json=body, headers=headers)
        assert response.status_code in (200, 204), response.text
        recorded = events(db_engine)
        assert len(recorded) == number, (kind, recorded)
        assert (recorded[-1]["type"], recorded[-1]["task_id"]) == (kind, task_id)
    last = events(db_engine)
    assert last[-1]["task"] is None
    # Each recorded task is the version the write left: 1, 2, 3, ...
    assert [e["task"]["version"] for e in last[:-1]] == list(range(1, len(last)))


def test_bulk_records_one_change_per_task_touched_and_a_failed_batch_none(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    a, b, c = (create(client, alice, name) for name in "abc")
    before = len(events(db_engine))
    operations = [
        {"op": "complete", "id": a},
        {"op": "set_priority", "id": b, "priority": "low"},
        {"op": "delete", "id": c},
    ]
    response = client.post(
        "/api/tasks/bulk", json={"operations": operations}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert kinds(db_engine)[before:] == [("completed", a), ("updated", b), ("deleted", c)]
    # The last operation fails: the batch rolls back, and so do the changes it recorded.
    failing = [{"op": "reopen", "id": a}, {"op": "delete", "id": 10**9}]
    response = client.post("/api/tasks/bulk", json={"operations": failing}, headers=alice.headers)
    assert response.status_code == 404
    assert len(events(db_engine)) == before + 3


def test_clear_completed_and_account_deletion_record_one_deletion_per_task(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    done = [create(client, alice, f"done {n}", completed=True) for n in range(3)]
    kept = [create(client, alice, f"open {n}") for n in range(2)]
    create(client, bob, "bob's")
    before = len(events(db_engine, alice.id))
    response = client.delete("/api/tasks/completed", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert sorted(kinds(db_engine, alice.id)[before:]) == [("deleted", t) for t in done]
    assert client.delete("/api/auth/me", headers=alice.headers).status_code == 204
    assert sorted(kinds(db_engine, alice.id)[before + 3 :]) == [("deleted", t) for t in kept]
    # Bob's task was not touched.
    assert kinds(db_engine, bob.id) == [("created", kinds(db_engine, bob.id)[0][1])]


def test_a_failed_write_records_nothing(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task_id = create(client, alice)
    before = events(db_engine)
    stale = client.patch(
        f"/api/tasks/{task_id}", json={"title": "x"}, headers={**alice.headers, "If-Match": '"1-9"'}
    )
    assert stale.status_code == 412
    invalid = client.patch(f"/api/tasks/{task_id}", json={"title": ""}, headers=alice.headers)
    assert invalid.status_code == 422
    assert client.delete(f"/api/tasks/{task_id + 1}", headers=alice.headers).status_code == 404
    assert events(db_engine) == before


def test_a_rollback_after_the_change_removes_its_record(db_engine: Engine, alice: Account) -> None:
    """The record is part of the change's transaction: rolled back together, whoever wrote."""
    with db_engine.connect() as conn:
        conn.execute(
            text("INSERT INTO tasks (user_id, title) VALUES (:u, 'gone')"), {"u": alice.id}
        )
        assert conn.execute(text("SELECT count(*) FROM task_events")).scalar() == 1
        conn.rollback()
    assert events(db_engine) == []


def test_mcp_tool_writes_record_changes(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    def call(name: str, **arguments: Any) -> dict[str, Any]:
        result = call_tool_rpc(client, "/mcp", alice.token, name, arguments)
        assert result["isError"] is False, result
        return result

    created = call("add_task", title="from an agent")
    task_id = created["structuredContent"]["task_id"]
    call("update_task", task_id=task_id, title="renamed")
    call("complete_task", task_id=task_id)
    call("reopen_task", task_id=task_id)
    call("delete_task", task_id=task_id)
    assert kinds(db_engine) == [
        ("created", task_id),
        ("updated", task_id),
        ("completed", task_id),
        ("reopened", task_id),
        ("deleted", task_id),
    ]
