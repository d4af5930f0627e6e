"""The benchmark's database: one per size, seeded once, reused with `--reuse`.

A marker table (`bench_seed`) records what was seeded; it is written after the last row, so
an interrupted seed is never mistaken for a complete one. Writes made by a benchmark run are
undone between scenarios (`reset`), so a reused database serves the same data as a fresh one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from backend.db.engine import libpq_url, normalize_url
from backend.db.migrations import migrate_up
from scripts.seeding import seed_in_chunks

# Bump when the seed's shape changes, so `--reuse` re-seeds an old database.
SEED_VERSION = 1
MARKER = "bench_seed"


@dataclass(frozen=True)
class BenchDb:
    url: str  # libpq URL of the seeded database
    users: int
    tasks: int
    max_seed_id: int  # tasks above this id were created by the benchmark
    seed_seconds: float | None  # None when reused


def server_url() -> str:
    """DATABASE_URL's server, or an embedded one (kept running while this process lives)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from backend.db.embedded import start_embedded_postgres

    return start_embedded_postgres(Path(".data/bench-postgres"))


def database_name(users: int, tasks: int) -> str:
    return f"task_api_bench_{users}u_{tasks}t"


def prepare(server: str, users: int, tasks: int, *, reuse: bool, quiet: bool = False) -> BenchDb:
    name = database_name(users, tasks)
    url = make_url(libpq_url(server)).set(database=name).render_as_string(hide_password=False)
    if reuse and _seeded(server, name, users, tasks):
        # A database seeded by an older checkout gets the migrations added since (the API
        # refuses to start with any pending); seeded rows are kept.
        migrate_up(url)
        engine = create_engine(normalize_url(url))
        max_id = reset(engine)
        engine.dispose()
        return BenchDb(url, users, tasks, max_id, None)
    admin = create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    migrate_up(url)
    engine = create_engine(normalize_url(url))
    started = time.monotonic()
    columns = (
        TextColumn("seeding {task.fields[what]}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} tasks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=quiet, transient=False) as bar:
        job = bar.add_task("seed", total=tasks, what=f"{users:,} users")
        seed_in_chunks(engine, users, tasks, lambda n: bar.advance(job, n))
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {MARKER} (users integer NOT NULL, tasks integer NOT NULL, "
                "version integer NOT NULL, max_seed_id bigint NOT NULL, "
                "seeded_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {MARKER} (users, tasks, version, max_seed_id) "
                "SELECT :users, :tasks, :version, coalesce(max(id), 0) FROM tasks"
            ),
            {"users": users, "tasks": tasks, "version": SEED_VERSION},
        )
    max_id = reset(engine)
    engine.dispose()
    return BenchDb(url, users, tasks, max_id, time.monotonic() - started)


def _seeded(server: str, name: str, users: int, tasks: int) -> bool:
    admin = create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
    admin.dispose()
    if not exists:
        return False
    url = make_url(libpq_url(server)).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            if not conn.scalar(text(f"SELECT to_regclass('{MARKER}') IS NOT NULL")):
                return False
            row = conn.execute(text(f"SELECT users, tasks, version FROM {MARKER}")).first()
    finally:
        engine.dispose()
    return row is not None and tuple(row) == (users, tasks, SEED_VERSION)


# The users who own tasks the benchmark created, and their change locks (migration 0008).
_CREATORS = text("SELECT DISTINCT user_id FROM tasks WHERE id > :m ORDER BY user_id")
_LOCK = text("SELECT task_events_lock(u) FROM unnest(CAST(:users AS text[])) AS u")
_DELETE_CREATED = text("DELETE FROM tasks WHERE id > :m AND user_id = ANY(CAST(:users AS text[]))")


def reset(engine: Engine) -> int:
    """Undo the benchmark's writes that change what a listing shows: drop the tasks it
    created, clear rate-limit windows. Returns the highest seeded task id.

    Requests still in flight when a run ends may be writing meanwhile. Each holds its caller's
    change lock from its start and then waits for its rows; the delete trigger takes that lock
    for each row it deletes. So the reset takes the owners' change locks before it touches
    their rows, as the API does (deleting first deadlocked with an in-flight DELETE of a task
    the mix had created), and goes round again for owners whose first task appeared meanwhile.

    The rate-limit windows are cleared first, in a transaction of their own: an in-flight write
    counts itself (a row lock on its window) before it takes its change lock (the caller's
    entry, migration 0014), so deleting the windows while holding change locks deadlocked with
    such a write."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM rate_limits"))
    with engine.begin() as conn:
        max_id = int(conn.scalar(text(f"SELECT max_seed_id FROM {MARKER}")) or 0)
        while users := list(conn.scalars(_CREATORS, {"m": max_id})):
            conn.execute(_LOCK, {"users": users})
            conn.execute(_DELETE_CREATED, {"m": max_id, "users": users})
    return max_id
