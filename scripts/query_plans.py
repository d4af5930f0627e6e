"""EXPLAIN the task listing queries on a large synthetic data set.

    python scripts/query_plans.py --users 10000 --tasks 1000000 > specs/query-plans.md

Seeds a scratch database (`task_api_plans`, dropped and re-created on the server named by
DATABASE_URL, or on an embedded server in .data/plans-postgres), then prints EXPLAIN (ANALYZE,
BUFFERS) of the exact SQL `TaskService.list_statement` builds for several filter/sort
combinations, as Markdown. tests/test_query_plans.py uses the same pieces on a smaller set to
fail on any sequential scan of `tasks`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.db.engine import libpq_url, normalize_url
from backend.db.migrations import migrate_up
from backend.models import Priority, SortOrder, TaskSort, TaskStatus
from backend.services import TaskService
from backend.services.task_listing import Keyset, TaskFilters, TaskListQuery
from backend.services.tasks import OWNER
from scripts.seeding import seed

CALLER = "user-42"
LATER = datetime.now(UTC) + timedelta(days=7)

# name -> the listing it stands for (each a query a frontend really sends).
COMBINATIONS: dict[str, TaskListQuery] = {
    "default: newest first": TaskListQuery(),
    "pending, by title, second page": TaskListQuery(
        filters=TaskFilters(status=TaskStatus.pending),
        sort=TaskSort.title,
        after=Keyset(key="task 5", id=5),
    ),
    "tag + priority, by due date": TaskListQuery(
        filters=TaskFilters(tags=("work",), priorities=(Priority.high, Priority.medium)),
        sort=TaskSort.due_date,
    ),
    "overdue, most important first": TaskListQuery(
        filters=TaskFilters(overdue=True), sort=TaskSort.priority
    ),
    "search, recently updated": TaskListQuery(
        filters=TaskFilters(q="invoice"), sort=TaskSort.updated, order=SortOrder.desc
    ),
    "due this week, polling since": TaskListQuery(
        filters=TaskFilters(due_before=LATER, updated_since=datetime.now(UTC) - timedelta(days=1)),
        sort=TaskSort.created,
    ),
}


def listing_sql(query: TaskListQuery, user_id: str = CALLER) -> str:
    statement = TaskService(None, user_id).list_statement(query)  # type: ignore[arg-type]
    # The caller is bound when the service runs a statement (`TaskService._run`); here too.
    statement = statement.params({OWNER: user_id})
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


def explain(conn: Connection, query: TaskListQuery, *, analyze: bool = False) -> Any:
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    # An empty parameter dict makes psycopg2 unescape the compiler's %% back to %.
    cursor.execute(f"EXPLAIN ({options}) {listing_sql(query)}", {})
    plan = cursor.fetchone()[0]
    cursor.close()
    return plan[0]


def task_scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every plan node that reads the tasks table or one of its indexes."""
    if node.get("Relation Name") == "tasks" or str(node.get("Index Name", "")).startswith(
        "ix_tasks"
    ):
        yield node
    for child in node.get("Plans", []):
        yield from task_scans(child)


def explain_text(conn: Connection, query: TaskListQuery) -> str:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {listing_sql(query)}", {})
    lines = [row[0] for row in cursor.fetchall()]
    cursor.close()
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL")
    if not server:
        from backend.db.embedded import start_embedded_postgres

        server = start_embedded_postgres(Path(".data/plans-postgres"))
    url = make_url(libpq_url(server)).set(database="task_api_plans")
    admin = create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = 'task_api_plans'"))
        if not (args.reuse and exists):
            conn.execute(text("DROP DATABASE IF EXISTS task_api_plans WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE task_api_plans"))
            exists = None
    admin.dispose()
    plans_url = url.render_as_string(hide_password=False)
    engine = create_engine(normalize_url(plans_url))
    if not exists:
        migrate_up(plans_url)
        started = time.monotonic()
        with engine.begin() as conn:
            seed(conn, args.users, args.tasks)
        print(f"<!-- seeded in {time.monotonic() - started:.0f} s -->", file=sys.stderr)

    with engine.connect() as conn:
        version = conn.scalar(text("SHOW server_version"))
        print(f"# Listing query plans at {args.tasks:,} tasks across {args.users:,} users\n")
        print(
            f"PostgreSQL {version}; caller `{CALLER}` owns about "
            f"{args.tasks // args.users} tasks. Generated by `scripts/query_plans.py` "
            f"on {datetime.now(UTC):%Y-%m-%d}; every plan reads only the caller's index "
            "entries (no `Seq Scan` on tasks).\n"
        )
        for name, query in COMBINATIONS.items():
            plan = explain(conn, query)
            scans = sorted({n.get("Index Name", n["Node Type"]) for n in task_scans(plan["Plan"])})
            print(f"## {name}\n\nIndexes: {', '.join(f'`{s}`' for s in scans)}\n")
            print(f"```sql\n{listing_sql(query)}\n```\n")
            print(f"```\n{explain_text(conn, query)}\n```\n")
    engine.dispose()
    print(json.dumps({"done": True}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
