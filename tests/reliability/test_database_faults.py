"""Promise: the API survives its database going away and coming back (specs/reliability.md).

A dedicated PostgreSQL (never the session's shared one) behind `serve --workers 2`: it is
stopped in the middle of a write load and started again. While it is down every request is
answered quickly with 503 SERVICE_UNAVAILABLE; once it is back requests succeed again without
restarting the app; every create that got a 201 is in the database, and none was applied twice.
Pooled connections killed behind the app's back (Neon's idle suspend, a pooler recycling them)
are replaced before use, so the next request still succeeds.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg2
import pytest

from tests.conftest import bearer, make_token, running_server
from tests.reliability.load import Outcome, Recorder
from tests.reliability.servers import DedicatedPostgres

CONNECT_TIMEOUT = 2
# No request may take longer than a connection attempt plus scheduling slack on 2 busy cores.
LATENCY_BOUND = CONNECT_TIMEOUT + 3.0
RECOVERY_BOUND = 5.0
CLIENTS = 6
SERVER_ENV = {
    "DB_CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
    "DB_POOL_TIMEOUT_SECONDS": "2",
    "DB_POOL_SIZE": "5",
    "AUTO_MIGRATE": "false",
    # The limit stays on (every write is counted, as in production), but out of reach: how
    # many creates a client gets through in the test depends on the machine's speed and on
    # how long recovery takes, and a 429 is not what these tests are about.
    "RATE_LIMIT_TASK_WRITES_PER_USER": "1000000",
}


def _tasks_by_title(url: str, prefix: str) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, title FROM tasks WHERE starts_with(title, %s)", (prefix,))
        for task_id, title in cur.fetchall():
            rows.setdefault(title, []).append(task_id)
    conn.close()
    return rows


@dataclass
class LogicalCreate:
    """One task a client wants created, retried with the same body and Idempotency-Key."""

    title: str
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: int = 0
    created_id: int | None = None


def _assert_idempotency_replays(http: httpx.Client) -> None:
    """The retry rule below relies on it: a repeated Idempotency-Key replays the first 201."""
    body = {"title": f"probe-{uuid.uuid4().hex}"}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = http.post("/api/tasks", json=body, headers=headers)
    second = http.post("/api/tasks", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["data"]["id"] == first.json()["data"]["id"]


def _client_loop(
    base_url: str,
    user: str,
    recorder: Recorder,
    creates: list[LogicalCreate],
    stop: threading.Event,
    give_up_at: float,
) -> None:
    headers = bearer(make_token(sub=user, lifetime=3600))
    timeout = httpx.Timeout(LATENCY_BOUND + 10)
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as http:
        n = 0
        while not stop.is_set():
            n += 1
            create = LogicalCreate(title=f"fault-{user}-{n}")
            creates.append(create)
            # Retry until created: a client that got 503 (or no answer) does not know whether
            # the write happened, which is what the Idempotency-Key is for.
            while create.created_id is None and time.monotonic() < give_up_at:
                create.attempts += 1
                outcome = recorder.send(
                    http,
                    "POST",
                    "/api/tasks",
                    json={"title": create.title, "priority": "high"},
                    headers={"Idempotency-Key": create.key},
                )
                if outcome.status == 201:
                    create.created_id = outcome.body["data"]["id"]
                else:
                    time.sleep(0.05)
                recorder.send(http, "GET", "/api/tasks", params={"limit": 5})


def _check_unavailable(outcome: Outcome) -> None:
    assert outcome.body["error"]["code"] == "SERVICE_UNAVAILABLE", outcome
    assert outcome.headers.get("retry-after"), outcome


@pytest.fixture(scope="module")
def fault_server(dedicated_db: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """One app for the whole module: it must outlive every fault below without a restart."""
    with running_server(dedicated_db, workers=2, **SERVER_ENV) as server:
        yield server


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_database_restart_under_load(
    dedicated_pg: DedicatedPostgres,
    dedicated_db: str,
    fault_server: tuple[str, subprocess.Popen[bytes], Path],
    mode: str,
) -> None:
    base_url, process, log = fault_server
    probe_headers = bearer(make_token(sub="fault-probe", lifetime=600))
    with httpx.Client(base_url=base_url, headers=probe_headers, timeout=10) as http:
        _assert_idempotency_replays(http)
    recorder = Recorder()
    creates: list[LogicalCreate] = []
    stop = threading.Event()
    give_up_at = time.monotonic() + 60
    threads = [
        threading.Thread(
            target=_client_loop,
            args=(base_url, f"{mode}-u{i}", recorder, creates, stop, give_up_at),
        )
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        stopping_at = time.monotonic()
        dedicated_pg.stop(mode)
        down_at = time.monotonic()  # pg_ctl -w returned: the server is gone
        time.sleep(2.5)
        up_at = time.monotonic()
        dedicated_pg.start()
        started_at = time.monotonic()
        time.sleep(2.5)
        # A loaded machine may recover later than 2.5 s, yet within RECOVERY_BOUND: see it.
        recorder.wait_for_recovery(started_at, after=2 * CLIENTS, timeout=RECOVERY_BOUND + 10)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "a client thread hung"
    outcomes = list(recorder.outcomes)

    # Every request answered, within the bound, with success or a clean 503.
    for outcome in outcomes:
        assert outcome.status in (200, 201, 503), outcome
        assert outcome.latency < LATENCY_BOUND, outcome
        if outcome.status == 503:
            _check_unavailable(outcome)
    during = [o for o in outcomes if down_at <= o.sent <= up_at]
    assert during and all(o.status == 503 for o in during), "the outage was not observed"
    assert all(o.status in (200, 201) for o in outcomes if o.sent + o.latency < stopping_at)

    # Recovery without restarting the app: the first request after the restart that
    # succeeds comes within the bound, and from then on every request succeeds.
    after = sorted((o for o in outcomes if o.sent >= started_at), key=lambda o: o.sent)
    first_ok = next(o for o in after if o.status in (200, 201))
    recovery = first_ok.sent + first_ok.latency - started_at
    assert recovery < RECOVERY_BOUND
    late = [o for o in after if o.sent > first_ok.sent + first_ok.latency]
    assert late and all(o.status in (200, 201) for o in late), Counter(o.status for o in late)
    assert process.poll() is None
    assert log.read_text().count("Application startup complete") == 2, "a worker restarted"

    # Every create a client was told about is in the database; nothing was applied twice.
    rows = _tasks_by_title(dedicated_db, f"fault-{mode}-")
    mine = {c.title: c for c in creates}
    assert set(rows) <= set(mine), "rows nobody asked for"
    assert all(c.created_id is not None for c in creates), "a create never succeeded after recovery"
    for create in creates:
        # A 503 may hide a commit made just before the database went away; the retry
        # carries the same Idempotency-Key, so it replays that write instead of adding one.
        assert rows.get(create.title) == [create.created_id], create
    max_outage_latency = max((o.latency for o in during), default=0.0)
    print(
        f"\n[{mode} stop] {recorder.summary()} outage={up_at - down_at:.1f}s "
        f"max-latency-during-outage={max_outage_latency * 1000:.0f}ms "
        f"recovery={recovery * 1000:.0f}ms creates={len(creates)} "
        f"retried={sum(c.attempts > 1 for c in creates)} "
        f"rows-verified={sum(map(len, rows.values()))}"
    )


def test_killed_pool_connections_are_replaced_before_use(
    dedicated_pg: DedicatedPostgres, fault_server: tuple[str, subprocess.Popen[bytes], Path]
) -> None:
    """Neon suspends idle computes and PgBouncer recycles server connections: the app's pooled
    connections die without it noticing. The checkout check (a closed socket, no ping) must
    replace them, so no request fails."""
    base_url, process, log = fault_server
    headers = bearer(make_token(sub="fault-stale", lifetime=600))
    recorder = Recorder()
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:

        def burst(tag: str) -> list[Outcome]:
            # Concurrent, so that several pooled connections in each worker are used.
            results: list[Outcome] = []

            def one(i: int) -> None:
                results.append(
                    recorder.send(http, "POST", "/api/tasks", json={"title": f"fault-{tag}-{i}"})
                )
                results.append(recorder.send(http, "GET", "/api/tasks"))

            workers = [threading.Thread(target=one, args=(i,)) for i in range(8)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=30)
            return results

        burst("warm")
        for round_ in range(3):
            with psycopg2.connect(dedicated_pg.url()) as admin, admin.cursor() as cur:
                # Waits (up to 5 s each) until the backends have exited: connections that
                # died while idle in the pool, as a suspended compute's or a recycled pooler
                # connection's. (One killed at the very moment a request takes it fails that
                # request with a 503, as it could between a ping and the first statement.)
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                    "WHERE application_name = 'task-api'"
                )
                killed = cur.fetchone()[0]
            admin.close()
            assert killed > 0, "no pooled connection to kill"
            results = burst(f"after-kill-{round_}")
            assert [o.status for o in results if o.status not in (200, 201)] == [], results
    assert process.poll() is None
    assert log.read_text().count("Application startup complete") == 2, "a worker restarted"
    print(f"\n[pg_terminate_backend x3] {recorder.summary()}")
