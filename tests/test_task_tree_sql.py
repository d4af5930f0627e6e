"""The database keeps the rules of lists and subtasks for any writer, SQL typed into psql
included (migrations 0017-0019): same-user references, one task per place among siblings,
the tree's shape, and the list events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from backend.models.task_list import MAX_DEPTH


@pytest.fixture
def conn(db_engine: Engine) -> Iterator[Connection]:
    """Two users, each with a list and a task; one transaction, rolled back."""
    with db_engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("INSERT INTO users (id) VALUES ('u1'), ('u2')"))
        for user in ("u1", "u2"):
            connection.execute(
                text(
                    "INSERT INTO task_lists (id, user_id, name, name_key, position) "
                    "OVERRIDING SYSTEM VALUE VALUES (:id, :u, 'L', 'l', 1)"
                ),
                {"id": 1 if user == "u1" else 2, "u": user},
            )
        yield connection
        transaction.rollback()


def _insert(conn: Connection, user: str, title: str, **columns: object) -> int:
    names = ", ".join(["user_id", "title", *columns])
    values = ", ".join([":user_id", ":title", *(f":{name}" for name in columns)])
    statement = text(f"INSERT INTO tasks ({names}) VALUES ({values}) RETURNING id")
    task_id: int = conn.execute(
        statement, {"user_id": user, "title": title, **columns}
    ).scalar_one()
    return task_id


def _refused(conn: Connection, statement: str, constraint: str, **values: object) -> None:
    """`statement` fails on `constraint` (SQLSTATE 23xxx: the API's 409 if it ever got there)."""
    savepoint = conn.begin_nested()
    with pytest.raises(IntegrityError) as refused:
        conn.execute(text(statement), values)
    savepoint.rollback()
    assert refused.value.orig.diag.constraint_name == constraint  # type: ignore[union-attr]


def test_a_task_only_references_its_owners_list_and_tasks(conn: Connection) -> None:
    theirs = _insert(conn, "u2", "theirs")
    for column, value, key in (
        ("list_id", 2, "fk_tasks_user_id_list_id_task_lists"),
        ("parent_id", theirs, "fk_tasks_user_id_parent_id_tasks"),
    ):
        _refused(
            conn,
            f"INSERT INTO tasks (user_id, title, {column}) VALUES ('u1', 'x', :v)",
            key,
            v=value,
        )
    # The same rows for their owner are accepted.
    assert _insert(conn, "u2", "mine", list_id=2, parent_id=None)
    assert _insert(conn, "u2", "sub", parent_id=theirs)


def test_one_task_per_place_and_the_tree_shape(conn: Connection) -> None:
    top = _insert(conn, "u1", "top", list_id=1)
    position = conn.execute(text("SELECT position FROM tasks WHERE id = :t"), {"t": top}).scalar()
    _refused(
        conn,
        "INSERT INTO tasks (user_id, title, list_id, position) VALUES ('u1', 'twin', 1, :p)",
        "uq_tasks_user_id_list_id_parent_id_position",
        p=position,
    )
    # A subtask is in its parent's list.
    _refused(
        conn,
        "INSERT INTO tasks (user_id, title, parent_id) VALUES ('u1', 'x', :p)",
        "ck_tasks_tree",
        p=top,
    )
    child = _insert(conn, "u1", "child", list_id=1, parent_id=top)
    _refused(conn, "UPDATE tasks SET list_id = NULL WHERE id = :t", "ck_tasks_tree", t=top)
    # No task is its own ancestor.
    _refused(conn, "UPDATE tasks SET parent_id = :c WHERE id = :t", "ck_tasks_tree", c=child, t=top)
    _refused(
        conn, "UPDATE tasks SET parent_id = id WHERE id = :t", "ck_tasks_parent_not_self", t=top
    )
    # At most MAX_DEPTH ancestors.
    chain = [child]
    for _ in range(MAX_DEPTH - 1):
        chain.append(_insert(conn, "u1", "deeper", list_id=1, parent_id=chain[-1]))
    _refused(
        conn,
        "INSERT INTO tasks (user_id, title, list_id, parent_id) VALUES ('u1', 'x', 1, :p)",
        "ck_tasks_tree",
        p=chain[-1],
    )
    other = _insert(conn, "u1", "other", list_id=1)
    _refused(conn, "UPDATE tasks SET parent_id = :o WHERE id = :t", "ck_tasks_tree", o=other, t=top)
    # A subtask does not recur.
    _refused(
        conn,
        "UPDATE tasks SET recurrence = 'FREQ=DAILY', due_date = now(), series_id = "
        "gen_random_uuid(), series_start = now() WHERE id = :c",
        "ck_tasks_subtask_not_recurring",
        c=child,
    )


def test_places_for_new_tasks(conn: Connection) -> None:
    """A new top-level task goes first among its siblings, a new subtask last."""
    first, second = _insert(conn, "u1", "a", list_id=1), _insert(conn, "u1", "b", list_id=1)
    sub1, sub2 = (_insert(conn, "u1", s, list_id=1, parent_id=first) for s in ("s1", "s2"))
    positions = dict(
        conn.execute(text("SELECT id, position FROM tasks WHERE user_id = 'u1'")).all()
    )
    assert positions[second] < positions[first]
    assert positions[sub1] < positions[sub2]


def test_completion_cascades_are_changes(conn: Connection) -> None:
    parent = _insert(conn, "u1", "parent")
    child = _insert(conn, "u1", "child", parent_id=parent)
    conn.execute(
        text("UPDATE tasks SET completed = true, completed_at = now() WHERE id = :p"), {"p": parent}
    )
    rows = conn.execute(
        text("SELECT task_id, type FROM task_events WHERE user_id = 'u1' ORDER BY id")
    ).all()
    assert rows[-2:] == [(parent, "completed"), (child, "completed")]
    version = conn.execute(text("SELECT version FROM tasks WHERE id = :c"), {"c": child}).scalar()
    assert version == 2


def test_list_changes_are_events(conn: Connection) -> None:
    conn.execute(text("UPDATE task_lists SET name = 'M', name_key = 'm' WHERE id = 1"))
    _insert(conn, "u1", "in it", list_id=1)
    conn.execute(text("DELETE FROM task_lists WHERE id = 1"))
    rows = conn.execute(
        text(
            "SELECT type, list_id, task_id, list ->> 'name' AS name, list ? 'name_key' AS keyed "
            "FROM task_events WHERE user_id = 'u1' ORDER BY id"
        )
    ).all()
    # (A task's own changes carry its list too, since migration 0030.)
    assert [(r.type, r.list_id) for r in rows if r.type.startswith("list.")] == [
        ("list.created", 1),
        ("list.updated", 1),
        ("list.deleted", 1),
    ]
    assert [r.name for r in rows if r.type.startswith("list.")] == ["L", "M", None]
    assert not any(r.keyed for r in rows)
    assert [r.type for r in rows if r.task_id] == ["created", "deleted"]
