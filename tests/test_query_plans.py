"""Every listing query reads only the caller's rows through an index: a sequential scan of
`tasks`, or an index scan not bounded by user_id, fails this test."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from backend.db.engine import normalize_url
from scripts.query_plans import COMBINATIONS, explain, seed, task_scans


def test_listing_plans_touch_only_the_callers_rows(database_url: str) -> None:
    # 40,000 tasks over 400 users: large enough that the planner's choices are the real ones.
    # Seeded on a plain engine: the app's per-transaction statement timeout (and its response
    # deadline) bound requests, not a bulk load whose duration depends on the machine.
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.begin() as conn:
            seed(conn, users=400, tasks=40_000)
        problems = _problems(engine)
    finally:
        engine.dispose()
    assert problems == []


def _problems(engine: Engine) -> list[str]:
    problems = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name, query in COMBINATIONS.items():
            plan = explain(conn, query)
            scans = list(task_scans(plan["Plan"]))
            if not scans:
                problems.append(f"{name}: no scan of tasks in {plan}")
            for node in scans:
                if node["Node Type"] == "Seq Scan":
                    problems.append(f"{name}: sequential scan of tasks")
                index_scan = node["Node Type"] in {
                    "Index Scan",
                    "Index Only Scan",
                    "Bitmap Index Scan",
                }
                if index_scan and "user_id" not in node.get("Index Cond", ""):
                    problems.append(f"{name}: {node.get('Index Name')} not bounded by user_id")
    return problems
