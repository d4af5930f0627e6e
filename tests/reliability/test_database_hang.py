"""Promise: a database that stops answering never makes a request hang (issue 13, item 3).

Every process of the dedicated PostgreSQL is paused with SIGSTOP, under load, for longer than
the response timeout: the server's kernel still accepts connections and acknowledges every
byte, so neither the server's statement timeout nor TCP can notice. In-flight requests must
get 503 SERVICE_UNAVAILABLE with Retry-After within the response timeout (plus scheduling
slack), new requests must not queue behind them (the breaker answers them at once), the app
must recover by itself once the server resumes, and the database must hold exactly what the
clients were told: every create is keyed and retried until it gets its 201, so a create whose
COMMIT was in flight when its request was answered 503 is returned by the retry, never
stored twice. Run over TCP, over the Unix socket (how the embedded server is reached) and
through PgBouncer in transaction mode.

`test_a_commit_sent_to_a_stuck_server_is_never_applied` pins the subtle part in-process: the
COMMIT reaches the paused server's socket buffer, the client gives up, and when the server
resumes its idle-in-transaction timeout (set per transaction to the response timeout) ends the
session before it reads that COMMIT.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from backend.auth.tokens import TokenClaims
from backend.config import DB_RESPONSE_MARGIN_MS, Settings
from backend.db.engine import create_db_engine
from backend.db.migrations import migrate_up
from backend.db.sender import Sender, transaction_locals
from backend.errors import DatabaseTimeout, DatabaseUnresponsive
from backend.models import TaskCreate
from backend.services.tasks.service import TaskService
from backend.services.unit_of_work import UnitOfWork
from tests.conftest import TEST_SECRET, bearer, make_token, running_server
from tests.reliability.load import Outcome, Recorder
from tests.reliability.servers import DedicatedPostgres, PgBouncer

_DEFAULTS = Settings.model_fields
# A short statement timeout keeps the file quick; the connect timeout stays at its default,
# above the response timeout, so every wait for a connection here relies on the cap (a
# connect timeout of 2 s set below it once hid that the probe waited 10 s against 7 s).
# test_no_wait_for_a_connection_outlasts_the_response_timeout runs every default as shipped.
STATEMENT_TIMEOUT_MS = 1000
RESPONSE_TIMEOUT = (STATEMENT_TIMEOUT_MS + DB_RESPONSE_MARGIN_MS) / 1000  # 3 s
CONNECT_TIMEOUT: int = _DEFAULTS["db_connect_timeout_seconds"].default  # 10 s, above it
# Well past the response timeout (on main every request waited it out), and long enough that
# the breaker's phase (the pause less RESPONSE_TIMEOUT + SLACK) holds 20 requests even when a
# loaded machine takes a second over each: at 8 s its 2.5 s saw 13 in a run under load.
PAUSE = 12.0
# Scheduling slack on 2 busy cores (two workers, six client threads, the server resuming),
# on a machine that may be half as fast as the one the test was written on.
SLACK = 2.5
LATENCY_BOUND = RESPONSE_TIMEOUT + SLACK
# "Answered at once" while the breaker is open: under half the response timeout, which a
# request that waited for the database (a probe, or any request without the breaker) takes
# whole. (0.5 s was seen exceeded by every answer of a run on a loaded machine.)
AT_ONCE = RESPONSE_TIMEOUT / 2
CLIENTS = 6
SERVER_ENV = {
    "DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
    "DB_CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
    "DB_POOL_TIMEOUT_SECONDS": "2",
    "DB_POOL_SIZE": "5",
    "AUTO_MIGRATE": "false",
    # Each load client writes hundreds of times a minute: 429s would hide what these tests
    # watch (the answers while the database is paused). Every other server test runs with
    # the production default, limits on.
    "RATE_LIMIT_ENABLED": "false",
}
assert CONNECT_TIMEOUT > RESPONSE_TIMEOUT, "the connect timeout must rely on the cap"


@dataclass
class KeyedCreate:
    title: str
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_id: int | None = None


def _client(
    base_url: str,
    user: str,
    recorder: Recorder,
    creates: list[KeyedCreate],
    stop: threading.Event,
    give_up_at: float,
) -> None:
    headers = bearer(make_token(sub=user, lifetime=3600))
    with httpx.Client(base_url=base_url, headers=headers, timeout=PAUSE + 10) as http:
        n = 0
        while not stop.is_set():
            n += 1
            create = KeyedCreate(title=f"hang-{user}-{n}")
            creates.append(create)
            while create.created_id is None and time.monotonic() < give_up_at:
                outcome = recorder.send(
                    http,
                    "POST",
                    "/api/tasks",
                    json={"title": create.title},
                    headers={"Idempotency-Key": create.key},
                )
                if outcome.status == 201:
                    create.created_id = outcome.body["data"]["id"]
                else:
                    time.sleep(0.05)
                recorder.send(http, "GET", "/api/tasks", params={"limit": 5})


def _stored(url: str, prefix: str) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, title FROM tasks WHERE starts_with(title, %s)", (prefix,))
        for task_id, title in cur.fetchall():
            rows.setdefault(title, []).append(task_id)
    conn.close()
    return rows


@pytest.fixture(scope="module")
def hang_db(dedicated_pg: DedicatedPostgres) -> str:
    url = dedicated_pg.create_database("task_api_hang")
    migrate_up(url)
    return url


@pytest.fixture(scope="module")
def bouncer(dedicated_pg: DedicatedPostgres) -> Iterator[PgBouncer]:
    pool = PgBouncer(dedicated_pg)
    try:
        yield pool
    finally:
        pool.close()


def _app_url(transport: str, pg: DedicatedPostgres, bouncer: PgBouncer | None) -> str:
    if transport == "unix":
        return pg.unix_url("task_api_hang")
    if transport == "pgbouncer":
        assert bouncer is not None
        return bouncer.url("task_api_hang")
    return pg.url("task_api_hang")


@pytest.mark.parametrize("transport", ["tcp", "unix", "pgbouncer"])
def test_paused_database_under_load(
    dedicated_pg: DedicatedPostgres,
    hang_db: str,
    request: pytest.FixtureRequest,
    transport: str,
) -> None:
    pool = request.getfixturevalue("bouncer") if transport == "pgbouncer" else None
    url = _app_url(transport, dedicated_pg, pool)
    with running_server(url, workers=2, **SERVER_ENV) as (base_url, process, log):
        recorder = Recorder()
        creates: list[KeyedCreate] = []
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_client,
                args=(
                    base_url,
                    f"{transport}-u{i}",
                    recorder,
                    creates,
                    stop,
                    time.monotonic() + 90,
                ),
            )
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.5)
            pausing_at = time.monotonic()
            dedicated_pg.pause()
            paused_at = time.monotonic()  # every process stopped (signalling takes a moment)
            time.sleep(PAUSE)
            resumed_at = time.monotonic()
            dedicated_pg.resume()
            time.sleep(4.0)
            # A loaded machine may recover later than 4 s, yet within the bound: see it.
            recorder.wait_for_recovery(
                resumed_at, after=2 * CLIENTS, gap=0.5, timeout=RESPONSE_TIMEOUT + SLACK + 10
            )
        finally:
            dedicated_pg.resume()
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a client hung"
        assert process.poll() is None
        assert log.read_text().count("Application startup complete") == 2, "a worker restarted"
    outcomes: list[Outcome] = list(recorder.outcomes)

    # No request waited for the database to come back: each got its answer within the bound.
    for outcome in outcomes:
        assert outcome.status in (200, 201, 503), outcome
        assert outcome.latency < LATENCY_BOUND, outcome
        if outcome.status == 503:
            assert outcome.body["error"]["code"] == "SERVICE_UNAVAILABLE", outcome
            assert outcome.headers.get("retry-after") == "1", outcome
    during = [o for o in outcomes if paused_at <= o.sent and o.sent + o.latency <= resumed_at]
    assert during and all(o.status == 503 for o in during), Counter(o.status for o in during)
    # New requests did not queue: once the breaker had opened, nearly all were answered at
    # once (one probe at a time per worker may wait for its connection attempt).
    # (By send time only: a request left waiting until the resume counts too.)
    settled = [o for o in outcomes if paused_at + RESPONSE_TIMEOUT + SLACK <= o.sent < resumed_at]
    fast = [o for o in settled if o.latency < AT_ONCE]
    assert len(settled) >= 20 and len(fast) >= 0.8 * len(settled), (
        len(settled),
        len(fast),
        sorted(round(o.latency, 2) for o in settled)[-10:],
    )
    # Only the probes wait, one at a time per worker (each up to the response timeout), also
    # behind PgBouncer, which accepts connections while the server behind it is stuck: never
    # more waiting requests at once than workers. A request counts as waiting from AT_ONCE after
    # it was sent (before that it is any request's answer): a worker's next probe may be sent
    # while the client has not yet read its last probe's answer.
    slow = [o for o in settled if o.latency >= AT_ONCE]
    waiting_at_once = max(
        (
            sum(1 for w in slow if w.sent <= o.sent and o.sent + AT_ONCE < w.sent + w.latency)
            for o in slow
        ),
        default=0,
    )
    assert waiting_at_once <= 2, sorted((round(o.sent - paused_at, 2), o.latency) for o in slow)

    # Recovery without a restart: the first success soon after the resume, then only successes.
    after = sorted((o for o in outcomes if o.sent >= resumed_at), key=lambda o: o.sent)
    first_ok = next(o for o in after if o.status in (200, 201))
    recovery = first_ok.sent + first_ok.latency - resumed_at
    assert recovery < RESPONSE_TIMEOUT + SLACK, recovery
    late = [o for o in after if o.sent > first_ok.sent + first_ok.latency + 0.5]
    assert late and all(o.status in (200, 201) for o in late), Counter(o.status for o in late)

    # Exactly what the clients were told: each create once, with the id its 201 carried.
    rows = _stored(hang_db, f"hang-{transport}-")
    titles = {c.title: c for c in creates}
    assert set(rows) <= set(titles), "rows nobody was told about"
    assert all(c.created_id is not None for c in creates), "a create never succeeded"
    for create in creates:
        assert rows.get(create.title) == [create.created_id], create
    stuck = [o.latency for o in outcomes if o.sent < pausing_at < o.sent + o.latency]
    print(
        f"\n[{transport}: PostgreSQL paused {PAUSE:.0f}s] {recorder.summary()} "
        f"in-flight-at-pause max={max(stuck, default=0) * 1000:.0f}ms "
        f"breaker-phase median={statistics.median(o.latency for o in settled) * 1000:.0f}ms "
        f"recovery={recovery * 1000:.0f}ms creates={len(creates)}"
    )


@pytest.fixture
def guarded_engine_settings(hang_db: str) -> Settings:
    return Settings(
        environment="test",
        jwt_secret=TEST_SECRET,
        database_url=hang_db,
        db_statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        db_pool_timeout_seconds=2,
    )


def test_a_commit_sent_to_a_stuck_server_is_never_applied(
    dedicated_pg: DedicatedPostgres, hang_db: str, guarded_engine_settings: Settings
) -> None:
    engine = create_db_engine(hang_db, guarded_engine_settings)
    title = f"late-commit-{uuid.uuid4().hex}"
    try:
        with engine.connect() as conn:
            # A transaction of psycopg2's own (sign-up, sign-in), sent through a `Sender`: its
            # settings, the idle timeout with them, go with its first statement.
            settings = guarded_engine_settings
            send = Sender(
                conn,
                transaction_locals(
                    settings.db_statement_timeout_ms, settings.effective_db_response_timeout_ms
                ),
            )
            transaction = conn.begin()
            send.write(
                text("INSERT INTO users (id) VALUES ('late-commit') ON CONFLICT DO NOTHING"), {}
            )
            # Scoped as every statement the sender sends must be (backend/db/scope_check.py).
            send.write(
                text("INSERT INTO tasks (user_id, title) VALUES (:owner, :t)"),
                {"owner": "late-commit", "t": title},
            )
            dedicated_pg.pause()
            started = time.monotonic()
            try:
                with pytest.raises(OperationalError) as raised:
                    transaction.commit()
                waited = time.monotonic() - started
            finally:
                dedicated_pg.resume()
        assert isinstance(raised.value.orig, DatabaseTimeout)
        assert RESPONSE_TIMEOUT - 0.1 < waited < RESPONSE_TIMEOUT + SLACK, waited
        time.sleep(0.5)  # the resumed server has read the COMMIT by now, had it wanted to
        assert _stored(hang_db, title) == {}, "a write answered 503 was applied afterwards"
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["create", "delete"])
def test_a_write_sent_whole_to_a_stuck_server_is_never_applied(
    dedicated_pg: DedicatedPostgres, hang_db: str, guarded_engine_settings: Settings, kind: str
) -> None:
    """A write that commits in its own message (BEGIN, the write, COMMIT: one round trip)
    lands whole in the paused server's socket buffer; the client gives up; when the server
    resumes it runs the message, but the deadline checked before its COMMIT (the server's
    own clock, learnt at connect) has passed, so the write answered 503 is not applied."""
    engine = create_db_engine(hang_db, guarded_engine_settings)
    title = f"late-whole-{kind}-{uuid.uuid4().hex}"
    claims = TokenClaims(subject="late-whole", local=False)
    try:
        with UnitOfWork(engine, guarded_engine_settings, claims=claims, counts_write=True) as w:
            task_id = w.service(TaskService).create(TaskCreate(title=title)).id  # warms the pool
        work = UnitOfWork(engine, guarded_engine_settings, claims=claims, counts_write=True)
        dedicated_pg.pause()
        started = time.monotonic()
        try:
            with pytest.raises(OperationalError) as raised, work:
                if kind == "create":
                    work.service(TaskService).create(TaskCreate(title=title + "-again"))
                else:
                    work.service(TaskService).delete(task_id)
            waited = time.monotonic() - started
        finally:
            dedicated_pg.resume()
        assert isinstance(raised.value.orig, DatabaseTimeout)
        assert waited < RESPONSE_TIMEOUT + SLACK, waited
        # The resumed server has run the message by the time a new connection is answered.
        time.sleep(0.5)
        assert _stored(hang_db, title) == {title: [task_id]}, "a write answered 503 was applied"
    finally:
        engine.dispose()


def test_breaker_fails_fast_then_one_probe_recovers(
    dedicated_pg: DedicatedPostgres, hang_db: str, guarded_engine_settings: Settings
) -> None:
    engine = create_db_engine(hang_db, guarded_engine_settings)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        dedicated_pg.pause()
        try:
            started = time.monotonic()
            with pytest.raises(OperationalError) as first, engine.connect() as conn:
                conn.execute(text("SELECT 1"))  # pre-ping or statement: no answer
            assert isinstance(first.value.orig, DatabaseTimeout | DatabaseUnresponsive)
            assert time.monotonic() - started < RESPONSE_TIMEOUT + SLACK
            # The breaker is open: no waiting, but for the one probe at a time (which may
            # wait for its connection attempt).
            waited = []
            for _ in range(20):
                started = time.monotonic()
                with pytest.raises(OperationalError) as fast, engine.connect():
                    pass
                waited.append(time.monotonic() - started)
                if not isinstance(fast.value.orig, DatabaseUnresponsive):
                    assert waited[-1] < RESPONSE_TIMEOUT + SLACK  # the probe
            assert sum(w < 0.5 for w in waited) >= 18, waited  # far below the 3 s a wait takes
        finally:
            dedicated_pg.resume()
        time.sleep(0.5)  # past the probe interval: the next checkout probes, and gets an answer
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        with engine.connect() as conn:  # closed again: ordinary checkouts
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_no_wait_for_a_connection_outlasts_the_response_timeout(
    dedicated_pg: DedicatedPostgres, hang_db: str
) -> None:
    """With every setting at its default, a new connection to a frozen server (the first
    one, and then the breaker's probe) once waited the connect timeout (10 s) before its
    503, past the response timeout (7 s) that R7 promises for every wait."""
    settings = Settings(environment="test", jwt_secret=TEST_SECRET, database_url=hang_db)
    response_timeout = settings.effective_db_response_timeout_ms / 1000
    assert settings.db_connect_timeout_seconds > response_timeout
    engine = create_db_engine(hang_db, settings)  # no pooled connection yet
    waits: list[tuple[str, float]] = []
    try:
        dedicated_pg.pause()
        try:
            for attempt in ("first connection", "the breaker's probe"):
                deadline = time.monotonic() + 30
                while True:  # past the probe interval: the breaker lets this one through
                    started = time.monotonic()
                    with pytest.raises(OperationalError) as raised, engine.connect():
                        pass
                    waited = time.monotonic() - started
                    if not isinstance(raised.value.orig, DatabaseUnresponsive):
                        break
                    assert time.monotonic() < deadline, "no probe was let through"
                    time.sleep(0.1)
                waits.append((attempt, waited))
        finally:
            dedicated_pg.resume()
        for _attempt, waited in waits:
            # It did wait for the server (a connection attempt, not a refusal) ...
            assert waited > 1.0, waits
            # ... and no longer than a round trip may: the response timeout plus slack.
            assert waited < response_timeout + SLACK, waits
        print(f"\n[paused server] {', '.join(f'{a}: {w:.2f}s' for a, w in waits)}")
    finally:
        engine.dispose()
