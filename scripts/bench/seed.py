"""The benchmark's database: one per size, seeded once, reused with `--reuse`.

Besides the users' tasks (`scripts/seeding.py`), each of `list_owners` other users owns one
list of 1,000 tasks, subtasks included (the `move` scenario's; `delete-list` deletes lists
made just before its run, `lists.make_pool`). Their places as seeded are kept in
`bench_seed_places`, so that `reset` can put back what the moves moved. Lists of 100 tasks
shared with a member each (`shared.seed_shared`) are the `shared-list` scenario's, lists of
1,000 tasks of `syncer-n` (`davsync.seed_syncers`) the `dav-sync` scenario's.

The naive app's own table (`naive_tasks`, scripts/bench/naive.py) gets a copy of the seeded
tasks, same ids and values (`copy_to_naive`), so both apps read the same data; the copy is
made again before each validation, since each app's runs change its own table.

A marker table (`bench_seed`) records what was seeded; it is written after the last row, so
an interrupted seed is never mistaken for a complete one. Writes made by a benchmark run are
undone between scenarios (`reset`), so a reused database serves the same data as a fresh one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from backend.db.engine import libpq_url, normalize_url
from backend.db.migrations import migrate_up
from scripts.bench.db import BenchDb as BenchDb
from scripts.seeding import list_owner, seed_in_chunks, seed_lists

# Bump when the seed's shape changes, so `--reuse` re-seeds an old database.
SEED_VERSION = 4
MARKER = "bench_seed"
PLACES = "bench_seed_places"
# Users who own a seeded list of 1,000 tasks (one each): at most this many, one per
# connection of the largest standard run, so that concurrent moves seldom wait for the same
# user's change lock.
LIST_OWNERS = 32


def list_owners(users: int) -> int:
    """How many list owners a seed of `users` users gets."""
    return min(LIST_OWNERS, users)


def server_url() -> str:
    """DATABASE_URL's server, or an embedded one (kept running while this process lives)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from backend.db.embedded import start_embedded_postgres

    return start_embedded_postgres(Path(".data/bench-postgres"))


def database_name(users: int, tasks: int) -> str:
    return f"task_api_bench_{users}u_{tasks}t"


def fresh_database(server: str, name: str) -> str:
    """Database `name` on `server`, made anew and migrated: its URL."""
    url = make_url(libpq_url(server)).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    migrate_up(url)
    return url


def prepare(server: str, users: int, tasks: int, *, reuse: bool, quiet: bool = False) -> BenchDb:
    name = database_name(users, tasks)
    url = make_url(libpq_url(server)).set(database=name).render_as_string(hide_password=False)
    if reuse and _seeded(server, name, users, tasks):
        # A database seeded by an older checkout gets the migrations added since (the API
        # refuses to start with any pending); seeded rows are kept.
        migrate_up(url)
        engine = create_engine(normalize_url(url))
        copy_to_naive(engine)
        max_id = reset(engine)
        engine.dispose()
        return BenchDb(url, users, tasks, max_id, None, list_owners(users))
    fresh_database(server, name)
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
    owners = [list_owner(n) for n in range(1, list_owners(users) + 1)]
    with engine.begin() as conn:
        conn.execute(_OWNERS, {"owners": owners})
        seed_lists(conn, owners, "Moves")
        conn.execute(
            text(
                f"CREATE TABLE {PLACES} AS SELECT id, list_id, parent_id, position FROM tasks "
                "WHERE list_id IS NOT NULL"
            )
        )
        conn.execute(text(f"ALTER TABLE {PLACES} ADD PRIMARY KEY (id)"))
        # After the places: no move touches the shared lists (`seeded_tops` reads the places).
        from scripts.bench.shared import seed_shared

        seed_shared(conn)
        from scripts.bench.davsync import seed_syncers

        seed_syncers(conn)
        conn.execute(
            text(
                f"CREATE TABLE {MARKER} (users integer NOT NULL, tasks integer NOT NULL, "
                "version integer NOT NULL, max_seed_id bigint NOT NULL, "
                "max_seed_list_id bigint NOT NULL, seeded_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {MARKER} (users, tasks, version, max_seed_id, max_seed_list_id) "
                "SELECT :users, :tasks, :version, coalesce(max(id), 0), "
                "(SELECT coalesce(max(id), 0) FROM task_lists) FROM tasks"
            ),
            {"users": users, "tasks": tasks, "version": SEED_VERSION},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE tasks"))
        conn.execute(text("VACUUM ANALYZE task_lists"))
    copy_to_naive(engine)
    max_id = reset(engine)
    engine.dispose()
    return BenchDb(url, users, tasks, max_id, time.monotonic() - started, len(owners))


NAIVE = "naive_tasks"  # scripts/bench/naive.py's table
# Its columns, each from the API's column of the same name (the seed writes no longer text
# than the naive app's VARCHARs take).
_NAIVE_COLUMNS = (
    "id, user_id, title, description, completed, completed_at, priority, due_date, tags, "
    "created_at, updated_at"
)


def copy_to_naive(engine: Engine) -> None:
    """Make the naive app's table (as the app does at start-up, by running its own
    `create_db_and_tables`: one definition of it, and no start-up race between two workers)
    and fill it with a copy of the seeded tasks, replacing what was there."""
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": "unused: no token is made"}
    subprocess.run(
        [sys.executable, "-c", "from scripts.bench.naive import create_db_and_tables as c; c()"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    with engine.begin() as conn:
        max_id = conn.scalar(text(f"SELECT max_seed_id FROM {MARKER}"))
        conn.execute(text(f"TRUNCATE {NAIVE}"))
        conn.execute(
            text(
                f"INSERT INTO {NAIVE} ({_NAIVE_COLUMNS}) SELECT {_NAIVE_COLUMNS} FROM tasks "
                "WHERE id <= :m"
            ),
            {"m": max_id},
        )
        # Its own creates get ids above the seed's, as the API's do.
        conn.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{NAIVE}', 'id'), greatest(:m, 1))"),
            {"m": max_id},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE {NAIVE}"))


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


_OWNERS = text("INSERT INTO users (id) SELECT unnest(CAST(:owners AS text[]))")
# The users who own tasks or lists the benchmark created, or seeded tasks it moved, and their
# change locks (migration 0008).
_CREATORS = text(
    "SELECT user_id FROM tasks WHERE id > :m UNION SELECT user_id FROM task_lists WHERE id > :l "
    f"UNION SELECT t.user_id FROM tasks AS t JOIN {PLACES} AS p ON p.id = t.id "
    "WHERE (t.list_id, t.parent_id, t.position) IS DISTINCT FROM (p.list_id, p.parent_id, "
    "p.position) ORDER BY 1"
)
_LOCK = text("SELECT task_events_lock(u) FROM unnest(CAST(:users AS text[])) AS u")
_DELETE_LISTS = text(
    "DELETE FROM task_lists WHERE id > :l AND user_id = ANY(CAST(:users AS text[]))"
)
_DELETE_CREATED = text("DELETE FROM tasks WHERE id > :m AND user_id = ANY(CAST(:users AS text[]))")
# Seeded tasks back in their places (one statement: the unique place is checked at its end).
_PUT_BACK = text(
    f"UPDATE tasks AS t SET list_id = p.list_id, parent_id = p.parent_id, position = p.position "
    f"FROM {PLACES} AS p WHERE p.id = t.id AND t.user_id = ANY(CAST(:users AS text[])) "
    "AND (t.list_id, t.parent_id, t.position) IS DISTINCT FROM (p.list_id, p.parent_id, "
    "p.position)"
)


def reset(engine: Engine) -> int:
    """Undo the benchmark's writes that change what a listing or a move sees: drop the tasks
    and lists it created (the naive app's tasks too), put moved seeded tasks back in their
    places, clear rate-limit windows. Returns the highest seeded task id.

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
        conn.execute(text(f"DELETE FROM {NAIVE} WHERE id > (SELECT max_seed_id FROM {MARKER})"))
    with engine.begin() as conn:
        row = conn.execute(text(f"SELECT max_seed_id, max_seed_list_id FROM {MARKER}")).one()
        max_id, max_list = int(row[0] or 0), int(row[1] or 0)
        while users := list(conn.scalars(_CREATORS, {"m": max_id, "l": max_list})):
            conn.execute(_LOCK, {"users": users})
            conn.execute(_DELETE_LISTS, {"l": max_list, "users": users})
            conn.execute(_DELETE_CREATED, {"m": max_id, "users": users})
            conn.execute(_PUT_BACK, {"users": users})
    return max_id
