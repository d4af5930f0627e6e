"""A new connection's server process keeps its heap (backend/db/engine.py `_keep_heap`): a
statement that plans in more than half a megabyte (a listing's two arms under the outcome
wrapper, specs/benchmark.md "Where a listing's CPU went") is not followed by the heap given back
to the system and faulted in again on the next one.

Counted, not timed: the server process's minor page faults (`/proc/<pid>/stat`), which needs
the database on this machine (the embedded server); elsewhere the test is skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy import text

from backend.config import Settings
from backend.db.engine import create_db_engine, libpq_url

# Parsed and planned in about 1 MB (4,000 constants, a listing's order), run 20 times.
_LARGE = "SELECT count(*) FROM (VALUES (1)) AS v(x) WHERE x IN ({})".format(
    ", ".join(str(n) for n in range(4_000))
)
_RUNS = 20


def _faults(pid: int) -> int:
    """The process's minor page faults so far (the tenth field of its stat line)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])


def _faults_per_run(execute: Any, pid: int) -> float:
    execute(_LARGE)  # the first run may grow the heap: not counted
    before = _faults(pid)
    for _ in range(_RUNS):
        execute(_LARGE)
    return (_faults(pid) - before) / _RUNS


def test_a_new_connection_keeps_its_server_process_heap(
    database_url: str, settings: Settings
) -> None:
    plain = psycopg2.connect(libpq_url(database_url))
    try:
        plain.autocommit = True
        with plain.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
            if not Path(f"/proc/{pid}/stat").exists():
                pytest.skip("the database server's processes are not on this machine")

            def run_plain(sql: str) -> None:
                cursor.execute(sql)
                cursor.fetchall()

            untuned = _faults_per_run(run_plain, pid)
    finally:
        plain.close()
    if untuned < 50:
        pytest.skip(f"this server's allocator keeps its heap anyway ({untuned:.0f} faults/run)")

    engine = create_db_engine(database_url, settings)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()

            def run_pooled(sql: str) -> None:
                conn.exec_driver_sql(sql).fetchall()

            kept = _faults_per_run(run_pooled, pid)
            conn.rollback()
    finally:
        engine.dispose()
    # Without the kept heap each run faults its planning memory back in (hundreds of pages).
    assert kept < untuned / 10, (kept, untuned)
