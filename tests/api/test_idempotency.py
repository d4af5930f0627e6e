"""Idempotency-Key on POST /api/tasks and POST /api/tasks/bulk (issue 5): replay, mismatch,
per-user scope, expiry and pruning, in-flight requests, failures not recorded, and many
concurrent retries over two worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import psycopg2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.db.engine import libpq_url
from backend.services.idempotency import _lock_id, prune_expired
from tests.cli.helpers import run_cli
from tests.conftest import Account, bearer, count_rows, running_server

KEY = "0b6f5a8e-6c1e-4a7b-9d83-2f0e3c7a9b41"


def keyed(user: Account, key: str = KEY) -> dict[str, str]:
    return {**user.headers, "Idempotency-Key": key}


def records(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM idempotency_keys ORDER BY user_id, key"))
        return [dict(row._mapping) for row in rows]


def expire_all(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE idempotency_keys SET created_at = now() - interval '2 days', "
                "expires_at = now() - interval '1 day'"
            )
        )


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_retry_replays_the_first_response_without_a_second_write(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    first = client.post("/api/tasks", json={"title": "Pay rent"}, headers=keyed(alice))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    retry = client.post("/api/tasks", json={"title": "Pay rent"}, headers=keyed(alice))
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content  # byte for byte
    for header in ("location", "etag", "content-type"):
        assert retry.headers[header] == first.headers[header], header
    assert count_rows(db_engine, "tasks") == 1
    # The first response was a real one: the task is there, under the Location given.
    fetched = client.get(first.headers["location"], headers=alice.headers)
    assert fetched.json()["data"] == first.json()["data"]
    [record] = records(db_engine)
    assert record["user_id"] == alice.id and record["key"] == KEY
    assert record["response_status"] == 201
    assert record["expires_at"] - record["created_at"] == timedelta(hours=24)


def test_the_same_body_written_differently_is_the_same_request(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    first = client.post("/api/tasks", json={"title": "A", "tags": ["x"]}, headers=keyed(alice))
    # Same validated content: key order, defaults spelled out, read-only fields dropped.
    same = {"completed": False, "tags": ["X"], "id": 9, "title": " A "}
    retry = client.post("/api/tasks", json=same, headers=keyed(alice))
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    assert count_rows(db_engine, "tasks") == 1


def test_without_a_key_nothing_is_recorded_and_each_post_writes(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    for _ in range(2):
        assert client.post("/api/tasks", json={"title": "x"}, headers=alice.headers).status_code
    assert count_rows(db_engine, "tasks") == 2
    assert records(db_engine) == []


def test_bulk_replay_does_not_apply_the_operations_twice(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    ids = [
        client.post("/api/tasks", json={"title": t}, headers=alice.headers).json()["data"]["id"]
        for t in ("a", "b")
    ]
    body = {
        "operations": [{"op": "delete", "id": ids[0]}, {"op": "add_tag", "id": ids[1], "tag": "t"}]
    }
    first = client.post("/api/tasks/bulk", json=body, headers=keyed(alice))
    assert first.status_code == 200, first.text
    # Without the key this retry would be a 404 (the task is gone); with it, the first answer.
    retry = client.post("/api/tasks/bulk", json=body, headers=keyed(alice))
    assert retry.status_code == 200 and retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    assert count_rows(db_engine, "tasks") == 1
    survivor = client.get(f"/api/tasks/{ids[1]}", headers=alice.headers)
    assert survivor.headers["etag"] == f'"{ids[1]}-2"'  # changed once, not twice
    plain = client.post("/api/tasks/bulk", json=body, headers=alice.headers)
    assert_error(plain, 404, "NOT_FOUND")


def test_the_same_key_with_another_body_or_route_is_422_and_changes_nothing(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    first = client.post("/api/tasks", json={"title": "one"}, headers=keyed(alice))
    assert first.status_code == 201
    before = records(db_engine)
    other_body = client.post("/api/tasks", json={"title": "two"}, headers=keyed(alice))
    assert_error(other_body, 422, "IDEMPOTENCY_KEY_MISMATCH")
    other_route = client.post(
        "/api/tasks/bulk",
        json={"operations": [{"op": "complete", "id": first.json()["data"]["id"]}]},
        headers=keyed(alice),
    )
    assert_error(other_route, 422, "IDEMPOTENCY_KEY_MISMATCH")
    assert count_rows(db_engine, "tasks") == 1
    assert client.get(first.headers["location"], headers=alice.headers).json() == first.json()
    assert records(db_engine) == before
    # The original request still replays.
    again = client.post("/api/tasks", json={"title": "one"}, headers=keyed(alice))
    assert again.content == first.content


def test_keys_are_scoped_per_user(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    mine = client.post("/api/tasks", json={"title": "same"}, headers=keyed(alice))
    theirs = client.post("/api/tasks", json={"title": "same"}, headers=keyed(bob))
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["data"]["user_id"] == bob.id
    assert theirs.json()["data"]["id"] != mine.json()["data"]["id"]
    # Bob's different body under Alice's key is no mismatch either: separate key spaces.
    other = client.post("/api/tasks", json={"title": "other"}, headers=keyed(bob, "k2"))
    assert other.status_code == 201
    replay = client.post("/api/tasks", json={"title": "same"}, headers=keyed(alice))
    assert replay.content == mine.content
    assert count_rows(db_engine, "tasks") == 3


def test_an_expired_key_allows_a_new_write_and_is_pruned(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    first = client.post("/api/tasks", json={"title": "weekly"}, headers=keyed(alice))
    expire_all(db_engine)
    again = client.post("/api/tasks", json={"title": "weekly"}, headers=keyed(alice))
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["data"]["id"] != first.json()["data"]["id"]
    assert count_rows(db_engine, "tasks") == 2
    # The expired record was replaced by the new answer, with a fresh expiry.
    [record] = records(db_engine)
    assert record["response_body"] == again.text

    # A keyed write prunes its caller's own expired records, never another user's.
    expire_all(db_engine)
    client.post("/api/tasks", json={"title": "b"}, headers=keyed(bob, "bob-key"))
    assert sorted((r["user_id"], r["key"]) for r in records(db_engine)) == sorted(
        [(alice.id, KEY), (bob.id, "bob-key")]
    )
    client.post("/api/tasks", json={"title": "a"}, headers=keyed(alice, "alice-key"))
    assert sorted((r["user_id"], r["key"]) for r in records(db_engine)) == sorted(
        [(alice.id, "alice-key"), (bob.id, "bob-key")]
    )

    expire_all(db_engine)
    assert prune_expired(db_engine, batch=1) == 2  # batches until none is left
    assert records(db_engine) == []


def test_the_prune_command_deletes_only_expired_records(
    client: TestClient, alice: Account, db_engine: Engine, database_url: str
) -> None:
    for key in ("old-1", "old-2"):
        client.post("/api/tasks", json={"title": key}, headers=keyed(alice, key))
    expire_all(db_engine)
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, response_status, "
                "response_body, created_at, expires_at) VALUES "
                "(:u, 'old-3', 'f', 201, '{}', now() - interval '2 days', "
                "now() - interval '1 day'),"
                "(:u, 'live', 'f', 201, '{}', now(), now() + interval '1 day')"
            ),
            {"u": alice.id},
        )
    result = run_cli("prune", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "pruned 3 expired idempotency keys"
    assert [r["key"] for r in records(db_engine)] == ["live"]


@contextmanager
def holding_lock(database_url: str, user_id: str, key: str) -> Iterator[Any]:
    """A second connection holding the key's advisory lock in an open transaction, as a
    request still in flight does."""
    connection = psycopg2.connect(libpq_url(database_url))
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(user_id, key),))
        yield connection
    finally:
        connection.close()


def waiting_on(database_url: str, holder: Any) -> None:
    """Wait until some other session is blocked on a lock `holder`'s session holds."""
    with holder.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
    watcher = psycopg2.connect(libpq_url(database_url))
    watcher.autocommit = True
    try:
        for _ in range(600):
            with watcher.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    (pid,),
                )
                if cur.fetchone()[0]:
                    return
            time.sleep(0.05)
        raise AssertionError("no request waited on the key")
    finally:
        watcher.close()


def test_a_request_while_the_key_is_in_flight_waits_for_it(
    client: TestClient, alice: Account, db_engine: Engine, database_url: str
) -> None:
    """A request that finds its key held waits for the holder (one user's writes run one at
    a time anyway); the holder wrote no record (it failed), so the waiter does the write."""
    with holding_lock(database_url, alice.id, KEY) as holder, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.post, "/api/tasks", json={"title": "x"}, headers=keyed(alice))
        waiting_on(database_url, holder)
        assert not waiting.done()
        holder.rollback()
        done = waiting.result(timeout=30)
    assert done.status_code == 201, done.text
    assert "idempotent-replayed" not in done.headers
    assert count_rows(db_engine, "tasks") == 1
    retry = client.post("/api/tasks", json={"title": "x"}, headers=keyed(alice))
    assert retry.headers["idempotent-replayed"] == "true"
    assert count_rows(db_engine, "tasks") == 1


def test_a_crashed_holder_does_not_leave_the_key_stuck(
    client: TestClient, alice: Account, db_engine: Engine, database_url: str
) -> None:
    with holding_lock(database_url, alice.id, KEY) as holder, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.post, "/api/tasks", json={"title": "x"}, headers=keyed(alice))
        waiting_on(database_url, holder)
        holder.close()  # the holder's connection dies: its lock goes with it
        done = waiting.result(timeout=30)
    assert done.status_code == 201, done.text
    assert count_rows(db_engine, "tasks") == 1


def test_an_odd_key_is_replayed(client: TestClient, alice: Account, db_engine: Engine) -> None:
    key = "!" + "~" * 253 + '"'
    first = client.post("/api/tasks", json={"title": "x"}, headers=keyed(alice, key))
    retry = client.post("/api/tasks", json={"title": "x"}, headers=keyed(alice, key))
    assert first.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert count_rows(db_engine, "tasks") == 1


@pytest.mark.e2e
def test_concurrent_retries_over_two_workers_write_once(
    database_url: str, db_engine: Engine, register: Callable[..., Account]
) -> None:
    user = register()
    with running_server(database_url, workers=2) as (base_url, _, _):

        def attempt(_: int) -> httpx.Response:
            # A new connection per request, so both workers' accept queues get some.
            with httpx.Client(timeout=30) as http:
                return http.post(
                    f"{base_url}/api/tasks",
                    json={"title": "once"},
                    headers={**bearer(user.token), "Idempotency-Key": KEY, "Connection": "close"},
                )

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(attempt, range(20)))
    # Every retry waited for the first and got its answer.
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1  # the one answer, replayed
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert count_rows(db_engine, "tasks") == 1
    assert len(records(db_engine)) == 1


@pytest.mark.e2e
def test_concurrent_pairs_with_rate_limits_on_write_once_each(
    database_url: str, db_engine: Engine, register: Callable[..., Account]
) -> None:
    """24 pairs of requests, each pair sharing a key and sent at once, over two workers with
    the production default (rate limits on): each pair is one task, one answer, replayed
    once, never an error."""
    users = [register() for _ in range(3)]
    pairs = [(users[n % 3], f"pair-{n}") for n in range(24)]
    with running_server(database_url, workers=2, RATE_LIMIT_ENABLED="true") as (base, _, _):

        def attempt(job: tuple[Account, str]) -> httpx.Response:
            user, key = job
            with httpx.Client(timeout=30) as http:
                return http.post(
                    f"{base}/api/tasks",
                    json={"title": key},
                    headers={**bearer(user.token), "Idempotency-Key": key, "Connection": "close"},
                )

        jobs = [job for pair in pairs for job in (pair, pair)]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            responses = list(pool.map(attempt, jobs))
    for n in range(len(pairs)):
        first, second = responses[2 * n], responses[2 * n + 1]
        assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
        assert first.content == second.content
        replayed = ["idempotent-replayed" in r.headers for r in (first, second)]
        assert sorted(replayed) == [False, True]
        assert first.headers["ratelimit"].startswith('"task-writes";')
    assert count_rows(db_engine, "tasks") == len(pairs)


@contextmanager
def failing_inserts(engine: Engine, table: str) -> Iterator[None]:
    """A trigger making every INSERT into `table` fail with a serialization failure (SQLSTATE
    40001), which the API answers 503, as it would a database hiccup."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'injected' USING ERRCODE = 'serialization_failure'; END $$"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER test_fail AFTER INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION test_fail()"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TRIGGER test_fail ON {table}"))
            conn.execute(text("DROP FUNCTION test_fail()"))


@pytest.mark.parametrize("table", ["tasks", "idempotency_keys"])
def test_a_503_is_not_recorded_and_the_retry_does_the_write(
    client: TestClient, alice: Account, db_engine: Engine, table: str
) -> None:
    with failing_inserts(db_engine, table):
        failed = client.post("/api/tasks", json={"title": "x"}, headers=keyed(alice))
        assert_error(failed, 503, "SERVICE_UNAVAILABLE")
    # Write and record commit together or not at all: a failed record leaves no task either.
    assert count_rows(db_engine, "tasks") == 0 and records(db_engine) == []
    retry = client.post("/api/tasks", json={"title": "x"}, headers=keyed(alice))
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert count_rows(db_engine, "tasks") == 1 and len(records(db_engine)) == 1
