"""The pool's checkout check (backend/db/engine.py `_check_on_checkout`): no round trip on a
busy pool, a ping only for a connection idle past DB_POOL_PING_IDLE_SECONDS, and a pooled
connection the server ended is replaced before any statement is sent on it.

Round trips are counted by a proxy (scripts/bench/dbproxy.py); idleness is set by the
threshold (0: every connection counts as idle; an hour: none does), never by sleeping."""

from __future__ import annotations

from collections.abc import Iterator

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
