"""The largest SQL statements the app sends, and how long PostgreSQL takes to plan them.

    python -m scripts.statement_sizes                      # every route and tool once
    python -m scripts.statement_sizes --runs 25 tests/undo -k move   # any tests' requests

Runs tests (by default tests/test_round_trips.py: every REST route and MCP tool once, with
their variants, on the embedded PostgreSQL the fixtures start) with this module as a pytest
plugin. Every statement the app's `Sender` sends (`backend.db.sender._compiled`: each message's
statement, what rides ahead of it or with its COMMIT, a bulk's steps) is recorded as composed,
its values as parameters, and the first time a statement is seen it is planned with its real
values (`EXPLAIN (SUMMARY)`, `PLANNING_RUNS` times after a warm-up on a connection of its own,
at the moment the app sends it: the data and the caller's memberships as the statement finds
them). Prints the five largest statements and the five slowest to plan (specs/statements.md,
"Statement sizes"). Sizes are what the code builds, deterministic: tests/test_round_trips.py
holds every request's statements to `LIMIT` bytes with `recording`. Planning times are
measurements: on a loaded machine the minimum of many runs is the closer to the work.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.db import sender

# The largest statement the code may send, in bytes of its SQL (issue 60).
LIMIT = 22_000
PLANNING_RUNS = 7
DEFAULT_TESTS = ["tests/test_round_trips.py"]


@dataclass
class Statement:
    """A statement as the code composed it, where it was first seen, and its planning times."""

    sql: str
    first_seen: str
    sent: int = 0
    planned_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def size(self) -> int:
        return len(self.sql.encode())

    @property
    def planning(self) -> str:
        if self.error is not None:
            return f"not planned ({self.error})"
        if not self.planned_ms:
            return "-"
        median = statistics.median(self.planned_ms)
        return f"{median:.2f} ms (min {min(self.planned_ms):.2f}, max {max(self.planned_ms):.2f})"


@contextmanager
def _sent(record: Callable[[str, dict[str, Any]], None]) -> Iterator[None]:
    """Calls `record(sql, values)` for every statement the app's `Sender` compiles to send
    while inside: its SQL (pyformat) and its values, named as the SQL names them."""
    original = sender._compiled

    def compiled(dialect: Any, statement: Any, values: Mapping[str, Any], prefix: str = "") -> Any:
        found, params = original(dialect, statement, values, prefix)
        record(found.sql, {k[len(prefix) :]: v for k, v in params.items()})
        return found, params

    sender._compiled = compiled
    try:
        yield
    finally:
        sender._compiled = original


@contextmanager
def recording() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every statement the app's `Sender` sends while inside, as (SQL, values)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    with _sent(lambda sql, values: seen.append((sql, values))):
        yield seen


def planning_times(conn: Any, sql: str, params: Mapping[str, Any], runs: int) -> list[float]:
    """`sql` with `params` quoted in (as psycopg2 sends it), planned `runs` times after one
    more: each `EXPLAIN (SUMMARY)`'s Planning Time in ms, in a transaction rolled back (the
    app's pooled connections plan with warm caches)."""
    times = []
    with conn.cursor() as cursor:
        text = cursor.mogrify(sql, dict(params)).decode()
        try:
            for run in range(runs + 1):  # the first loads the connection's catalog caches
                cursor.execute(f"EXPLAIN (SUMMARY, FORMAT JSON) {text}")
                plan = cursor.fetchone()[0]
                if run:
                    times.append(float(plan[0]["Planning Time"]))
        finally:
            conn.rollback()
    return times


class Recorder:
    """The pytest plugin: records the statements of every test's requests, plans each new one."""

    def __init__(self, runs: int = PLANNING_RUNS) -> None:
        self.runs = runs
        self.statements: dict[str, Statement] = {}
        self._conn: Any = None
        self._test = ""

    @pytest.fixture(scope="session", autouse=True)
    def _statement_planner(self, database_url: str) -> Iterator[None]:
        import psycopg2

        from backend.db.engine import libpq_url

        self._conn = psycopg2.connect(libpq_url(database_url))
        try:
            with _sent(self._saw):
                yield
        finally:
            self._conn.close()

    @pytest.fixture(autouse=True)
    def _statement_test(self, request: pytest.FixtureRequest) -> None:
        self._test = request.node.nodeid

    def _saw(self, sql: str, params: dict[str, Any]) -> None:
        found = self.statements.get(sql)
        if found is None:
            found = self.statements[sql] = Statement(sql, self._test)
            try:
                found.planned_ms = planning_times(self._conn, sql, params, self.runs)
            except Exception as error:
                found.error = type(error).__name__
                self._conn.rollback()
        found.sent += 1

    def report(self, top: int = 5) -> str:
        rows = list(self.statements.values())
        planned = [s for s in rows if s.planned_ms]
        lines = [
            f"{len(rows)} distinct statements, {sum(s.sent for s in rows)} sent; "
            f"{len(planned)} planned, each {self.runs} times (median, min, max)",
            "",
            f"The {top} largest:",
            "",
            "| bytes | planning | first seen in | statement |",
            "|---|---|---|---|",
        ]
        for s in sorted(rows, key=lambda s: -s.size)[:top]:
            lines.append(f"| {s.size:,} | {s.planning} | {s.first_seen} | `{_head(s.sql)}` |")
        lines += [
            "",
            f"The {top} slowest to plan:",
            "",
            "| bytes | planning | first seen in | statement |",
            "|---|---|---|---|",
        ]
        by_time = sorted(planned, key=lambda s: -statistics.median(s.planned_ms))[:top]
        for s in by_time:
            lines.append(f"| {s.size:,} | {s.planning} | {s.first_seen} | `{_head(s.sql)}` |")
        over = [s for s in rows if s.size > LIMIT]
        lines += ["", f"Over {LIMIT:,} bytes: {len(over)}"]
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        return {
            s.first_seen + " " + _head(s.sql): {"bytes": s.size, "planning_ms": s.planned_ms}
            for s in sorted(self.statements.values(), key=lambda s: -s.size)
        }


def _head(sql: str, width: int = 60) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def main(argv: list[str]) -> int:
    """`[--runs N] [--json] [pytest arguments]`: the tests to run (`DEFAULT_TESTS`), each new
    statement planned N times (`PLANNING_RUNS`); `--json` prints every statement's figures."""
    runs, show_json, args = PLANNING_RUNS, False, []
    rest = iter(argv)
    for arg in rest:
        if arg == "--runs":
            runs = int(next(rest))
        elif arg == "--json":
            show_json = True
        else:
            args.append(arg)
    recorder = Recorder(runs)
    code = pytest.main(
        ["-q", "-p", "no:cacheprovider", *(args or DEFAULT_TESTS)], plugins=[recorder]
    )
    print()
    print(recorder.report())
    if show_json:
        print(json.dumps(recorder.summary(), indent=1))
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
