"""What a write costs the database (issue 31, "cheap on the database"; migration 0023), counted
rather than timed: which functions a write calls (PostgreSQL's own per-transaction function
counts, `pg_stat_xact_user_functions` with `track_functions = 'all'`) and which row triggers
on `tasks` can fire for an UPDATE that does not set their columns (none). A row trigger that
calls a PL/pgSQL function for a change it has nothing to do with costs every write; a `WHEN`
that is false, or a column list the UPDATE does not name, costs next to nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects import postgresql

from backend.services.tasks.task_statements import (
    COMPLETING,
    GET,
    TOGGLING,
    completing,
    completion,
)

# The row triggers on `tasks` that must see every change: the refusal check (migration 0020)
# and the change's event (0008; on UPDATE since 0026 a trigger of its own whose WHEN skips the
# subtask counts' UPDATE). Every other UPDATE trigger names the columns it acts on.
EVERY_UPDATE = {"tasks_admit_write", "tasks_record_event_on_update"}
# Row triggers on UPDATE, on any table, with neither a column list nor a WHEN, and why.
UNCONDITIONAL = {
    "task_lists_record_event": "every UPDATE of a list is a change its event records",
}


@pytest.fixture
def conn(db_engine: Engine) -> Iterator[Connection]:
    """A user with a task, in one transaction that counts function calls; rolled back."""
    with db_engine.connect() as connection:
        transaction = connection.begin()
        superuser = connection.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar_one()
        if not superuser:
            transaction.rollback()
            pytest.skip("track_functions is a superuser setting; the test database's role is not")
        connection.execute(text("INSERT INTO users (id) VALUES ('u1')"))
        connection.execute(text("SET LOCAL track_functions = 'all'"))
        yield connection
        transaction.rollback()


def _calls(conn: Connection) -> dict[str, int]:
    """The functions this transaction has called so far, by name, and how often."""
    rows = conn.execute(
        text("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE calls > 0")
    )
    return {name: calls for name, calls in rows}


def _since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        name: calls - before.get(name, 0)
        for name, calls in after.items()
        if calls > before.get(name, 0)
    }


def _task(conn: Connection, **columns: object) -> int:
    names = ", ".join(["user_id", "title", *columns])
    values = ", ".join(["'u1'", "'t'", *(f":{name}" for name in columns)])
    statement = text(f"INSERT INTO tasks ({names}) VALUES ({values}) RETURNING id")
    task_id: int = conn.execute(statement, columns).scalar_one()
    return task_id


def test_update_triggers_name_their_columns(db_engine: Engine) -> None:
    """Every row trigger on `tasks` that fires on UPDATE, but for the refusal check and the
    event, lists the columns it acts on, so an UPDATE that sets none of them skips it before
    its WHEN is even read."""
    with db_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT tgname, cardinality(tgattr::int2[]) AS columns FROM pg_trigger "
                "WHERE tgrelid = 'tasks'::regclass AND NOT tgisinternal "
                "AND tgtype & 1 = 1 AND tgtype & 16 = 16"  # FOR EACH ROW, UPDATE
            )
        ).all()
    names = {name for name, _ in rows}
    assert names >= EVERY_UPDATE
    unlisted = {name for name, columns in rows if columns == 0} - EVERY_UPDATE
    assert unlisted == set()


def test_every_update_trigger_is_conditional(db_engine: Engine) -> None:
    """On every table, a row trigger that fires on UPDATE names its columns (`UPDATE OF`) or
    has a `WHEN` (the refusal checks': only while a request is refused), but for those
    `UNCONDITIONAL` names; and none fires on UPDATE through a trigger of INSERT or DELETE."""
    with db_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgtype & 1 = 1 AND tgtype & 16 = 16 "  # FOR EACH ROW, UPDATE
                "AND cardinality(tgattr::int2[]) = 0 AND tgqual IS NULL"
            )
        ).all()
    assert {name for (name,) in rows} == set(UNCONDITIONAL)


def test_a_plain_field_change_calls_only_the_event_trigger(conn: Connection) -> None:
    """A PATCH of the title, priority, tags or description: one function call, the event."""
    task = _task(conn, reminders='[{"minutes_before_due": 5}]', due_date="2999-01-01T00:00:00Z")
    before = _calls(conn)
    conn.execute(
        text(
            "UPDATE tasks SET title = 'renamed', priority = 'high', tags = ARRAY['x'], "
            "description = 'd', updated_at = now(), version = version + 1 WHERE id = :id"
        ),
        {"id": task},
    )
    assert _since(before, _calls(conn)) == {"task_events_record": 1}


def test_a_completion_calls_what_it_has_to_do(conn: Connection) -> None:
    """Completing a task with reminders: the event, its subtasks' completion and its
    reminders' schedule; nothing of the tree's shape or a parent's reopening."""
    task = _task(conn, reminders='[{"minutes_before_due": 5}]', due_date="2999-01-01T00:00:00Z")
    before = _calls(conn)
    conn.execute(
        text(
            "UPDATE tasks SET completed = true, completed_at = now(), version = version + 1 "
            "WHERE id = :id"
        ),
        {"id": task},
    )
    assert _since(before, _calls(conn)) == {
        "task_events_record": 1,
        "tasks_complete_subtasks": 1,
        "task_reminders_schedule": 1,
    }


def test_a_subtask_counts_itself_in_only_when_it_comes_goes_or_completes(
    conn: Connection,
) -> None:
    """The parent's counts (migration 0024): a subtask's plain change calls only its event; its
    completion also updates its parent once, whose event trigger then records nothing."""
    parent = _task(conn)
    child = _task(conn, parent_id=parent)
    before = _calls(conn)
    conn.execute(
        text("UPDATE tasks SET title = 'renamed', version = version + 1 WHERE id = :id"),
        {"id": child},
    )
    assert _since(before, _calls(conn)) == {"task_events_record": 1}
    before = _calls(conn)
    conn.execute(
        text(
            "UPDATE tasks SET completed = true, completed_at = now(), version = version + 1 "
            "WHERE id = :id"
        ),
        {"id": child},
    )
    # The parent's count UPDATE is no change: the event's WHEN skips it (migration 0026).
    assert _since(before, _calls(conn)) == {
        "task_events_record": 1,
        "tasks_count_subtasks": 1,
        "tasks_complete_subtasks": 1,
    }


def test_the_entry_counts_a_write_without_another_function(conn: Connection) -> None:
    """The caller's entry upserts the write count itself (a statement whose plan the session
    keeps), not through `task_api_hit` (a SQL function planned afresh on every call)."""
    before = _calls(conn)
    conn.execute(
        text(
            "SELECT task_api_enter('u1', 0, true, NULL, NULL, true, 'task-writes:u1', 60, 120, "
            "true)"
        )
    )
    calls = _since(before, _calls(conn))
    assert calls.get("task_api_enter") == 1
    assert "task_api_hit" not in calls
    hits = conn.execute(text("SELECT hits FROM rate_limits WHERE key = 'task-writes:u1'"))
    assert hits.scalar_one() == 1


def test_no_statement_counts_subtasks() -> None:
    """The subtask counts are columns the database keeps (migration 0024): a task is read and
    returned without a subquery over its subtasks (the two were half of a GET's work in
    PostgreSQL and a quarter of a PATCH's, specs/benchmark.md)."""
    for statement in (GET, *TOGGLING, *COMPLETING, *completing(completion(False))):
        sql = str(statement.compile(dialect=postgresql.dialect()))
        assert "subtask_count" in sql
        assert "count(" not in sql.lower(), sql


def _tasks_fetched(conn: Connection) -> int:
    """Rows of `tasks` this transaction has fetched through an index so far."""
    fetched: int = conn.execute(
        text("SELECT idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'tasks'")
    ).scalar_one()
    return fetched


@pytest.mark.parametrize("in_list", [False, True])
def test_a_new_task_is_placed_by_reading_one_sibling(conn: Connection, in_list: bool) -> None:
    """A new top-level task's place (migration 0103) is the first sibling's position less a
    step, read as the first entry of `uq_tasks_user_id_list_id_parent_id_position`, not the
    minimum over every sibling: its cost does not grow with the list."""
    columns: dict[str, object] = {}
    if in_list:
        columns["list_id"] = conn.execute(
            text(
                "INSERT INTO task_lists (user_id, name, name_key, position) "
                "VALUES ('u1', 'L', 'l', 1) RETURNING id"
            )
        ).scalar_one()
    for _ in range(40):
        _task(conn, **columns)
    first = conn.execute(
        text("SELECT min(position) FROM tasks WHERE user_id = 'u1' AND parent_id IS NULL")
    ).scalar_one()
    before = _tasks_fetched(conn)
    placed = _task(conn, **columns)
    assert _tasks_fetched(conn) - before <= 2
    position = conn.execute(text("SELECT position FROM tasks WHERE id = :id"), {"id": placed})
    assert position.scalar_one() == first - 65536


def test_an_event_is_in_utc_whatever_the_writers_zone(conn: Connection) -> None:
    """The change's event shows the task's instants in UTC (migration 0104) when the writer's
    session is in another zone, and the writer's zone is its own again after the write."""
    conn.execute(text("SET LOCAL TimeZone = 'Asia/Kolkata'"))
    task = _task(conn, due_date="2999-01-01T00:00:00Z")
    conn.execute(
        text("UPDATE tasks SET due_date = '2999-01-02T00:00:00Z', version = 2 WHERE id = :id"),
        {"id": task},
    )
    assert conn.execute(text("SELECT current_setting('TimeZone')")).scalar_one() == "Asia/Kolkata"
    created, updated = conn.execute(
        text(
            "SELECT task ->> 'due_date', changes -> 'due_date' FROM task_events "
            "WHERE task_id = :id ORDER BY id"
        ),
        {"id": task},
    ).all()
    assert created[0] == "2999-01-01T00:00:00+00:00"
    assert updated[1] == ["2999-01-01T00:00:00+00:00", "2999-01-02T00:00:00+00:00"]


def test_the_entry_of_a_write_by_id_takes_the_callers_lock_alone(conn: Connection) -> None:
    """A PATCH's or toggle's entry on the caller's own task (migration 0105) takes the caller's
    change lock, and only it, without `task_api_lock_spaces`."""
    task = _task(conn)
    before = _calls(conn)
    conn.execute(text("SELECT task_api_lock_task_spaces('u1', :id)"), {"id": task})
    assert _since(before, _calls(conn)) == {"task_api_lock_task_spaces": 1}
    held = conn.execute(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND granted"
        )
    ).scalar_one()
    assert held == 1
