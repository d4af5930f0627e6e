"""Receivers that never answer or trickle their answer, beside healthy ones (issue 82's
targets), through the worker's loop (`Worker.run`, as `python -m backend worker` runs it):

- while a bad receiver holds a request open, no connection checked out of the worker's pool
  and no transaction of its sessions lasts from the request's arrival to its end; for
  webhooks (the loop waits for its batch's sends holding nothing) none is checked out and no
  worker session is idle in a transaction at its arrival; no thread but the loop's (and the
  import runner's, looking for queued imports) ever checks one out (the sending threads,
  webhooks' and pushes' alike, never do);
- each bad receiver's deliveries are tried exactly `EVENT_MAX_ATTEMPTS` times, then dead;
- the healthy receivers get each of theirs once.

A request's arrival is sampled only if it was still open after the sample (the sender had not
given up yet): what is asserted never depends on how fast the machine is.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from backend.config import Settings, WebhookTarget
from backend.db.engine import create_db_engine
from backend.events.notify import topic
from backend.main import create_app
from scripts.bench.reminder_peers import Browser, Inbox, PushReceiver
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
from tests.reminders.test_push_delivery import subscribe, task_with_reminder

TASKS = 5
SLOW_ENDPOINTS = 16

# The worker's import runner (backend/transfer/runner.py) looks for queued imports on a thread
# of its own: its statements, never a send's.
IMPORTS = "imports"


def _open(sock: socket.socket) -> bool:
    """The peer has not closed its side (it sends nothing more after its request)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


_TRANSACTIONS = text(
    "SELECT pid, xact_start, state FROM pg_stat_activity "
    "WHERE pid = ANY(:worker) AND xact_start IS NOT NULL"
)


@dataclass
class Seen:
    """One request, from its arrival (the sender was in it) to its end (the sender gone)."""

    checked_out: int  # connections checked out of the worker's pool at its arrival
    idle_in_transaction: int  # worker sessions idle in a transaction at its arrival
    checkouts: set[int]  # the checkouts then (numbered), and the transactions then:
    transactions: set[tuple[int, Any]]
    spanning: set[Any] = field(default_factory=set)  # those of them still there at its end


@dataclass
class Watch:
    """What the worker holds while a bad receiver has a request of it open."""

    observer: Engine  # the test's own engine: not the worker's
    worker: Engine
    seen: list[Seen] = field(default_factory=list)  # requests sampled while open
    threads: set[str] = field(default_factory=set)  # threads that checked a connection out
    sessions: list[int] = field(default_factory=list)  # the worker's backends
    lock: threading.Lock = field(default_factory=threading.Lock)
    _live: dict[int, int] = field(default_factory=dict)  # connection record -> checkout number
    _count: int = 0

    def __post_init__(self) -> None:
        def connect(dbapi_connection: Any, _: Any) -> None:
            with self.lock:
                self.sessions.append(dbapi_connection.get_backend_pid())

        def checkout(_: Any, record: Any, __: Any) -> None:
            with self.lock:
                self.threads.add(threading.current_thread().name)
                self._count += 1
                self._live[id(record)] = self._count

        def checkin(_: Any, record: Any) -> None:
            with self.lock:
                self._live.pop(id(record), None)

        event.listen(self.worker, "connect", connect)
        event.listen(self.worker, "checkout", checkout)
        event.listen(self.worker, "checkin", checkin)

    def _transactions(self) -> list[Any]:
        with self.observer.connect() as conn:
            return list(conn.execute(_TRANSACTIONS, {"worker": list(self.sessions)}))

    def arrived(self, sock: socket.socket) -> Seen | None:
        """At a request's arrival; None when the sender had already gone by the end of it."""
        with self.lock:
            checked_out, live = len(self._live), set(self._live.values())
        rows = self._transactions()
        seen = Seen(
            checked_out,
            sum(row.state.startswith("idle in transaction") for row in rows),
            live,
            {(row.pid, row.xact_start) for row in rows},
        )
        return seen if _open(sock) else None

    def ended(self, seen: Seen | None) -> None:
        """At the request's end: what was held at its arrival and still is spanned it."""
        if seen is None:
            return
        with self.lock:
            live = set(self._live.values())
        now = {(row.pid, row.xact_start) for row in self._transactions()}
        seen.spanning = (seen.checkouts & live) | (seen.transactions & now)
        with self.lock:
            self.seen.append(seen)


class Stall:
    """Accepts, reads the request, never answers (until the sender hangs up)."""

    def __init__(self, watch: Watch) -> None:
        self.watch, self.requests = watch, 0
        self.open = self.most_open = 0  # requests held now, and at most at once
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/stall"
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            with self._lock:
                self.requests += 1
                self.open += 1
                self.most_open = max(self.most_open, self.open)
            seen = self.watch.arrived(conn)
            while conn.recv(65536):  # until the sender gives up
                pass
            self.watch.ended(seen)
            with self._lock:
                self.open -= 1

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


class Trickle:
    """Answers every POST a header byte every 0.1 s (each read quick, the answer endless)
    until the sender hangs up; counts the requests by path."""

    def __init__(self, watch: Watch) -> None:
        self.paths: dict[str, int] = {}
        self.open = self.most_open = self.ended = 0  # requests held now, at most, ended
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with watch.lock:
                    state.paths[self.path] = state.paths.get(self.path, 0) + 1
                    state.open += 1
                    state.most_open = max(state.most_open, state.open)
                seen = watch.arrived(self.connection)
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nx-slow: ")
                    for _ in range(300):  # 30 s at most: far past any deadline here
                        self.wfile.flush()
                        time.sleep(0.1)
                        if not _open(self.connection):
                            break
                        self.wfile.write(b"z")
                except OSError:
                    pass
                watch.ended(seen)
                with watch.lock:
                    state.open -= 1
                    state.ended += 1
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def requests(self) -> int:
        return sum(self.paths.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def worker_engine(database_url: str, settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(database_url, settings)
    yield engine
    engine.dispose()


@pytest.fixture
def watch(db_engine: Engine, worker_engine: Engine) -> Watch:
    return Watch(db_engine, worker_engine)


@pytest.fixture
def stall(watch: Watch) -> Iterator[Stall]:
    server = Stall(watch)
    yield server
    server.close()


@pytest.fixture
def trickle(watch: Watch) -> Iterator[Trickle]:
    server = Trickle(watch)
    yield server
    server.close()


def _run(engine: Engine, settings: Settings, done: Any, timeout: float = 90) -> str:
    """The worker's loop in a thread of its own until `done()`; returns that thread's name."""
    worker = make_worker(engine, settings)
    stop = threading.Event()
    loop = threading.Thread(target=worker.run, args=(stop,), name="the-loop", daemon=True)
    loop.start()
    try:
        until(done, timeout, "the deliveries' end")
    finally:
        stop.set()
        loop.join(60)
        worker.close()
    assert not loop.is_alive()
    return loop.name


def test_a_stalled_and_a_trickling_webhook_beside_two_healthy_ones(
    db_engine: Engine,
    worker_engine: Engine,
    settings: Settings,
    receiver: Receiver,
    watch: Watch,
    stall: Stall,
    trickle: Trickle,
    alice: Account,
) -> None:
    healthy = [f"{receiver.url}/hook/a", f"{receiver.url}/hook/b"]
    bad = [stall.url, f"{trickle.origin}/trickle"]
    chosen = delivery_settings(
        settings,
        receiver,
        dapr_http_endpoint=None,
        # The bad ones first: the healthy ones are tried all the same.
        event_webhooks=[WebhookTarget(url=u, secret=SECRET) for u in bad + healthy],
        event_delivery_timeout_seconds=2,
        event_max_attempts=2,
    )
    add_tasks(db_engine, alice.id, TASKS)
    loop = _run(worker_engine, chosen, lambda: event_states(db_engine) == {"dead": TASKS})
    # Every bad delivery tried twice (the bound), then dead; the healthy ones got each once.
    assert (stall.requests, trickle.requests) == (2 * TASKS, 2 * TASKS)
    for url in healthy:
        got = receiver.by_path(url.removeprefix(receiver.url))
        assert len({h.headers["webhook-id"] for h in got}) == len(got) == TASKS
    with db_engine.connect() as conn:
        rows = conn.execute(text("SELECT attempts, delivered_to FROM task_events")).all()
    assert {(r.attempts, tuple(sorted(r.delivered_to))) for r in rows} == {(2, tuple(healthy))}
    # Nothing checked out of the worker's pool and no worker transaction from a request's
    # arrival to its end (the loop's short record-and-lease transactions run beside the
    # sends in flight, never across one); only the loop's thread ever checked out.
    assert len(watch.seen) >= TASKS, watch.seen
    assert not any(s.spanning for s in watch.seen), watch.seen
    assert watch.threads <= {loop, IMPORTS}


def test_a_batchs_sends_run_at_once_past_ten_connections(
    db_engine: Engine,
    worker_engine: Engine,
    settings: Settings,
    receiver: Receiver,
    stall: Stall,
    alice: Account,
) -> None:
    """16 events, each first sent to a receiver that never answers: all 16 calls are open
    at once (the worker's 32 delivery threads each get a connection; httpcore's default pool
    of 10 made 6 wait for one), and the healthy receiver still gets every event."""
    count = 16
    chosen = beside_a_stall(
        settings,
        receiver,
        stall.url,
        event_delivery_timeout_seconds=5,
        event_max_attempts=1,
    )
    add_tasks(db_engine, alice.id, count)
    _run(worker_engine, chosen, lambda: event_states(db_engine) == {"dead": count})
    assert (stall.requests, stall.most_open) == (count, count)
    assert len(receiver.by_path("/hook")) == count


@pytest.fixture(scope="module")
def push_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "push_allow_loopback": True,
            "push_timeout_seconds": 3.0,
            "event_retry_base_seconds": 0.01,
            "event_retry_max_seconds": 0.02,
            "event_max_attempts": 2,
            "worker_poll_seconds": 0.1,
            "worker_metrics_port": 0,
        }
    )


@pytest.fixture(scope="module")
def push_client(push_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(push_settings)) as client:
        yield client


def test_sixteen_slow_push_endpoints_beside_a_healthy_one(
    db_engine: Engine,
    worker_engine: Engine,
    push_settings: Settings,
    push_client: TestClient,
    watch: Watch,
    trickle: Trickle,
    alice: Account,
    bob: Account,
) -> None:
    key = push_client.get("/api/push/public-key").json()["data"]["public_key"]
    for n in range(SLOW_ENDPOINTS):
        made = push_client.post(
            "/api/push-subscriptions",
            json=Browser().subscription(f"{trickle.origin}/slow/{n}"),
            headers=bob.headers,
        )
        assert made.status_code == 201, made.text
    task_with_reminder(push_client, bob, "Slow")
    with PushReceiver(key, {}) as healthy:
        subscribe(push_client, alice, healthy, "/push/alice")
        for n in range(2):
            task_with_reminder(push_client, alice, f"Healthy {n}")
        with db_engine.begin() as conn:
            conn.execute(text("UPDATE task_reminders SET remind_at = now() - interval '1 s'"))

        def done() -> bool:
            with db_engine.connect() as conn:
                left = conn.execute(
                    text("SELECT count(*) FROM reminder_deliveries WHERE state = 'pending'")
                ).scalar_one()
            return left == 0 and len(healthy.received) >= 2

        loop = _run(worker_engine, push_settings, done)
    # Alice's two reminders reached her (a push the loaded machine took past its deadline to
    # answer may come again: with its Topic); each slow endpoint was tried twice (the bound),
    # then its delivery is dead.
    topics = {(r.payload["title"], r.headers["topic"]) for r in healthy.received}
    assert sorted(title for title, _ in topics) == ["Healthy 0", "Healthy 1"]
    assert healthy.refused == []
    assert trickle.paths == {f"/slow/{n}": 2 for n in range(SLOW_ENDPOINTS)}
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT user_id, state, attempts, event_id FROM reminder_deliveries")
        ).all()
    assert len(rows) == SLOW_ENDPOINTS
    assert {(r.user_id, r.state, r.attempts) for r in rows} == {(bob.id, "dead", 2)}
    assert len({topic(r.event_id) for r in rows}) == 1  # one reminder, one Topic
    # The loop does not wait for its pushes: its own short statements (the next lease, the
    # outbox) run while they are out. But no connection checked out and no transaction open
    # at a slow push's arrival was still there at its end, and the sending threads never
    # checked a connection out.
    assert len(watch.seen) >= SLOW_ENDPOINTS, watch.seen
    assert not any(s.spanning for s in watch.seen), watch.seen
    assert watch.threads <= {loop, IMPORTS}


def _slow_push_service(client: TestClient, who: Account, trickle: Trickle) -> int:
    """`SLOW_ENDPOINTS` of `who`'s subscriptions at the trickling push service and a task
    reminding `who` (not due yet); returns the task's id."""
    for n in range(SLOW_ENDPOINTS):
        made = client.post(
            "/api/push-subscriptions",
            json=Browser().subscription(f"{trickle.origin}/slow/{n}"),
            headers=who.headers,
        )
        assert made.status_code == 201, made.text
    return int(task_with_reminder(client, who, "Slow")["id"])


def _due(engine: Engine, task_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE task_reminders SET remind_at = now() - interval '1 s' WHERE task_id = :t"),
            {"t": task_id},
        )


def test_a_slow_push_service_holds_half_the_window_and_another_persons_push_goes_meanwhile(
    db_engine: Engine,
    worker_engine: Engine,
    push_settings: Settings,
    push_client: TestClient,
    watch: Watch,
    trickle: Trickle,
    alice: Account,
    bob: Account,
) -> None:
    """`EVENT_BATCH_SIZE=16` and 16 of bob's endpoints at one push service trickling their
    answers (issue 90): the service gets at most half the window at once, never all of it,
    and alice's reminder, due while they are all still open, reaches her, push and email,
    before any of them can end (half their deadline, `PUSH_TIMEOUT_SECONDS`: a bound no load
    comes near; a window the service filled could not lease hers before its calls' end)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = int(probe.getsockname()[1])
    chosen = push_settings.model_copy(
        update={
            "event_batch_size": 16,
            "push_timeout_seconds": 16.0,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_security": "none",
            "smtp_from": "Tasks <reminders@example.com>",
            "public_url": "https://tasks.example.com",
        }
    )
    key = push_client.get("/api/push/public-key").json()["data"]["public_key"]
    slow = _slow_push_service(push_client, bob, trickle)
    inbox = Inbox()
    mail = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    mail.start()
    with PushReceiver(key, {}) as healthy:
        subscribe(push_client, alice, healthy, "/push/alice")
        with db_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO notification_settings "
                    "(user_id, email, email_address, email_confirmed_at) "
                    "VALUES (:u, true, 'alice@example.com', now())"
                ),
                {"u": alice.id},
            )
        hers = int(task_with_reminder(push_client, alice, "Healthy")["id"])
        _due(db_engine, slow)
        worker = make_worker(worker_engine, chosen)
        stop = threading.Event()
        loop = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        loop.start()
        try:
            until(lambda: trickle.requests > 0, 30, "the slow service's first call")
            _due(db_engine, hers)
            until(
                lambda: len(healthy.received) > 0 and len(inbox.messages) > 0,
                chosen.push_timeout_seconds / 2,
                "alice's push and email while the slow service's calls are open",
            )
            with watch.lock:
                ended = trickle.ended
        finally:
            stop.set()
            loop.join(60)
            worker.close()
            mail.stop()
    assert [r.payload["title"] for r in healthy.received] == ["Healthy"]
    assert [m["Subject"] for m in inbox.messages] == ["Reminder: Healthy"]
    assert ended == 0
    assert trickle.most_open == chosen.event_batch_size // 2


def test_a_push_whose_answer_outlasts_its_deadline_is_sent_at_most_max_attempts_times(
    db_engine: Engine,
    worker_engine: Engine,
    push_settings: Settings,
    push_client: TestClient,
    trickle: Trickle,
    bob: Account,
) -> None:
    """Pushes cut at their deadline (`PUSH_TIMEOUT_SECONDS` = `SMTP_TIMEOUT_SECONDS`, so the
    lease was no longer than a push's deadline): each row is sent `EVENT_MAX_ATTEMPTS` times,
    then dead, never once more (issue 90: 3 sends with 2, left pending)."""
    chosen = push_settings.model_copy(
        update={"event_batch_size": 16, "push_timeout_seconds": 2.0, "smtp_timeout_seconds": 2.0}
    )
    _due(db_engine, _slow_push_service(push_client, bob, trickle))

    def settled() -> bool:
        with db_engine.connect() as conn:
            dead = conn.execute(
                text("SELECT count(*) FROM reminder_deliveries WHERE state = 'dead'")
            ).scalar_one()
        # Or a row sent once more than its attempts: what this test is about.
        return dead == SLOW_ENDPOINTS or trickle.requests > SLOW_ENDPOINTS * 2

    _run(worker_engine, chosen, settled)
    with db_engine.connect() as conn:
        rows = conn.execute(text("SELECT state, attempts FROM reminder_deliveries")).all()
    assert trickle.paths == {f"/slow/{n}": 2 for n in range(SLOW_ENDPOINTS)}, rows
    assert sorted((r.state, r.attempts) for r in rows) == [("dead", 2)] * SLOW_ENDPOINTS
