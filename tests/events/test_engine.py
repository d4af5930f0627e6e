"""Lease, send, record: a receiver that never answers holds no transaction, no row lock and
no other receiver's events; a receiver's huge answer is read only up to the cap."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, text

from backend.config import Settings, WebhookTarget
from backend.events import bounds
from tests.conftest import Account
from tests.events.conftest import (
    SECRET,
    Receiver,
    add_tasks,
    beside_a_stall,
    delivery_settings,
    event_states,
    make_worker,
    until,
)
from tests.serving import serve_in_thread


class Stall:
    """A webhook receiver that accepts every connection, reads nothing, never answers."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open: list[socket.socket] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/stall"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.open.append(conn)
            self.accepted += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.open:
            conn.close()
        self._sock.close()


@pytest.fixture
def stall() -> Iterator[Stall]:
    server = Stall()
    try:
        yield server
    finally:
        server.close()


def test_a_receiver_that_never_answers_holds_no_transaction_nor_the_others_events(
    db_engine: Engine, settings: Settings, receiver: Receiver, stall: Stall, alice: Account
) -> None:
    count = 5
    add_tasks(db_engine, alice.id, count)
    chosen = beside_a_stall(
        settings,
        receiver,
        stall.url,
        event_delivery_timeout_seconds=2,
        event_max_attempts=2,
    )
    worker = make_worker(db_engine, chosen)
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    running.start()
    try:
        # The stalled receiver holds calls open and the healthy one gets every event all the
        # same. That nothing is held across such a call (no checkout, no transaction from its
        # arrival to its end) is watched in tests/events/test_bad_receivers.py: the loop's
        # own short record-and-lease transactions run beside the sends, so a sample at one
        # instant may catch one.
        until(lambda: stall.accepted >= count, 30, "the stalled receiver's connections")
        assert len(receiver.wait_for(count, "/hook")) == count
        until(lambda: event_states(db_engine) == {"dead": count}, 60, "dead-lettered")
    finally:
        stop.set()
        running.join(60)
        worker.close()
    assert not running.is_alive()
    # Each event tried twice at the stalled receiver (its bound), then dead; the healthy one
    # got each once (it had accepted: not sent again), each by its own event id.
    assert stall.accepted == 2 * count
    hooks = receiver.by_path("/hook")
    assert len({h.headers["webhook-id"] for h in hooks}) == len(hooks) == count
    with db_engine.connect() as conn:
        rows = conn.execute(text("SELECT attempts, delivered_to, last_error FROM task_events"))
        for attempts, delivered_to, error in rows:
            assert attempts == 2 and delivered_to == [f"{receiver.url}/hook"]
            assert "the send's deadline passed" in error
    dead = worker.metrics.registry.get_sample_value(
        "task_events_dead_lettered_total", {"sink": stall.url}
    )
    assert dead == count


class Endless:
    """Answers every POST `status` with a body that never ends; counts the bytes it got out
    before the client hung up."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.written = 0
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(state.status)
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
                try:
                    while True:
                        self.wfile.write(chunk)
                        state.written += 65536
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


@pytest.mark.parametrize("status", [200, 500])
def test_a_huge_answer_is_read_only_up_to_the_cap(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account, status: int
) -> None:
    endless = Endless(status)
    add_tasks(db_engine, alice.id, 1)
    # A deadline no loaded machine reaches: a worker reading the endless body would end
    # there, failed; one that stops at the cap is done at once.
    chosen = delivery_settings(
        settings,
        receiver,
        dapr_http_endpoint=None,
        event_webhooks=[WebhookTarget(url=endless.url, secret=SECRET)],
        event_delivery_timeout_seconds=60,
    )
    worker = make_worker(db_engine, chosen)
    try:
        assert worker.deliver_batch() == 1
        with closing(bounds.HttpClient(60)) as client:  # the cap, as the sinks read an answer
            answer = client.post(endless.url, {}, b"{}")
    finally:
        worker.close()
        endless.close()
    assert (answer.status_code, len(answer.head), answer.cut) == (
        status,
        bounds.ANSWER_MAX_BYTES,
        True,
    )
    with db_engine.connect() as conn:
        state, error = conn.execute(text("SELECT state, last_error FROM task_events")).one()
    if status == 200:
        assert (state, error) == ("delivered", None)
    else:
        assert state == "pending"
        assert error.endswith(f"HTTP 500: {'x' * 200} (answer cut at 4096 bytes)"), error


def test_attempts_backoff_and_dead_letters_are_decided_in_one_place() -> None:
    # One engine for every sink (issue 82): the retry rule is applied by `Lane._settle` alone;
    # the queues only write what it decided, the sinks only classify an answer.
    from pathlib import Path

    import backend.events.engine as engine

    root = Path(engine.__file__).parents[1]
    callers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "next_try(" in path.read_text() or "backoff(" in path.read_text()
    )
    assert callers == ["events/engine.py"], callers
