"""The benchmark's database proxy (scripts/bench/dbproxy.py) as the delay proxy: traffic
passes both ways, libpq's SSL request is refused by the proxy itself, and the counts hold
with a delay as without one. No timing is asserted (the machine is shared)."""

from __future__ import annotations

import psycopg2

from backend.db.engine import libpq_url
from scripts.bench.dbproxy import DbProxy


def test_the_delay_proxy_carries_a_session(database_url: str) -> None:
    with DbProxy.for_url(database_url, delay_ms=4, count=True) as proxy:
        conn = psycopg2.connect(libpq_url(proxy.url(database_url)), sslmode="prefer")
        conn.autocommit = True
        with proxy.measure() as counts, conn.cursor() as cur:
            cur.execute("SELECT 1; SELECT 2")  # one message, one round trip
            assert cur.fetchone() == (2,)
            cur.execute("SELECT repeat('x', 200000)")  # an answer of many chunks
            assert len(cur.fetchone()[0]) == 200000
        conn.close()
    assert (counts.round_trips, counts.connections) == (2, 0)
    assert proxy.counts.connections == 1
