"""A receiver's 600 MiB answer, a webhook's or a push service's, leaves `python -m backend
worker`'s memory where it was idle (issue 82's target): the answer is generated as it is sent
(never stored), the worker reads at most `ANSWER_MAX_BYTES` of it and closes the connection.
Read from /proc: the process's resident set (VmRSS) when idle, and its peak (VmHWM, reset
before the answer) after."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from backend.config import Settings, new_vapid_key
from backend.main import create_app
from scripts.bench.reminder_peers import Browser
from tests.conftest import Account, stop_process
from tests.events.conftest import (
    SECRET,
    Receiver,
    add_tasks,
    event_states,
    start_worker,
    until,
    worker_env,
)
from tests.reminders.test_push_delivery import task_with_reminder
from tests.serving import serve_in_thread

ANSWER_BYTES = 600 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)
# "Within a few MiB": what the worker may grow by while the answer is offered.
GROWTH_MAX_KIB = 4 * 1024


class Huge:
    """Answers 200 with an empty body until `huge` is set, then with ANSWER_BYTES (declared
    in Content-Length, written a MiB at a time until done or the client hangs up)."""

    def __init__(self) -> None:
        self.huge = False
        self.offered = 0  # bytes of huge answers written
        self.posts = 0
        self.lock = threading.Lock()
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with state.lock:
                    state.posts += 1
                size = ANSWER_BYTES if state.huge else 0
                self.send_response(200)
                self.send_header("content-length", str(size))
                self.end_headers()
                try:
                    while size > 0:
                        self.wfile.write(CHUNK)
                        size -= len(CHUNK)
                        with state.lock:
                            state.offered += len(CHUNK)
                except OSError:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        serve_in_thread(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def huge() -> Iterator[Huge]:
    server = Huge()
    yield server
    server.close()


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


@pytest.mark.timeout(180)
def test_a_600_mib_answer_leaves_the_workers_memory_where_it_was(
    db_engine: Engine, database_url: str, receiver: Receiver, huge: Huge, alice: Account
) -> None:
    env = worker_env(
        database_url, receiver, EVENT_WEBHOOKS=json.dumps([{"url": huge.url, "secret": SECRET}])
    )
    del env["DAPR_HTTP_ENDPOINT"]
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    worker = start_worker(env, log)
    try:
        # Warmed up: two deliveries, so what a delivery allocates once (its thread, the
        # client's connection) is in the idle size.
        for n in (1, 2):
            add_tasks(db_engine, alice.id, 1, f"warm {n}")
            until(lambda n=n: event_states(db_engine) == {"delivered": n}, 60, log.read_text())
        idle = _status(worker.pid)
        Path(f"/proc/{worker.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        huge.huge = True
        add_tasks(db_engine, alice.id, 1, "huge")
        until(lambda: event_states(db_engine) == {"delivered": 3}, 60, log.read_text())
        after = _status(worker.pid)
    finally:
        stop_process(worker)
    print(
        f"worker KiB: idle {idle}, after a {ANSWER_BYTES >> 20} MiB answer {after}; "
        f"offered {huge.offered >> 20} MiB"
    )
    # Delivered (a 200 whose body was cut, not read), and the receiver did not get to write it.
    assert huge.offered < ANSWER_BYTES
    assert after["VmHWM"] - idle["VmRSS"] <= GROWTH_MAX_KIB, (idle, after)
    assert after["VmRSS"] - idle["VmRSS"] <= GROWTH_MAX_KIB, (idle, after)
    assert os.path.getsize(log) < 1_000_000


VAPID = new_vapid_key()


@pytest.mark.timeout(180)
def test_a_push_services_600_mib_answer_leaves_the_workers_memory_where_it_was(
    db_engine: Engine,
    database_url: str,
    settings: Settings,
    receiver: Receiver,
    huge: Huge,
    alice: Account,
) -> None:
    pushing = settings.model_copy(
        update={"vapid_private_key": SecretStr(VAPID), "push_allow_loopback": True}
    )
    env = worker_env(database_url, receiver, VAPID_PRIVATE_KEY=VAPID, PUSH_ALLOW_LOOPBACK="true")
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    with TestClient(create_app(pushing)) as client:
        made = client.post(
            "/api/push-subscriptions",
            json=Browser().subscription(huge.url.replace("/hook", "/push/alice")),
            headers=alice.headers,
        )
        assert made.status_code == 201, made.text

        def push(title: str) -> None:
            task_with_reminder(client, alice, title)
            with db_engine.begin() as conn:
                conn.execute(text("UPDATE task_reminders SET remind_at = now() - interval '1 s'"))
            posts = huge.posts
            until(lambda: huge.posts > posts and _left(db_engine) == 0, 60, log.read_text())

        worker = start_worker(env, log)
        try:
            push("warm 1")  # what a push allocates once is in the idle size
            push("warm 2")
            idle = _status(worker.pid)
            Path(f"/proc/{worker.pid}/clear_refs").write_text("5")
            huge.huge = True
            push("huge")
            after = _status(worker.pid)
        finally:
            stop_process(worker)
    print(f"worker KiB: idle {idle}, after a push service's huge answer {after}")
    assert 0 < huge.offered < ANSWER_BYTES
    assert after["VmHWM"] - idle["VmRSS"] <= GROWTH_MAX_KIB, (idle, after)
    assert after["VmRSS"] - idle["VmRSS"] <= GROWTH_MAX_KIB, (idle, after)


def _left(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM reminder_deliveries")).scalar_one())
