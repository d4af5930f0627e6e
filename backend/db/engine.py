"""The engine (one per process): its pool, its connections' checks, its server's clock; and a
bounded wait for every answer of the database, with a breaker that stops new requests from
queueing behind one that stopped answering: client-side, because `statement_timeout` cannot
fire on a stuck server or a silent network (specs/reliability.md, R7 "Mechanism")."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg2
import psycopg2.extensions
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool

from backend.config import Settings
from backend.db.embedded import start_embedded_postgres
from backend.errors import DatabaseTimeout, DatabaseUnresponsive

logger = logging.getLogger(__name__)

# How late past its deadline a timed-out round trip may be answered.
WATCHDOG_TICK_SECONDS = 0.05
# While the breaker is open, the next probe at most this long after the last one failed.
BREAKER_PROBE_INTERVAL_SECONDS = 0.2
# A failed connect this slow was a timeout (a stuck server: trip); a refused one is quick.
SLOW_CONNECT_FAILURE_SECONDS = 0.5


class Breaker:
    """Open after a timeout or a slow failed connect; while open one checkout at a time probes
    (at most every `probe_interval`), and the first answer closes it."""

    def __init__(self, probe_interval: float = BREAKER_PROBE_INTERVAL_SECONDS) -> None:
        self.probe_interval = probe_interval
        self.lock = threading.Lock()
        self.open = False
        self._next_probe = 0.0
        self._probe_thread: int | None = None  # the probe under way, if any

    def trip(self, reason: str) -> None:
        with self.lock:
            me = threading.get_ident()
            if not self.open:
                logger.warning("database breaker open: %s", reason)
                self._next_probe = time.monotonic() + self.probe_interval
            elif self._probe_thread == me:
                # The probe failed: the next one a moment later.
                self._next_probe = time.monotonic() + self.probe_interval
            if self._probe_thread == me:
                self._probe_thread = None
            self.open = True

    def admit(self) -> bool:
        """Raise `DatabaseUnresponsive` while open, unless this checkout is the probe (True)."""
        if not self.open:  # the common case, without the lock
            return False
        with self.lock:
            if not self.open:
                return False
            now = time.monotonic()
            if self._probe_thread is not None or now < self._next_probe:
                raise DatabaseUnresponsive("the database stopped answering; not tried")
            self._probe_thread = threading.get_ident()
            return True

    def check_connect(self) -> None:
        """Before opening a connection: while open, only the probe may try (a checkout
        admitted before the breaker opened must not wait out a connect timeout either)."""
        if self.open and self._probe_thread != threading.get_ident():
            raise DatabaseUnresponsive("the database stopped answering; not tried")

    def close(self) -> None:
        with self.lock:
            if self.open:
                logger.warning("database breaker closed: the database answers again")
            self.open = False
            self._probe_thread = None


class _Watchdog:
    """One thread per process: shuts the socket of every round trip past its deadline (under
    the lock a round trip takes to disarm, so a connection is never touched after it ended)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed: dict[int, tuple[float, GuardedConnection]] = {}
        self.running = False

    def start(self) -> None:
        with self.lock:
            if not self.running:
                threading.Thread(target=self._run, name="db-watchdog", daemon=True).start()
                self.running = True

    def after_fork(self) -> None:
        # A forked child has the parent's registrations but not its thread.
        self.lock = threading.Lock()
        self.armed = {}
        self.running = False

    def _run(self) -> None:
        while True:
            time.sleep(WATCHDOG_TICK_SECONDS)
            now = time.monotonic()
            # A copy: a round trip may be armed meanwhile (without the lock).
            for key, entry in list(self.armed.items()):
                if entry[0] > now:
                    continue
                with self.lock:
                    # Still the same round trip, and it cannot end while its socket is shut.
                    if self.armed.get(key) is entry:
                        del self.armed[key]
                        entry[1]._shut_down()


_watchdog = _Watchdog()
os.register_at_fork(after_in_child=_watchdog.after_fork)


class GuardedConnection(psycopg2.extensions.connection):
    """psycopg2's connection with a deadline on every round trip (an engine's subclass sets
    `timeout`, seconds, 0: none, and `breaker`)."""

    timeout: ClassVar[float] = 0.0
    breaker: ClassVar[Breaker | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = GuardedCursor
        self.timed_out = False

    def guarded(self, call: Any, *args: Any) -> Any:
        timeout = self.timeout
        if timeout <= 0:
            return call(*args)
        watchdog = _watchdog
        if not watchdog.running:
            watchdog.start()
        # Armed: one dict store (atomic under the GIL); disarmed under the watchdog's lock.
        watchdog.armed[id(self)] = (time.monotonic() + timeout, self)
        try:
            return call(*args)
        except psycopg2.OperationalError as exc:
            if self.timed_out:
                raise DatabaseTimeout(
                    f"no answer from the database within {timeout:g} s; connection closed"
                ) from exc
            raise
        finally:
            with watchdog.lock:
                watchdog.armed.pop(id(self), None)

    def _shut_down(self) -> None:
        """Called by the watchdog, with the round trip still registered."""
        self.timed_out = True
        if self.breaker is not None:
            self.breaker.trip(f"no answer within {self.timeout:g} s")
        try:
            # Shut down through a duplicate: closing it leaves libpq's own descriptor alone.
            sock = socket.socket(fileno=os.dup(self.fileno()))
        except (OSError, psycopg2.Error):
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()

    def commit(self) -> None:
        self.guarded(super().commit)

    def rollback(self) -> None:
        self.guarded(super().rollback)


class GuardedCursor(psycopg2.extensions.cursor):
    connection: GuardedConnection

    def execute(self, query: Any, vars: Any = None) -> None:
        self.connection.guarded(super().execute, query, vars)

    def executemany(self, query: Any, vars_list: Any) -> None:
        self.connection.guarded(super().executemany, query, vars_list)


def guarded_connection_class(timeout: float, breaker: Breaker) -> type[GuardedConnection]:
    return type("GuardedConnection", (GuardedConnection,), {"timeout": timeout, "breaker": breaker})


class BreakerPool(QueuePool):
    """QueuePool whose checkouts pass the breaker (a subclass per engine survives `recreate`)."""

    breaker: ClassVar[Breaker]

    def connect(self) -> PoolProxiedConnection:
        if not self.breaker.open or not self.breaker.admit():  # closed: no lock, no call
            return super().connect()
        connection = None
        try:
            connection = super().connect()
            # An answer from the server itself: a pooler connects while the server is stuck.
            dbapi = connection.dbapi_connection
            if dbapi is None:  # never: a checked-out connection has one
                raise DatabaseUnresponsive("the probe got no connection")
            cursor = dbapi.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi.rollback()
        except BaseException:
            if connection is not None:
                connection.invalidate()
                connection.close()
            self.breaker.trip("the probe got no answer")
            raise
        self.breaker.close()
        return connection


def normalize_url(url: str) -> str:
    """Accept URLs as Neon's console and Heroku-style hosts print them; pin the psycopg2 driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def libpq_url(url: str) -> str:
    """The same URL without the SQLAlchemy driver suffix (for yoyo and psycopg2)."""
    return "postgresql://" + normalize_url(url).split("://", 1)[1]


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    # Set by `serve` for its workers, so that they share the server the parent started.
    if inherited := os.environ.get("TASK_API_EMBEDDED_URL"):
        return inherited
    return start_embedded_postgres(settings.embedded_pg_dir)


def create_db_engine(url: str, settings: Settings) -> Engine:
    """One engine per process, for Neon's pooler as well as a local server: no startup
    `options` or session `SET` (a transaction pooler loses them), bounded waits everywhere."""
    parsed = make_url(normalize_url(url))
    response_timeout_ms = settings.effective_db_response_timeout_ms
    breaker = Breaker()
    connect_args: dict[str, object] = {
        # At most the response timeout: a connect to a stuck server gives up as a round trip would.
        "connect_timeout": settings.effective_db_connect_timeout_seconds,
        "application_name": "task-api",
        # TCP keepalives notice a dead peer; libpq ignores them on a Unix socket.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "connection_factory": guarded_connection_class(response_timeout_ms / 1000, breaker),
    }
    engine = create_engine(
        parsed,
        poolclass=type("BreakerPool", (BreakerPool,), {"breaker": breaker}),
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # A light load reuses a few connections, below the ping threshold; the rest idle.
        pool_use_lifo=True,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args=connect_args,
    )

    @event.listens_for(engine, "do_connect")
    def _connect(
        dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: dict[str, Any]
    ) -> Any:
        breaker.check_connect()
        started = time.monotonic()
        try:
            return psycopg2.connect(*cargs, **cparams)
        except psycopg2.OperationalError as exc:
            if time.monotonic() - started >= SLOW_CONNECT_FAILURE_SECONDS:
                # Timed out: new checkouts stop waiting for a server that does not answer.
                breaker.trip(f"connection attempt failed ({' '.join(str(exc).split())[:120]})")
            raise

    _check_on_checkout(engine, settings.db_pool_ping_idle_seconds)
    _on_return(engine)
    _keep_heap(engine)
    if response_timeout_ms > 0:
        _learn_server_clock(engine, response_timeout_ms / 1000)
    return engine


def _check_on_checkout(engine: Engine, ping_idle_seconds: float) -> None:
    """Never hand out a dead pooled connection, without a round trip on a busy pool: a closed
    one's socket turns readable (a zero-timeout poll sees it); what a socket cannot show (a NAT
    that dropped it) needs long idling, so one idle past `ping_idle_seconds` is pinged."""

    @event.listens_for(engine, "connect")
    def _fresh(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info.pop(_CONNECTION_IDLE_SINCE, None)

    @event.listens_for(engine, "checkout")
    def _check(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.pop(_CONNECTION_IDLE_SINCE, None)
        if idle_since is None:  # just connected
            return
        if not dbapi_connection.closed and time.monotonic() - idle_since < ping_idle_seconds:
            # Whether the server sent anything (or closed) since the connection went idle.
            try:
                poller = select.poll()  # not select.select: file descriptors above 1023
                poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
            except psycopg2.Error:
                pass  # no socket to watch: pinged below
            else:
                if not poller.poll(0):
                    return
        try:
            if dbapi_connection.closed:
                raise psycopg2.InterfaceError("connection already closed")
            engine.dialect.do_ping(dbapi_connection)
        except psycopg2.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):  # type: ignore[arg-type]
                raise exc.InvalidatePoolError(str(error)) from error
            raise


def _on_return(engine: Engine) -> None:
    """A returned connection: when it went idle, and out of autocommit (else the next
    borrower's `begin()` would commit statement by statement); one still in a transaction
    sent as text (the pool's rollback does not see it) is discarded."""

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CONNECTION_IDLE_SINCE] = time.monotonic()
        if dbapi_connection is None or dbapi_connection.closed or not dbapi_connection.autocommit:
            return
        try:
            idle = dbapi_connection.info.transaction_status == TRANSACTION_STATUS_IDLE
            if idle:
                dbapi_connection.autocommit = False
        except psycopg2.Error:
            idle = False  # a connection that cannot say or switch is no one's to borrow
        if not idle:
            record.invalidate()


# A 4 MiB value, above glibc's mmap threshold (specs/benchmark.md, "Where a listing's CPU went").
_HEAP_KEPT = "SELECT length(repeat(' ', 4194304))"


def _keep_heap(engine: Engine) -> None:
    """Keep a new connection's server process from giving its heap back after every statement
    (glibc's trim threshold: ~0.3 ms of server CPU per listing; once per new connection)."""

    @event.listens_for(engine, "connect")
    def _heap(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            cursor.execute(_HEAP_KEPT)
        dbapi_connection.autocommit = False


def _learn_server_clock(engine: Engine, response_timeout: float) -> None:
    """Give a new connection its server's clock offset and the deadline a message that commits
    by itself gets (`task_api_in_time`): the response timeout less a margin."""

    @event.listens_for(engine, "connect")
    def _clock(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # A failure here is the connection's (raised as is: a 503); it is then discarded.
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            before = time.time()
            cursor.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
            after = time.time()
            (server,) = cursor.fetchone()
        dbapi_connection.autocommit = False
        record.info[CONNECTION_CLOCK_OFFSET] = float(server) - (before + after) / 2
        record.info[CONNECTION_IN_TIME] = (
            response_timeout - min(1.0, response_timeout / 4) - (after - before)
        )


# The connection's own facts, kept from request to request.
_CONNECTION_IDLE_SINCE = "task_api_connection_idle_since"
CONNECTION_CLOCK_OFFSET = "task_api_connection_clock_offset"
CONNECTION_IN_TIME = "task_api_connection_commit_in_time"
# All a pooled connection keeps between requests.
CONNECTION_KEYS = frozenset((_CONNECTION_IDLE_SINCE, CONNECTION_CLOCK_OFFSET, CONNECTION_IN_TIME))


@contextmanager
def autocommitted(engine: Engine) -> Iterator[Connection]:
    """A pooled connection whose statements each commit on their own (no `BEGIN`)."""
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        if dbapi is None:
            raise RuntimeError("a checked-out connection has its DBAPI connection")
        dbapi.autocommit = True  # and back on its return (`_on_return`)
        yield conn
