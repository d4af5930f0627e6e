"""Issue 24's scenarios (item 6: "moving and deleting a list of 1,000 tasks are measured in the
benchmark"), run against the API alone:

- `move`: `POST /api/tasks/{id}/move` with `after_id`, within a seeded list of 1,000 tasks
  (`seed.py`: one per list owner). Each request moves a top-level task (every 37th of the
  list's 800, round) right after one of four fixed anchors: a move into a gap takes the
  midpoint, and the sixteenth or so into the same gap finds its neighbours adjacent and
  respaces a run of siblings (services/statements/task_tree.py). `seed.reset` puts the tasks back
  in their seeded places after the run.
- `delete-list`: `DELETE /api/lists/{id}` of a list of 1,000 tasks (`seeding.LIST_TASKS`, the
  seeded layout: subtasks three levels deep), made just before the run (`make_pool`), one list
  per request, each task's deletion recorded in the change feed by the database's triggers.

Neither runs on the raw baseline (it would have to copy the placement statements) nor on an
API before lists (756671b has no such routes). `written` counts what each request wrote, from
the change feed: every task row a write changes records one event in its transaction.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.db.engine import normalize_url
from scripts.bench.db import BenchDb
from scripts.bench.workload import TOKEN_LIFETIME, _lua
from scripts.seeding import list_owner, seed_lists

# The delete-list pool: lists for `seconds` at up to this many deletions per second (a list
# of 1,000 tasks takes PostgreSQL 45-160 ms to delete and trash on this machine's two cores:
# specs/benchmark.md), and no more than one connection can have in flight per round trip.
DELETE_LIST_MAX_RATE = 40.0
DELETE_LIST_SERVER_MS = 50.0


def mint_tokens(settings: Settings, db: BenchDb) -> list[str]:
    """tokens[i] is list_owner(i + 1)'s."""
    return [
        issue_token(list_owner(n), settings, expires_in=TOKEN_LIFETIME, token_version=0)
        for n in range(1, db.list_owners + 1)
    ]


def seeded_tops(db: BenchDb) -> list[list[int]]:
    """Per list owner (in order), the ids of the top-level tasks of their seeded list, in
    their seeded order (the first has subtasks)."""
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.user_id, array_agg(t.id ORDER BY p.position) FROM tasks AS t "
                "JOIN bench_seed_places AS p ON p.id = t.id WHERE p.parent_id IS NULL "
                "GROUP BY t.user_id"
            )
        ).all()
    engine.dispose()
    tops = {str(user): [int(i) for i in ids] for user, ids in rows}
    return [tops[list_owner(n)] for n in range(1, db.list_owners + 1)]


def write_data(path: Path, tokens: list[str], tops: list[list[int]]) -> Path:
    """The list scenarios' data file: the owners' tokens and their lists' top-level tasks."""
    path.write_text(f"return {{\ntokens = {_lua(tokens)},\nlists = {_lua(tops)},\n}}\n")
    return path


def pool_size(seconds: float, connections: int, rtt_ms: float | None) -> int:
    """Lists enough for a delete-list run, with room to spare."""
    per_connection = 1000 / ((rtt_ms or 0) + DELETE_LIST_SERVER_MS)
    rate = min(DELETE_LIST_MAX_RATE, connections * per_connection)
    return int(rate * seconds * 1.5) + 2 * connections + 10


def make_pool(db: BenchDb, count: int, path: Path) -> Path:
    """`count` lists of `LIST_TASKS` tasks spread over the list owners, for deleting; write
    their (owner number, list id) pairs. `seed.reset` deletes what is left of them."""
    owners = [list_owner(1 + n % db.list_owners) for n in range(count)]
    engine = create_engine(normalize_url(db.url))
    name = f"Disposable {time.time_ns()}"
    with engine.begin() as conn:
        seed_lists(conn, owners, name)
        rows = conn.execute(
            text(
                "SELECT substr(user_id, 8)::int, id FROM task_lists WHERE name LIKE :name "
                "ORDER BY id"
            ),
            {"name": name + " %"},
        ).all()
    engine.dispose()
    path.write_text(f"return {_lua([[int(u), int(i)] for u, i in rows])}\n")
    return path


def last_event(db: BenchDb) -> int:
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        last = int(conn.scalar(text("SELECT coalesce(max(id), 0) FROM task_events")) or 0)
    engine.dispose()
    return last


def written(db: BenchDb, after: int) -> dict[str, Any]:
    """What the requests of a run wrote, from the change events recorded since `after`: one
    per task row written (and one per list deleted), grouped by transaction (`xmin`: one per
    request). Read once the run is over, before the reset."""
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(tasks), 0), coalesce(max(tasks), 0), "
                "count(*) FILTER (WHERE tasks > 1) FROM ("
                "  SELECT count(*) FILTER (WHERE task_id IS NOT NULL) AS tasks FROM task_events"
                "  WHERE id > :after GROUP BY xmin::text"
                ") AS per_request"
            ),
            {"after": after},
        ).one()
    engine.dispose()
    requests, tasks, most, several = (int(v) for v in row)
    return {
        "requests": requests,
        "task_rows": tasks,
        "task_rows_per_request": round(tasks / requests, 2) if requests else 0.0,
        "most_task_rows": most,
        "requests_writing_several": several,
    }
