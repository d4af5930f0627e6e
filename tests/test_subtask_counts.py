"""A task's subtask counts are kept on its row by the database (migration 0024) for any writer:
after every kind of change to a subtask (insert, completion, reopening, move, delete, the
cascades of a parent's completion and deletion, a successor's copies), every task's stored
counts equal its subtasks counted afresh. Keeping them is not a change of the parent: no
version, no `updated_at`, no event."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from tests.conftest import Account

# Every task of the user: its stored counts, and its subtasks counted now.
_COUNTS = text(
    "SELECT t.id, t.subtask_count, t.open_subtask_count, "
    "(SELECT count(*) FROM tasks AS c WHERE c.parent_id = t.id) AS total, "
    "(SELECT count(*) FROM tasks AS c WHERE c.parent_id = t.id AND NOT c.completed) AS open "
    "FROM tasks AS t WHERE t.user_id = :user ORDER BY t.id"
)


def assert_counts_hold(conn: Connection, user: str = "u1") -> dict[int, tuple[int, int]]:
    """Every task's stored counts are its subtasks' counts; returns them by task id."""
    rows = conn.execute(_COUNTS, {"user": user}).all()
    wrong = [r for r in rows if (r.subtask_count, r.open_subtask_count) != (r.total, r.open)]
    assert not wrong, wrong
    return {r.id: (r.subtask_count, r.open_subtask_count) for r in rows}


@pytest.fixture
def conn(db_engine: Engine) -> Iterator[Connection]:
    """A user, in one transaction, rolled back."""
    with db_engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("INSERT INTO users (id) VALUES ('u1')"))
        yield connection
        transaction.rollback()


def _insert(conn: Connection, title: str, **columns: object) -> int:
    names = ", ".join(["user_id", "title", *columns])
    values = ", ".join(["'u1'", ":title", *(f":{name}" for name in columns)])
    statement = text(f"INSERT INTO tasks ({names}) VALUES ({values}) RETURNING id")
    task_id: int = conn.execute(statement, {"title": title, **columns}).scalar_one()
    return task_id


def _run(conn: Connection, sql: str, **values: Any) -> None:
    conn.execute(text(sql), values)


def _move(conn: Connection, task: int, parent: int | None) -> None:
    """Under `parent` (None: top level), at a place of its own there."""
    _run(
        conn,
        "UPDATE tasks SET parent_id = :to, position = 1000000 + id WHERE id = :id",
        to=parent,
        id=task,
    )


def _complete(conn: Connection, task: int, done: bool = True) -> None:
    _run(
        conn,
        "UPDATE tasks SET completed = :done, completed_at = CASE WHEN :done THEN now() END, "
        "version = version + 1 WHERE id = :id",
        done=done,
        id=task,
    )


def test_every_change_to_a_subtask_keeps_the_counts(conn: Connection) -> None:
    parent = _insert(conn, "parent")
    a = _insert(conn, "a", parent_id=parent)
    b = _insert(conn, "b", parent_id=parent, completed=True, completed_at="2030-01-01T00:00Z")
    leaf = _insert(conn, "leaf", parent_id=a)
    other = _insert(conn, "other")
    assert assert_counts_hold(conn)[parent] == (2, 1)

    _complete(conn, a)  # and, by cascade, its leaf
    assert assert_counts_hold(conn)[parent] == (2, 0)
    _complete(conn, leaf, done=False)  # reopens a, its parent
    counts = assert_counts_hold(conn)
    assert (counts[parent], counts[a]) == ((2, 1), (1, 1))

    _move(conn, b, other)
    _move(conn, leaf, None)
    counts = assert_counts_hold(conn)
    assert (counts[parent], counts[other], counts[a]) == ((1, 1), (1, 0), (0, 0))

    _move(conn, leaf, parent)
    _complete(conn, parent)  # completes a and leaf
    assert assert_counts_hold(conn)[parent] == (2, 0)
    _insert(conn, "late", parent_id=parent)  # reopens the parent
    assert assert_counts_hold(conn)[parent] == (3, 1)

    _run(conn, "DELETE FROM tasks WHERE id = :id", id=a)
    assert assert_counts_hold(conn)[parent] == (2, 1)
    _run(conn, "DELETE FROM tasks WHERE completed AND user_id = 'u1'")  # b, under `other`
    assert assert_counts_hold(conn)[other] == (0, 0)
    _run(conn, "DELETE FROM tasks WHERE id = :id", id=parent)  # and its subtree
    assert set(assert_counts_hold(conn)) == {other}


def test_keeping_the_counts_is_no_change_of_the_parent(conn: Connection) -> None:
    parent = _insert(conn, "parent")
    before = conn.execute(
        text("SELECT version, updated_at FROM tasks WHERE id = :id"), {"id": parent}
    ).one()
    events = conn.execute(text("SELECT count(*) FROM task_events")).scalar_one()

    child = _insert(conn, "child", parent_id=parent)
    _complete(conn, child)
    after = conn.execute(
        text("SELECT version, updated_at, subtask_count FROM tasks WHERE id = :id"),
        {"id": parent},
    ).one()
    assert (after.version, after.updated_at, after.subtask_count) == (*before, 1)
    recorded = conn.execute(
        text("SELECT task_id, type, task ? 'subtask_count' AS counted FROM task_events ORDER BY id")
    ).all()[events:]
    # The child's own two changes, and nothing for the parent; no event holds the counts.
    assert [(r.task_id, r.type, r.counted) for r in recorded] == [
        (child, "created", False),
        (child, "completed", False),
    ]


def test_the_api_answers_the_kept_counts(client: TestClient, alice: Account) -> None:
    """Through the API: a subtree built, completed, moved and cut, the parent read after each
    step; and a recurring parent's successor counts the copies of its checklist."""

    def post(body: dict[str, Any]) -> dict[str, Any]:
        created = client.post("/api/tasks", json=body, headers=alice.headers)
        assert created.status_code == 201, created.text
        task: dict[str, Any] = created.json()["data"]
        assert (task["subtask_count"], task["open_subtask_count"]) == (0, 0)
        return task

    def counts(task_id: int) -> tuple[int, int]:
        read = client.get(f"/api/tasks/{task_id}", headers=alice.headers).json()["data"]
        return read["subtask_count"], read["open_subtask_count"]

    parent = post({"title": "trip", "due_date": "2031-01-01T09:00:00Z", "recurrence": "weekly"})
    steps = [post({"title": f"step {n}", "parent_id": parent["id"]}) for n in range(3)]
    assert counts(parent["id"]) == (3, 3)
    toggled = client.patch(f"/api/tasks/{steps[0]['id']}/complete", headers=alice.headers)
    assert toggled.status_code == 200, toggled.text
    assert counts(parent["id"]) == (3, 2)
    moved = client.post(
        f"/api/tasks/{steps[1]['id']}/move", json={"parent_id": None}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    gone = client.delete(f"/api/tasks/{steps[2]['id']}", headers=alice.headers)
    assert gone.status_code == 204, gone.text
    assert counts(parent["id"]) == (1, 0)
    post({"title": "step 3", "parent_id": parent["id"]})
    listed = client.get("/api/tasks", headers=alice.headers).json()["data"]
    assert {t["id"]: (t["subtask_count"], t["open_subtask_count"]) for t in listed}[
        parent["id"]
    ] == (2, 1)

    done = client.patch(f"/api/tasks/{parent['id']}/complete", headers=alice.headers)
    assert done.status_code == 200, done.text
    assert (done.json()["data"]["subtask_count"], done.json()["data"]["open_subtask_count"]) == (
        2,
        0,
    )
    assert counts(parent["id"]) == (2, 0)
    listed = client.get("/api/tasks", headers=alice.headers).json()["data"]
    [successor] = [t for t in listed if t.get("previous_task_id") == parent["id"]]
    assert (successor["subtask_count"], successor["open_subtask_count"]) == (2, 2)


def test_a_recount_repairs_and_an_own_change_is_still_recorded(conn: Connection) -> None:
    """`tasks_recount_subtasks()` (the backfill; a bulk load with the triggers off) counts every
    task afresh; an UPDATE that bumps the version is the task's own change and is recorded,
    whatever else it sets."""
    parent = _insert(conn, "parent")
    _insert(conn, "child", parent_id=parent)
    _run(
        conn, "UPDATE tasks SET subtask_count = 7, open_subtask_count = 7 WHERE id = :id", id=parent
    )
    events = conn.execute(text("SELECT count(*) FROM task_events")).scalar_one()
    _run(
        conn,
        "UPDATE tasks SET title = 'fixed', subtask_count = 0, version = version + 1 WHERE id = :id",
        id=parent,
    )
    recorded = conn.execute(text("SELECT task_id, type FROM task_events ORDER BY id")).all()
    assert [tuple(r) for r in recorded[events:]] == [(parent, "updated")]
    conn.execute(text("SELECT tasks_recount_subtasks()"))
    assert assert_counts_hold(conn)[parent] == (1, 1)
