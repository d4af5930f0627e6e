"""Every listing query reads only the caller's rows through an index: a sequential scan of
`tasks`, or an index scan not bounded by user_id, fails this test."""

from __future__ import annotations

from sqlalchemy import Engine

from scripts.query_plans import COMBINATIONS, explain, seed, task_scans


def test_listing_plans_touch_only_the_callers_rows(db_engine: Engine) -> None:
    # 40,000 tasks over 400 users: large enough that the planner's choices are the real ones.
    with db_engine.begin() as conn:
        seed(conn, users=400, tasks=40_000)
    problems = []
    with db_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
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
    assert problems == []
