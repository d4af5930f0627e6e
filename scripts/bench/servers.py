"""Start the API, the API as it was at an earlier commit (`--before REF`), the raw baseline and
the naive app side by side on loopback ports; sample their workers' RSS and CPU time, and
PostgreSQL's CPU time."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
# Rate limiting stays on (one statement per write, as in production) with a limit no run can
# reach: the benchmark measures the cost of the check, not 429s.
RATE_LIMIT_ENV = {
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_TASK_WRITES_PER_USER": "100000000",
    "RATE_LIMIT_TASK_WINDOW_SECONDS": "60",
    "RATE_LIMIT_CALENDAR_FEED_PER_HOUR": "100000000",
}
# The API as in production (backend/config.py): production mode, the JSON access log, and
# Prometheus metrics on (production serves them only with a token, so one is set). Revocation
# is checked on every request whatever the settings.
API_ENV = {
    "ENVIRONMENT": "production",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
    "METRICS_ENABLED": "true",
}
# "before": the API's code at an earlier commit (`python -m scripts.bench --before REF`),
# exported by `export_before` and served by its own `serve` with the same settings.
# "naive": what a FastAPI user would write instead (scripts/bench/naive.py, issue 31).
KINDS = ("api", "before", "baseline", "naive")
# The comparison servers: uvicorn with the same loop and HTTP parser, no access log.
APPS = {"baseline": "scripts.bench.baseline:app", "naive": "scripts.bench.naive:app"}
# What the export of an earlier commit holds: the code and its migrations (serve reads them).
EXPORTED = ("backend", "migrations", "pyproject.toml")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str  # "api", "before", "baseline" or "naive"
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    workers: int
    metrics_token: str | None = None  # the API's, to confirm /metrics is served
    samples: list[tuple[float, dict[int, int]]] = field(default_factory=list)

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that serve requests: uvicorn's children when it runs several
        workers, the server process itself when it runs one."""
        try:
            parent = psutil.Process(self.process.pid)
            children = [
                c
                for c in parent.children(recursive=False)
                # uvicorn's workers are spawned (`multiprocessing.spawn`); the resource
                # tracker spawn may start beside them serves no requests.
                if "resource_tracker" not in " ".join(c.cmdline())
            ]
        except psutil.Error:
            return []
        return children if self.workers > 1 else [parent]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the workers have used so far: per request, a measure of
        cost that other load on a shared machine barely disturbs, unlike requests/s."""
        total = 0.0
        for proc in self.worker_processes():
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> dict[int, int]:
        sizes = {}
        for proc in self.worker_processes():
            try:
                sizes[proc.pid] = proc.memory_info().rss
            except psutil.Error:
                continue
        return sizes


def resolve_ref(ref: str) -> str:
    """`ref` as a short commit id (SystemExit if git does not know it)."""
    found = subprocess.run(
        ["git", "rev-parse", "--short=7", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise SystemExit(f"--before: git does not know {ref!r}: {found.stderr.strip()}")
    return found.stdout.strip()


def export_before(commit: str, work: Path) -> Path:
    """The API's code at `commit` (`git archive`: its backend/ and migrations/), in a folder of
    `work`; its `serve` runs from there, imports from there first (PYTHONPATH) and shares this
    environment's packages."""
    target = work / f"before-{commit}"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, *EXPORTED],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _command(kind: str, port: int, workers: int) -> list[str]:
    if kind in ("api", "before"):
        # The production entry point: uvicorn with its defaults (uvloop and httptools when
        # installed, access log on), behind `serve`'s checks.
        return [
            sys.executable,
            "-m",
            "backend",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        APPS[kind],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
    ]


@contextmanager
def start(
    kind: str,
    *,
    workers: int,
    database_url: str,
    secret: str,
    log_dir: Path,
    code: Path = ROOT,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start `kind` from the code in `code` (an export for "before") and wait until it
    answers; `extra_env` adds or overrides settings."""
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "JWT_SECRET": secret,
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(code),
        **RATE_LIMIT_ENV,
    }
    metrics_token = None
    if kind in ("api", "before"):
        metrics_token = secrets.token_urlsafe(24)
        env.update(API_ENV, METRICS_TOKEN=metrics_token)
    env.update(extra_env or {})
    log = log_dir / f"{kind}-{workers}w.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            _command(kind, port, workers),
            cwd=code,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(kind, f"http://127.0.0.1:{port}", process, log, workers, metrics_token)
    try:
        _wait_ready(server)
        yield server
    finally:
        stop(process)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 90
    while True:
        started = server.log.read_text(errors="replace").count("Application startup complete")
        try:
            answered = httpx.get(f"{server.url}/api/tasks", timeout=2).status_code == 401
        except httpx.TransportError:
            answered = False
        if answered and started >= server.workers:
            return
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{server.name} did not start:\n{server.log.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.3)


def confirm_production_settings(api: Server) -> list[str]:
    """After some requests: the API (or the API before) serves /metrics and writes JSON access
    log lines, so the figures include both (raise RuntimeError otherwise)."""
    headers = {"Authorization": f"Bearer {api.metrics_token}"}
    metrics = httpx.get(f"{api.url}/metrics", headers=headers, timeout=10)
    if metrics.status_code != 200 or "http_request" not in metrics.text:
        raise RuntimeError(f"{api.name} serves no metrics: {metrics.status_code}")
    access = 0
    for line in api.log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and {"method", "route", "status"} <= record.keys():
            access += 1
    if not access:
        raise RuntimeError(f"{api.name} wrote no JSON access log line to {api.log}")
    label = "API" if api.name == "api" else f"API {api.name}"
    return [
        f"{label}: /metrics served (metrics on, behind METRICS_TOKEN)",
        f"{label}: JSON access log on ({access} lines so far)",
    ]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class RssSampler:
    """Samples every worker's RSS in a background thread while a block runs."""

    def __init__(self, servers: list[Server], interval: float = 0.5) -> None:
        self.servers = servers
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for server in self.servers:
                server.samples.append((now, server.rss()))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def peak_rss_mb(server: Server, since: float = 0.0) -> float:
    """The largest RSS any one worker reached (MB) in samples taken after `since`."""
    sizes = [rss for t, sample in server.samples if t >= since for rss in sample.values()]
    return round(max(sizes, default=0) / 2**20, 1)


class PostgresCpu:
    """PostgreSQL's CPU time (user + system) so far, every process of the server: the
    postmaster, its live children (the backends serving the servers' connections, the WAL
    writer, checkpointer, autovacuum) and the children it has reaped (a backend whose
    connection closed during a run is in the postmaster's `children_*` times). Over one timed
    run, when only one server is under load, the difference per request is what a request
    costs the database. Found from `data_directory`'s `postmaster.pid`, so the server must run
    on this machine (the benchmark's embedded one, or a local DATABASE_URL); `None` otherwise."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    @classmethod
    def for_url(cls, database_url: str) -> PostgresCpu:
        from sqlalchemy import create_engine, text

        from backend.db.engine import normalize_url

        engine = create_engine(normalize_url(database_url))
        try:
            with engine.connect() as conn:
                data = str(conn.scalar(text("SELECT current_setting('data_directory')")))
            pid = int((Path(data) / "postmaster.pid").read_text().split()[0])
            psutil.Process(pid).cpu_times()
        except Exception:  # not local, not readable, not permitted: no figure
            pid = None
        finally:
            engine.dispose()
        return cls(pid)

    def cpu_seconds(self) -> float | None:
        if self.pid is None:
            return None
        # A backend that exits between reading the postmaster's reaped-children times and
        # listing its live children would be counted in neither: read again until the reaped
        # times did not move while the children were read.
        for _ in range(20):
            try:
                postmaster = psutil.Process(self.pid)
                before = postmaster.cpu_times()
                live = 0.0
                for child in postmaster.children(recursive=True):
                    try:
                        child_times = child.cpu_times()
                    except psutil.Error:  # exited since: in children_* once reaped
                        continue
                    live += child_times.user + child_times.system
                after = postmaster.cpu_times()
            except psutil.Error:
                return None
            reaped = (before.children_user, before.children_system)
            if reaped == (after.children_user, after.children_system):
                return float(after.user + after.system + sum(reaped) + live)
        return None
