"""Every listing query, the subtree read and the moves read only the caller's rows through an
index, and the shared lists' (a member's listing, a shared list's page, a shared task read and
patched, the lists) only those of the lists shared with it: a sequential scan of `tasks`,
`list_members` or `task_lists`, or an index scan of tasks not bounded by user_id, fails this
test. And every index of `task_events` (each one a cost of every task write) is read by the
plan of some statement that reads the table: an index nothing reads fails it too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from backend.db.engine import normalize_url
from scripts.query_plans import (
    CALLER,
    CALLER_SHARES,
    COMBINATIONS,
    EVENT_SEED,
    EVENT_STATEMENTS,
    EVENT_STATES,
    FILL_TRASH,
    STATEMENTS,
    caller_rows,
    event_indexes,
    event_plans,
    explain,
    indexes_read,
    plans,
    problems,
    seed,
    shapes,
)
from scripts.seeding import seed_shares, seed_tree
from tests.conftest import clean_tables

SEEDED_TABLES = ("users", "tasks", "task_lists", "list_members")

# One seed for the module (about 18 s), each test leaving it as it found it.
pytestmark = pytest.mark.module_tables


@pytest.fixture(scope="module")
def seeded(database_url: str, db_engine: Engine, _cleanup_sql: str) -> Iterator[Engine]:
    # 40,000 tasks over 400 users (and a change event for each), 415 memberships: large
    # enough that the planner's choices are the real ones. Seeded on a plain engine: the app's
    # per-transaction statement timeout (and its response deadline) bound requests, not a bulk
    # load whose duration depends on the machine.
    engine = create_engine(normalize_url(database_url))
    with engine.begin() as conn:
        seed(conn, users=400, tasks=40_000)
        seed_tree(conn)
        seed_shares(conn, 400, CALLER, CALLER_SHARES)
    # The seed's rows and dead versions counted, its statistics final: an autovacuum run in
    # the middle of a test would change the plans a test compares.
    _vacuum(engine, SEEDED_TABLES)
    yield engine
    engine.dispose()
    clean_tables(db_engine, _cleanup_sql)


def _vacuum(engine: Engine, tables: tuple[str, ...]) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.execute(text(f"VACUUM ANALYZE {table}"))


def test_plans_touch_only_the_callers_rows(seeded: Engine) -> None:
    found, indexes = _explained(seeded)
    assert found == [], "\n".join(found)
    assert set(indexes) == {*COMBINATIONS, *STATEMENTS}
    # The tree's reads go through the tree's keys: a list's page through the sibling order
    # (user, list, parent, position), subtasks through the parent key.
    assert (
        "uq_tasks_user_id_list_id_parent_id_position"
        in indexes["a list's page: its top level in manual order"]
    )
    assert (
        "ix_tasks_user_id_parent_id" in indexes["a subtree: the task and its subtasks, depth-first"]
    )
    # A member reads a shared list's page through the same sibling key, the caller's
    # memberships through theirs; a shared task by id, read or written, through the primary
    # key (its access checked on the one row), and its own reminders on it through theirs.
    for name in (
        "a shared list's page, as a member: its top level in manual order",
        "a shared list's page, as a member: newest first",
        "default: newest first, own tasks and shared lists' (both arms)",
    ):
        assert {
            "uq_tasks_user_id_list_id_parent_id_position",
            "ix_list_members_member_id_list_id",
        } <= indexes[name], (name, indexes[name])
    for name in (
        "a shared task by id, as a member (GET)",
        "a PATCH of a shared task, as an editor",
    ):
        assert indexes[name] == {
            "pk_tasks",
            "ix_list_members_member_id_list_id",
            "pk_task_member_reminders",
        }, indexes[name]


def _shapes(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return shapes(conn)


def test_trashed_tasks_leave_every_plan_as_it_is(seeded: Engine) -> None:
    """Issue 53: a trashed task is not in `tasks` (migration 0048, `task_trash`), so no listing,
    feed page or write statement reads the trash: with a trashed entry for every top-level
    task (each user's, snapshots of its whole subtree), analyzed, every plan is the same shape;
    the feed's page and position read with a change recorded for every task and list."""
    with seeded.begin() as conn:
        seeded_events = conn.scalar(text("SELECT coalesce(max(id), 0) FROM task_events"))
        for insert in EVENT_SEED:
            conn.execute(text(insert))
    try:
        _vacuum(seeded, ("task_events",))
        before = _shapes(seeded)
        with seeded.begin() as conn:
            conn.execute(text(FILL_TRASH))
            conn.execute(text("ANALYZE task_trash"))
            trashed = conn.scalar(text("SELECT count(*) FROM task_trash"))
        with seeded.connect() as conn:
            tops = conn.scalar(text("SELECT count(*) FROM tasks WHERE parent_id IS NULL"))
        assert trashed == tops
        with seeded.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name, (sql, _) in plans(conn, caller_rows(conn)).items():
                assert "task_trash" not in sql, name
        assert _shapes(seeded) == before
    finally:  # the module's seed as it was, statistics included, for the next test
        with seeded.begin() as conn:
            conn.execute(text("DELETE FROM task_trash"))
            conn.execute(text("DELETE FROM task_events WHERE id > :last"), {"last": seeded_events})
        _vacuum(seeded, ("task_trash", "task_events"))


def _explained(engine: Engine) -> tuple[list[str], dict[str, set[str]]]:
    found: list[str] = []
    indexes: dict[str, set[str]] = {}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name, (sql, writes) in plans(conn, caller_rows(conn)).items():
            plan = explain(conn, sql, writes=writes)
            found += problems(name, plan)
            indexes[name] = set(indexes_read(plan["Plan"]))
    return found, indexes


# Which statement reads each index of `task_events`, in which state of the outbox (specs/
# statements.md, "What a write pays for"); an index added without a statement whose plan
# reads it fails the test (as does one a statement stops reading: drop it then). A write of
# leased rows by id may read the key or the pending index, whichever ANALYZE's sample makes
# cheaper, so the key is pinned to the lease, which reads it in every sample.
EVENT_INDEXES = {
    "pk_task_events": ("healthy", "the worker leases a batch"),
    "ix_task_events_pending_id": ("healthy", "the worker leases a batch"),
    "ix_task_events_pending_task_id_id": ("a backlog", "the worker leases a batch"),
    "ix_task_events_pending_list_id_id": ("healthy", "the worker leases a batch"),
    "ix_task_events_dead_id": ("healthy", "the dead letters"),
    "ix_task_events_occurred_at": ("healthy", "prune delivered changes"),
    "ix_task_events_user_id_id": ("healthy", "the change feed's page"),
    "ix_task_events_user_id_list_id_id": ("healthy", "the change feed's page"),
    "ix_task_events_user_id_no_list_id": ("healthy", "a CalDAV sync token of the tasks in no list"),
    "ix_task_events_user_id_left_list": ("healthy", "a CalDAV list's sync token"),
}


def test_every_task_events_index_is_read_by_a_plan(seeded: Engine) -> None:
    with seeded.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        existing = set(
            conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'task_events'"))
        )
        found = event_plans(conn)
    assert set(found) == {(state, name) for state in EVENT_STATES for name in EVENT_STATEMENTS}
    read = {
        (state, name): set(event_indexes(plan["Plan"])) for (state, name), plan in found.items()
    }
    unread = existing - set().union(*read.values())
    assert unread == set(), f"indexes of task_events no plan reads (drop them): {unread}"
    assert set(EVENT_INDEXES) == existing
    for index, (state, name) in EVENT_INDEXES.items():
        assert index in read[(state, name)], (index, state, name, read[(state, name)])


# The write count's clean-up of expired windows, as task_api_enter (migration 0023) and
# task_api_hit (0014) run it.
_CLEAN_UP = "DELETE FROM rate_limits AS r WHERE r.window_end < clock_timestamp() AND r.key <> 'k5'"


def test_rate_limits_keeps_only_its_key(db_engine: Engine) -> None:
    """The write count reads `rate_limits` by key; the clean-up compares `window_end` with the
    volatile `clock_timestamp()`, which no index can serve: with an index on `window_end`
    there (20,000 windows, 1 in 100 expired) its plan is still a scan, so the table keeps no
    index but its key (migration 0026 dropped `ix_rate_limits_window_end`)."""
    with db_engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(
            text(
                "INSERT INTO rate_limits (key, window_start, window_end, hits) "
                "SELECT 'k' || g, now() - CASE WHEN g % 100 = 0 THEN interval '2 min' "
                "ELSE interval '0 min' END, now() + CASE WHEN g % 100 = 0 "
                "THEN interval '-1 min' ELSE interval '1 min' END, 1 "
                "FROM generate_series(1, 20000) AS g"
            )
        )
        indexes = set(
            conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'rate_limits'"))
        )
        conn.execute(text("CREATE INDEX ix_rate_limits_window_end ON rate_limits (window_end)"))
        conn.execute(text("ANALYZE rate_limits"))
        plan = "\n".join(conn.scalars(text(f"EXPLAIN {_CLEAN_UP}")))
        transaction.rollback()
    assert indexes == {"pk_rate_limits"}
    assert "Seq Scan on rate_limits" in plan and "ix_rate_limits_window_end" not in plan, plan
