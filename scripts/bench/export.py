"""Issue 89's export target ("Export of 100,000 tasks streamed: first byte within 2 s, server
memory up by at most 100 MiB, at least 5,000 tasks a second"), against a running server:

    python -m scripts.bench.export [--tasks 100000] [--reuse]

One account (`exporter`) gets `--tasks` tasks straight through the migrations' schema
(INSERT ... SELECT generate_series: the triggers fire as for any insert): a tenth of them
subtasks, four lists, a tenth of the tasks due (in three zones, some weekly series), a
comment on every fifth. The API is started as the benchmark starts it (`serve`, production
settings, one worker), then `GET /api/export` is read to its end while the server process's
`VmRSS` is sampled from /proc every 50 ms. Printed: time to the first byte, the whole time,
tasks a second, tasks a second of the server's CPU (the figure a shared machine disturbs
least), the archive's size, and the server's RSS before, its peak during and `VmHWM`. The
archive is checked after (`tasks.jsonl` holds every task, the manifest counts them)."""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.db.engine import libpq_url, normalize_url
from scripts.bench import servers
from scripts.bench.seed import fresh_database, server_url

USER = "exporter"
LISTS = 4

_SEED = (
    "INSERT INTO users (id, email) VALUES (:user, 'exporter@example.com')",
    "INSERT INTO task_lists (user_id, name, name_key, position) "
    "SELECT :user, 'List ' || n, 'list ' || n, n * 65536 FROM generate_series(1, :lists) AS n",
    # The top-level tasks: every fifth in no list; a tenth due, in three zones; a tenth of
    # those a weekly series (open ones only).
    "INSERT INTO tasks (user_id, title, description, list_id, due_date, time_zone, recurrence, "
    "series_id, series_start, tags, priority, position, completed, completed_at) "
    "SELECT :user, 'Task ' || n, 'Notes for task ' || n || ': ' || md5(n::text), "
    "CASE WHEN n % 5 = 0 THEN NULL ELSE (SELECT id FROM task_lists WHERE user_id = :user "
    "ORDER BY id OFFSET n % :lists LIMIT 1) END, "
    "CASE WHEN n % 10 = 0 THEN date_trunc('hour', now()) + n * interval '7 minutes' END, "
    "(ARRAY['Europe/Berlin', 'America/New_York', 'UTC'])[n % 3 + 1], "
    "CASE WHEN n % 300 = 10 THEN 'FREQ=WEEKLY' END, "
    "CASE WHEN n % 300 = 10 THEN gen_random_uuid() END, "
    "CASE WHEN n % 300 = 10 THEN date_trunc('hour', now()) + n * interval '7 minutes' END, "
    "ARRAY['tag' || n % 7], "
    "CAST((ARRAY['none', 'low', 'medium', 'high'])[n % 4 + 1] AS task_priority), "
    "n::bigint * 65536, n % 3 = 0, CASE WHEN n % 3 = 0 THEN now() END "
    "FROM generate_series(1, :top) AS n",
    # A tenth: subtasks of the first top-level tasks, in their parents' lists.
    "INSERT INTO tasks (user_id, title, list_id, parent_id, position) "
    "SELECT user_id, 'Step of ' || title, list_id, id, 65536 FROM tasks "
    "WHERE user_id = :user AND parent_id IS NULL ORDER BY id LIMIT :subtasks",
    "INSERT INTO task_comments (user_id, task_id, list_id, author_id, body) "
    "SELECT user_id, id, list_id, user_id, 'A comment on ' || title FROM tasks "
    "WHERE user_id = :user AND id % 5 = 0",
    "ANALYZE",
)


def seed(server: str, tasks: int, *, reuse: bool) -> str:
    name = f"task_api_bench_export_{tasks}t"
    url = make_url(libpq_url(server)).set(database=name).render_as_string(hide_password=False)
    if reuse:
        engine = create_engine(normalize_url(url))
        try:
            with engine.connect() as conn:
                have = conn.execute(
                    text("SELECT count(*) FROM tasks WHERE user_id = :u"), {"u": USER}
                ).scalar_one()
            if have == tasks:
                return url
        except OperationalError:
            print(f"no database {name} yet: seeding it")
        finally:
            engine.dispose()
    fresh_database(server, name)
    engine = create_engine(normalize_url(url))
    started = time.monotonic()
    values = {"user": USER, "lists": LISTS, "top": tasks - tasks // 10, "subtasks": tasks // 10}
    with engine.begin() as conn:
        for statement in _SEED:
            conn.execute(text(statement), values)
    engine.dispose()
    print(f"seeded {tasks} tasks in {time.monotonic() - started:.1f} s")
    return url


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, pid: int, token: str, out: Path) -> dict[str, float]:
    before = _status(pid)
    cpu_before = _cpu_seconds(pid)
    peak = [before["VmRSS"]]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak.append(_status(pid)["VmRSS"])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    size = 0
    started = time.monotonic()
    first = None
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=url, timeout=600) as client,
        client.stream("GET", "/api/export", headers=headers) as answer,
        out.open("wb") as file,
    ):
        answer.raise_for_status()
        for chunk in answer.iter_raw():
            if first is None and chunk:
                first = time.monotonic() - started
            size += len(chunk)
            file.write(chunk)
    total = time.monotonic() - started
    done.set()
    sampler.join()
    after = _status(pid)
    cpu = _cpu_seconds(pid) - cpu_before
    return {
        "cpu_s": cpu,
        "first_byte_s": first or total,
        "total_s": total,
        "bytes": size,
        "rss_before_mib": before["VmRSS"] / 2**20,
        "rss_peak_mib": max(peak) / 2**20,
        "hwm_before_mib": before["VmHWM"] / 2**20,
        "hwm_after_mib": after["VmHWM"] / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded before")
    args = parser.parse_args()
    url = seed(server_url(), args.tasks, reuse=args.reuse)
    secret = secrets.token_urlsafe(48)
    settings = Settings(_env_file=None, jwt_secret=secret, database_url=url)  # type: ignore[call-arg]
    token = issue_token(USER, settings, expires_in=3600, token_version=0)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    extra = {"ATTACHMENTS_DIR": str(work / "files")}
    with servers.start(
        "api", workers=1, database_url=url, secret=secret, log_dir=work, extra_env=extra
    ) as api:
        # Warm: the pool connected, the token seen, the route's modules imported.
        warm = httpx.get(f"{api.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        warm.raise_for_status()
        figures = measure(api.url, api.process.pid, token, work / "export.zip")
    zipped = zipfile.ZipFile(work / "export.zip")
    counts = json.loads(zipped.read("manifest.json"))["counts"]
    with zipped.open("tasks.jsonl") as lines:
        exported = sum(1 for _ in io.TextIOWrapper(lines, encoding="utf-8"))
    if counts["tasks"] != args.tasks or exported != args.tasks:
        raise SystemExit(f"the archive holds {exported} tasks ({counts}), not {args.tasks}")
    rate = args.tasks / figures["total_s"]
    print(f"export of {args.tasks} tasks ({counts}), {figures['bytes'] / 2**20:.1f} MiB zip")
    print(f"  first byte     {figures['first_byte_s']:.3f} s  (target <= 2 s)")
    print(f"  whole archive  {figures['total_s']:.1f} s: {rate:,.0f} tasks/s (target >= 5,000)")
    print(
        f"  server CPU     {figures['cpu_s']:.1f} s: {args.tasks / figures['cpu_s']:,.0f} tasks "
        f"per CPU second (what one free core gives; load average {os.getloadavg()[0]:.1f})"
    )
    growth = figures["rss_peak_mib"] - figures["rss_before_mib"]
    print(
        f"  server RSS     {figures['rss_before_mib']:.1f} MiB before, peak "
        f"{figures['rss_peak_mib']:.1f} MiB during: +{growth:.1f} MiB (target <= 100 MiB); "
        f"VmHWM {figures['hwm_before_mib']:.1f} -> {figures['hwm_after_mib']:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
