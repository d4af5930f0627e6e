"""The engine (one per process): its pool, its connections' checks, its server's clock."""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from backend.config import Settings
from backend.db.deadline import (
    SLOW_CONNECT_FAILURE_SECONDS,
    Breaker,
    breaker_pool_class,
    guarded_connection_class,
)
from backend.db.embedded import start_embedded_postgres

logger = logging.getLogger(__name__)


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
        poolclass=breaker_pool_class(breaker),
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
