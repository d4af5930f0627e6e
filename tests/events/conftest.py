"""A local HTTP receiver standing in for Dapr's sidecar and for a webhook endpoint, and
helpers to run the worker in this process or as `python -m backend worker`."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from backend.config import Settings, WebhookTarget
from backend.events.sinks import configured_sinks
from backend.events.worker import Worker
from tests.conftest import ROOT, TEST_SECRET
from tests.serving import serve_in_thread

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; answers `status` after `delay` seconds, or once `gate` is set (or
    drops the connection when `status` is 0), and 503 to paths under `failing_path`. Paths
    under `trickle_path` get their answer a byte every `trickle` seconds: no single read is
    slow, the whole answer is."""

    status: int = 200
    delay: float = 0.0
    gate: threading.Event | None = None  # set: the calls held at it are answered
    arrived: list[str] = field(default_factory=list)  # every POST's path, on its arrival
    trickle_path: str | None = None
    trickle: float = 0.1  # ten times under httpx's 1 s read timeout in the test, load or not
    failing_path: str | None = None
    received: list[Received] = field(default_factory=list)  # the POSTs it accepted
    attempted: list[Received] = field(default_factory=list)  # every POST, whatever the answer
    connections: int = 0  # accepted and not yet closed
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def by_path(self, prefix: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.startswith(prefix)]

    def settle(self, timeout: float = 30) -> None:
        """Until every connection is closed, so every POST already sent is recorded: a
        sender killed mid-request has still sent what the handler records after its delay."""
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.connections, "the receiver still has open connections"

    def wait_for(self, count: int, prefix: str = "/", timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.by_path(prefix)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.by_path(prefix)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with state.lock:
                state.arrived.append(self.path)
            if state.gate is not None:
                state.gate.wait(60)
            if state.delay:
                time.sleep(state.delay)
            if state.status == 0:
                self.close_connection = True
                return
            failing = state.failing_path is not None and self.path.startswith(state.failing_path)
            status = 503 if failing else state.status
            with state.lock:
                request = Received(self.path, dict(self.headers.items()), body, time.time())
                state.attempted.append(request)
                if 200 <= status < 300:
                    state.received.append(request)
            if state.trickle_path is not None and self.path.startswith(state.trickle_path):
                self.wfile.write(b"HTTP/1.1 200 OK\r\nx-slow: ")
                for _ in range(50):  # 5 s in all: well past a 2 s batch deadline
                    self.wfile.flush()
                    time.sleep(state.trickle)
                    self.wfile.write(b"z")
                self.wfile.write(b"\r\ncontent-length: 0\r\n\r\n")
                return
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                with state.lock:
                    state.connections -= 1

    class CountingServer(ThreadingHTTPServer):
        def process_request(self, request: Any, client_address: Any) -> None:
            with state.lock:  # counted from the accept, before the handler's thread starts
                state.connections += 1
            super().process_request(request, client_address)

    server = CountingServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    serve_in_thread(server)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def delivery_settings(settings: Settings, receiver: Receiver, **overrides: Any) -> Settings:
    """The test settings with both sinks pointing at the receiver (Dapr at its root, the
    webhook at /hook), fast retries and no metrics port."""
    values: dict[str, Any] = {
        "dapr_http_endpoint": receiver.url,
        "event_webhooks": [WebhookTarget(url=f"{receiver.url}/hook", secret=SECRET)],
        "event_retry_base_seconds": 0.05,
        "event_retry_max_seconds": 0.2,
        "event_delivery_timeout_seconds": 2,
        "worker_poll_seconds": 0.1,
        "worker_metrics_port": 0,
        **overrides,
    }
    return Settings.model_validate({**settings.model_dump(), **values})


def beside_a_stall(
    settings: Settings, receiver: Receiver, stalled: str, **overrides: Any
) -> Settings:
    """`delivery_settings` with no Dapr and two webhooks: `stalled` (a receiver that never
    answers) first, the healthy receiver's /hook second, which is tried all the same."""
    webhooks = [
        WebhookTarget(url=stalled, secret=SECRET),
        WebhookTarget(url=f"{receiver.url}/hook", secret=SECRET),
    ]
    return delivery_settings(
        settings, receiver, dapr_http_endpoint=None, event_webhooks=webhooks, **overrides
    )


def make_worker(engine: Engine, settings: Settings) -> Worker:
    return Worker(engine, settings, configured_sinks(settings))


def worker_env(database_url: str, receiver: Receiver, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SECRET,
        "DAPR_HTTP_ENDPOINT": receiver.url,
        "EVENT_WEBHOOKS": json.dumps([{"url": f"{receiver.url}/hook", "secret": SECRET}]),
        "EVENT_RETRY_BASE_SECONDS": "0.05",
        "EVENT_RETRY_MAX_SECONDS": "0.2",
        "WORKER_POLL_SECONDS": "0.1",
        "WORKER_METRICS_PORT": "0",
        **extra,
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "backend", "worker"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def add_tasks(engine: Engine, user_id: str, count: int, title: str = "task") -> list[int]:
    with engine.begin() as conn:
        return list(
            conn.execute(
                text(
                    "INSERT INTO tasks (user_id, title) SELECT :u, :t || ' ' || n "
                    "FROM generate_series(1, :c) AS n RETURNING id"
                ),
                {"u": user_id, "t": title, "c": count},
            ).scalars()
        )


def event_states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM task_events GROUP BY state")).all()
    return {row[0]: row[1] for row in rows}


def until(check: Callable[[], bool], timeout: float = 30, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {message}")
        time.sleep(0.05)
