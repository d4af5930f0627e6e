"""Issue 89's import and export targets against a running API: `python -m scripts.bench.imports`.

One fresh database, the API in production mode (one worker, rate limiting on, as `run.py`
starts it). A bystander (`user-1`, 1,000 tasks of its own) is read by wrk's `get` scenario
(`--connections`, `--seconds`) three times: alone (the baseline), while `--tasks` tasks
arrive from a Todoist backup (`importer`), and while the same tasks arrive again from our own
archive (the importer's export, into `archiver`). Reported per import: the dry run's seconds,
the import's (from the 202 to `done`, polled every 0.1 s) and the bystander's p99 beside the
baseline's (the ratio: the issue's bound is 2x); and the export between them (its first byte,
seconds, tasks a second, the server's RSS growth). Targets (issue 89): import <= 30 s, dry run
<= 5 s, p99 ratio <= 2. The export's own, at 100,000 tasks: `python -m scripts.bench.export`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import secrets
import tempfile
import threading
import time
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import create_engine, text

from backend.auth.tokens import issue_token
from backend.db.engine import normalize_url
from scripts.bench import seed, servers, wrk
from scripts.bench.reminders import _worker
from scripts.bench.shared import INSERT_USERS
from scripts.bench.workload import TOKEN_LIFETIME, settings_for, write_data

DATABASE = "task_api_bench_imports"
BYSTANDER, IMPORTER, ARCHIVER = "user-1", "user-2", "user-3"
TODOIST_HEADER = [
    *("TYPE", "CONTENT", "DESCRIPTION", "PRIORITY", "INDENT", "AUTHOR", "RESPONSIBLE", "DATE"),
    *("DATE_LANG", "TIMEZONE", "DURATION", "DURATION_UNIT", "DEADLINE", "DEADLINE_LANG"),
]
PROJECT_TASKS = 1000
ZONE, FILL = "Asia/Kathmandu", ("", "", "", "")
# What a Todoist row's DATE says, in turn: a day, a floating time, a series, none.
DATES = ("2027-01-{day:02d}", "2027-02-{day:02d} 15:30", "every monday", "every! 3 days", "")


def todoist_backup(tasks: int) -> bytes:
    """A Todoist backup zip of `tasks` tasks: projects of 1,000 rows, a section every 100
    tasks, every fifth task a subtask of the one above, a note on every twentieth."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        made, project = 0, 0
        while made < tasks:
            project += 1
            rows = io.StringIO()
            writer = csv.writer(rows, lineterminator="\r\n")
            writer.writerow(TODOIST_HEADER)
            writer.writerow(["meta", "view_style=list"] + [""] * 12)
            for n in range(min(PROJECT_TASKS, tasks - made)):
                if n % 100 == 0:
                    writer.writerow(["section", f"Part {n // 100}"] + [""] * 12)
                date = DATES[n % len(DATES)].format(day=n % 28 + 1)
                content = f"Task {made + n} of project {project} @bench @p{n % 3}"
                indent = "2" if n % 5 == 4 else "1"
                writer.writerow(
                    [
                        "task",
                        content,
                        f"Notes {n}",
                        str(n % 4 + 1),
                        indent,
                        "",
                        "",
                        date,
                        "en",
                        ZONE,
                        *FILL,
                    ]
                )
                if n % 20 == 0:
                    writer.writerow(["note", f"Comment on {n}"] + [""] * 12)
            made += min(PROJECT_TASKS, tasks - made)
            archive.writestr(f"Project {project} [{6000000000 + project}].csv", rows.getvalue())
    return out.getvalue()


def _seed_bystander(url: str) -> list[list[int]]:
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(INSERT_USERS, {"users": [BYSTANDER, IMPORTER, ARCHIVER]})
        ids = conn.execute(
            text(
                "INSERT INTO tasks (user_id, title, tags) SELECT :u, 'Mine ' || g, '{bench}' "
                "FROM generate_series(1, 1000) AS g RETURNING id"
            ),
            {"u": BYSTANDER},
        ).scalars()
        pairs = [[1, int(i)] for i in ids]
    engine.dispose()
    return pairs


class Rss:
    """The server process's resident set, sampled every 50 ms while running."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = self.start = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> Rss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _import(
    client: httpx.Client, token: str, name: str, data: bytes, source: str, dry_run: bool
) -> httpx.Response:
    return client.post(
        "/api/imports",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": (name, data, "application/octet-stream")},
        data={"source": source, "dry_run": "true" if dry_run else "false"},
        timeout=120,
    )


def _timed_import(
    client: httpx.Client, token: str, name: str, data: bytes, source: str, load: Any
) -> dict[str, Any]:
    started = time.monotonic()
    dry = _import(client, token, name, data, source, dry_run=True)
    dry_seconds = time.monotonic() - started
    if dry.status_code != 200:
        raise RuntimeError(f"dry run: {dry.status_code} {dry.text[:500]}")
    result: dict[str, Any] = {"dry_run_seconds": round(dry_seconds, 2)}
    result["dry_run_counts"] = dry.json()["data"]["counts"]
    waiting = threading.Thread(target=load, daemon=True)
    waiting.start()
    started = time.monotonic()
    answer = _import(client, token, name, data, source, dry_run=False)
    if answer.status_code != 202:
        raise RuntimeError(f"import: {answer.status_code} {answer.text[:500]}")
    location = answer.headers["Location"]
    while True:
        state = client.get(location, headers={"Authorization": f"Bearer {token}"}).json()["data"]
        if state["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    result["import_seconds"] = round(time.monotonic() - started, 2)
    result["state"] = state["state"]
    result["counts"] = state["counts"]
    result["error"] = state["error"]
    waiting.join()
    return result


def _export(client: httpx.Client, token: str, pid: int) -> tuple[bytes, dict[str, Any]]:
    body = io.BytesIO()
    with Rss(pid) as rss:
        started = time.monotonic()
        first = None
        with client.stream(
            "GET", "/api/export", headers={"Authorization": f"Bearer {token}"}, timeout=600
        ) as response:
            if response.status_code != 200:
                raise RuntimeError(f"export: {response.status_code} {response.read()[:500]!r}")
            for chunk in response.iter_bytes():
                if first is None:
                    first = time.monotonic() - started
                body.write(chunk)
        seconds = time.monotonic() - started
    with zipfile.ZipFile(body) as archive:
        counts = json.loads(archive.read("manifest.json"))["counts"]
    return body.getvalue(), {
        "first_byte_seconds": round(first or seconds, 3),
        "seconds": round(seconds, 2),
        "tasks": counts["tasks"],
        "tasks_per_second": round(counts["tasks"] / seconds),
        "rss_growth_mib": round((rss.peak - rss.start) / 2**20, 1),
        "bytes": body.tell(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks a file imports")
    parser.add_argument("--connections", type=int, default=4, help="the bystander's wrk")
    parser.add_argument("--seconds", type=float, default=20.0, help="each wrk run")
    parser.add_argument(
        "--runner",
        choices=("worker", "api"),
        default="worker",
        help="where imports run: a worker process beside the API (production's default), or "
        "a thread of the API process (IMPORT_RUNNER_IN_API=true, as under serve --dev)",
    )
    parser.add_argument("--out", type=Path, default=Path(".data/bench/imports.json"))
    args = parser.parse_args(argv)

    url = seed.fresh_database(seed.server_url(), DATABASE)
    pairs = _seed_bystander(url)
    secret = secrets.token_urlsafe(48)
    settings = settings_for(secret, url)
    token = {
        user: issue_token(user, settings, expires_in=TOKEN_LIFETIME, token_version=0)
        for user in (BYSTANDER, IMPORTER, ARCHIVER)
    }
    results: dict[str, Any] = {
        "tasks": args.tasks,
        "connections": args.connections,
        "runner": args.runner,
    }
    in_api = {"IMPORT_RUNNER_IN_API": "true" if args.runner == "api" else "false"}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(Path(tmp) / "data.lua", [token[BYSTANDER]], pairs)

        def load(into: str) -> Any:
            def run() -> None:
                results[into] = wrk.run(
                    "get", api.url, connections=args.connections, seconds=args.seconds, data=data
                ).to_dict()

            return run

        with ExitStack() as stack:
            api = stack.enter_context(
                servers.start(
                    "api",
                    workers=1,
                    database_url=url,
                    secret=secret,
                    log_dir=Path(tmp),
                    extra_env=in_api,
                )
            )
            if args.runner == "worker":
                env = {**servers.RATE_LIMIT_ENV, "ENVIRONMENT": "production"}
                env["WORKER_METRICS_PORT"] = "0"
                stack.enter_context(_worker(url, secret, env, Path(tmp) / "worker.log"))
            client = stack.enter_context(httpx.Client(base_url=api.url))
            load("baseline")()
            backup = todoist_backup(args.tasks)
            results["todoist"] = _timed_import(
                client,
                token[IMPORTER],
                "todoist-backup.zip",
                backup,
                "todoist",
                load("bystander_during_todoist"),
            )
            archive, exported = _export(client, token[IMPORTER], api.process.pid)
            results["export_of_import"] = exported
            results["task_api"] = _timed_import(
                client,
                token[ARCHIVER],
                "tasks-export.zip",
                archive,
                "task-api",
                load("bystander_during_task_api"),
            )
    base = results["baseline"]["p99_ms"]
    for during in ("bystander_during_todoist", "bystander_during_task_api"):
        results[during]["p99_ratio"] = round(results[during]["p99_ms"] / base, 2) if base else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
