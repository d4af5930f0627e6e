"""Every listing query, the subtree read and the moves read only the caller's rows through an
index: a sequential scan of `tasks`, or an index scan not bounded by user_id, fails this
test."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from backend.db.engine import normalize_url
from scripts.query_plans import (
    COMBINATIONS,
    STATEMENTS,
    caller_rows,
    explain,
    plans,
    problems,
    seed,
    task_scans,
)
from scripts.seeding import seed_tree


def test_plans_touch_only_the_callers_rows(database_url: str) -> None:
    # 40,000 tasks over 400 users: large enough that the planner's choices are the real ones.
    # Seeded on a plain engine: the app's per-transaction statement timeout (and its response
    # deadline) bound requests, not a bulk load whose duration depends on the machine.
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.begin() as conn:
            seed(conn, users=400, tasks=40_000)
            seed_tree(conn)
        found, indexes = _explained(engine)
    finally:
        engine.dispose()
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


def _explained(engine: Engine) -> tuple[list[str], dict[str, set[str]]]:
    found: list[str] = []
    indexes: dict[str, set[str]] = {}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name, (sql, writes) in plans(conn, caller_rows(conn)).items():
            plan = explain(conn, sql, writes=writes)
            found += problems(name, plan)
            scans = task_scans(plan["Plan"])
            indexes[name] = {n["Index Name"] for n in scans if "Index Name" in n}
    return found, indexes
