"""The pool's checkout check (backend/db/engine.py `_check_on_checkout`): no round trip on a
busy pool, a ping only for a connection idle past DB_POOL_PING_IDLE_SECONDS, and a pooled
connection the server ended is replaced before any statement is sent on it. And its return
(`_on_return`): no borrower lends autocommit, or a transaction, to the next.

Round trips are counted by a proxy (scripts/bench/dbproxy.py); idleness is set by the
threshold (0: every connection counts as idle; an hour: none does), never by sleeping."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.db.engine import create_db_engine, libpq_url
from scripts.bench.dbproxy import DbProxy


@pytest.fixture(scope="module")
def proxy(database_url: str) -> Iterator[DbProxy]:
    with DbProxy.for_url(database_url, count=True) as running:
        yield running


def _engine(url: str, settings: Settings, ping_idle_seconds: float) -> Engine:
    return create_db_engine(
        url, settings.model_copy(update={"db_pool_ping_idle_seconds": ping_idle_seconds})
    )


def _checkout_round_trips(engine: Engine, proxy: DbProxy) -> int:
    with engine.connect() as conn:  # connects: not counted below
        conn.execute(text("SELECT 1"))
        conn.commit()
    with proxy.measure() as counts, engine.connect():
        pass
    assert counts.connections == 0
    return counts.round_trips


@pytest.mark.parametrize(("ping_idle_seconds", "pings"), [(3600, 0), (0, 1)])
def test_a_checkout_pings_only_a_connection_idle_past_the_threshold(
    proxy: DbProxy,
    database_url: str,
    settings: Settings,
    ping_idle_seconds: float,
    pings: int,
) -> None:
    engine = _engine(proxy.url(database_url), settings, ping_idle_seconds)
    try:
        assert _checkout_round_trips(engine, proxy) == pings
        assert _checkout_round_trips(engine, proxy) == pings
    finally:
        engine.dispose()


def test_a_connection_the_server_ended_is_replaced_before_use(
    database_url: str, settings: Settings
) -> None:
    """Without a ping (an hour's threshold): the closed socket gives it away."""
    engine = _engine(database_url, settings, 3600)
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            conn.commit()
        admin = psycopg2.connect(libpq_url(database_url))
        admin.autocommit = True
        with admin.cursor() as cur:
            # Waits (up to 5 s) until the backend has exited, so its socket is closed.
            cur.execute("SELECT pg_terminate_backend(%s, 5000)", (first,))
            assert cur.fetchone() == (True,)
        admin.close()
        with engine.connect() as conn:
            second = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
    finally:
        engine.dispose()


def test_the_default_pool_keeps_every_connection_it_opens(
    database_url: str, settings: Settings
) -> None:
    """Load above the pool's size must not close and reopen connections: an overflow
    connection is closed when given back, and each new one is a backend started (~10 ms of
    PostgreSQL CPU, specs/benchmark.md issue 37). With the defaults (not the test settings'),
    a full pool given back and taken again is the same backends."""
    defaults = Settings.model_fields
    most = int(defaults["db_pool_size"].default) + int(defaults["db_max_overflow"].default)
    engine = create_db_engine(
        database_url,
        settings.model_copy(
            update={
                "db_pool_size": defaults["db_pool_size"].default,
                "db_max_overflow": defaults["db_max_overflow"].default,
                "db_pool_ping_idle_seconds": 3600,
            }
        ),
    )

    def backends() -> set[int]:
        conns = [engine.connect() for _ in range(most)]
        try:
            return {conn.execute(text("SELECT pg_backend_pid()")).scalar_one() for conn in conns}
        finally:
            for conn in conns:
                conn.close()

    try:
        first = backends()
        assert len(first) == most
        assert backends() == first
    finally:
        engine.dispose()


def _autocommitted(engine: Engine) -> Any:
    """A checked-out connection switched to autocommit, as a request's entry switches it."""
    conn = engine.connect()
    conn.connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
    return conn


def _uncommitted_write_is_hidden(engine: Engine, watcher: Any) -> bool:
    """Whether a write inside the next borrower's `begin()` stays its own until it commits."""
    with engine.connect() as conn, conn.begin():
        conn.execute(text("DROP TABLE IF EXISTS pool_return_probe"))
        conn.execute(text("CREATE TABLE pool_return_probe (n int)"))
        with watcher.cursor() as cur:
            cur.execute("SELECT to_regclass('pool_return_probe') IS NULL")
            hidden = bool(cur.fetchone()[0])
        conn.execute(text("DROP TABLE pool_return_probe"))
    return hidden


@pytest.mark.parametrize("left", ["closed", "abandoned"])
def test_a_borrower_in_autocommit_lends_the_next_a_transaction(
    proxy: DbProxy, database_url: str, settings: Settings, left: str
) -> None:
    """Given back still in autocommit, closed or left to the garbage collector (a reader's
    task cancelled before its `finally` switched back): the next borrower's `begin()` is a
    transaction all the same, and the switch back costs no round trip."""
    engine = _engine(proxy.url(database_url), settings, 3600)
    watcher = psycopg2.connect(libpq_url(database_url))
    watcher.autocommit = True
    try:
        assert _uncommitted_write_is_hidden(engine, watcher)
        with proxy.measure() as counts:
            conn = _autocommitted(engine)
            if left == "closed":
                conn.close()
            else:
                del conn
                gc.collect()
        assert counts.round_trips == 0 and counts.connections == 0
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # QueuePool's
        assert _uncommitted_write_is_hidden(engine, watcher)
    finally:
        watcher.close()
        engine.dispose()


def test_a_connection_given_back_inside_a_transaction_sent_as_text_is_discarded(
    database_url: str, settings: Settings
) -> None:
    """In autocommit the pool's rollback sends nothing, so a `BEGIN` sent as text would
    reach the next borrower: that connection is closed instead, and the next is fresh."""
    engine = _engine(database_url, settings, 3600)
    try:
        conn = _autocommitted(engine)
        first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.exec_driver_sql("BEGIN")
        conn.execute(text("CREATE TEMP TABLE left_open (n int)"))
        conn.close()
        with engine.connect() as conn:
            second = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            assert conn.execute(text("SELECT to_regclass('left_open')")).scalar() is None
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None and not dbapi.autocommit
        assert second != first
    finally:
        engine.dispose()
