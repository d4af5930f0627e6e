"""Promises: under concurrent load the API answers without a 5xx and the data ends exactly as
the clients were told; on SIGTERM in-flight requests finish, new connections are refused, and
the process exits 0 (specs/reliability.md).

Both run the real `serve` command (uvicorn workers, separate processes) on loopback.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import bearer, make_token, running_server
from tests.reliability.load import Recorder

USERS = 20
OPS_PER_USER = 30
PRIORITIES = ["none", "low", "medium", "high"]
SHUTDOWN_BOUND = 10.0  # seconds from SIGTERM to exit, with the in-flight request finished
METRICS_TOKEN = "test-metrics-token-shutdown-0123456789"


def _user_session(
    base_url: str, user: str, recorder: Recorder, told: dict[int, dict[str, Any]]
) -> None:
    """One user's scripted session: create, list, update, toggle and delete their own tasks.

    `told` ends as the user's tasks as the API's answers described them.
    """
    rng = random.Random(user)  # noqa: S311 (a reproducible script, not a secret)
    headers = bearer(make_token(sub=user, lifetime=3600))
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        for op in range(OPS_PER_USER):
            roll = rng.random()
            if not told or roll < 0.35:
                body = {"title": f"{user} task {op}", "priority": rng.choice(PRIORITIES)}
                outcome = recorder.send(http, "POST", "/api/tasks", json=body)
                if outcome.status == 201:
                    task = outcome.body["data"]
                    assert (task["title"], task["priority"]) == (body["title"], body["priority"])
                    told[task["id"]] = task
            elif roll < 0.5:
                outcome = recorder.send(http, "GET", "/api/tasks", params={"limit": 100})
                if outcome.status == 200:
                    # Read-your-writes: the listing is exactly this user's tasks so far.
                    assert {t["id"] for t in outcome.body["data"]} == set(told), user
            elif roll < 0.7:
                task_id = rng.choice(sorted(told))
                change = {"title": f"{user} renamed {op}", "priority": rng.choice(PRIORITIES)}
                outcome = recorder.send(http, "PATCH", f"/api/tasks/{task_id}", json=change)
                if outcome.status == 200:
                    assert {k: outcome.body["data"][k] for k in change} == change
                    told[task_id] = outcome.body["data"]
            elif roll < 0.85:
                task_id = rng.choice(sorted(told))
                before = told[task_id]["completed"]
                outcome = recorder.send(http, "PATCH", f"/api/tasks/{task_id}/complete")
                if outcome.status == 200:
                    assert outcome.body["data"]["completed"] is (not before)
                    told[task_id] = outcome.body["data"]
            else:
                task_id = rng.choice(sorted(told))
                outcome = recorder.send(http, "DELETE", f"/api/tasks/{task_id}")
                if outcome.status == 204:
                    del told[task_id]


def _stored_tasks(database_url: str, users: list[str]) -> dict[str, dict[int, dict[str, Any]]]:
    stored: dict[str, dict[int, dict[str, Any]]] = {user: {} for user in users}
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, id, title, completed, priority FROM tasks WHERE user_id = ANY(%s)",
            (users,),
        )
        for user_id, task_id, title, completed, priority in cur.fetchall():
            stored[user_id][task_id] = {
                "title": title,
                "completed": completed,
                "priority": priority,
            }
    conn.close()
    return stored


def test_concurrent_users_end_with_exactly_what_they_were_told(database_url: str) -> None:
    users = [f"load-user-{i}" for i in range(USERS)]
    told: dict[str, dict[int, dict[str, Any]]] = {user: {} for user in users}
    recorder = Recorder()
    errors: list[BaseException] = []

    def run(user: str) -> None:
        try:
            _user_session(base_url, user, recorder, told[user])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with running_server(database_url, workers=3, LOG_LEVEL="INFO") as (base_url, process, _):
        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(user,)) for user in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        duration = time.monotonic() - started
        assert not any(thread.is_alive() for thread in threads), "a client hung"
        assert process.poll() is None

    assert errors == [], errors
    statuses = recorder.statuses()
    assert sum(statuses.values()) == USERS * OPS_PER_USER
    unexpected = [o for o in recorder.outcomes if o.status not in (200, 201, 204)]
    assert unexpected == [], unexpected[:5]

    stored = _stored_tasks(database_url, users)
    fields = ("title", "completed", "priority")
    for user in users:
        expected = {tid: {k: t[k] for k in fields} for tid, t in told[user].items()}
        assert stored[user] == expected, user
    writes = sum(1 for o in recorder.outcomes if o.method != "GET")
    print(
        f"\n[load: {USERS} users x {OPS_PER_USER} ops, 3 workers] {recorder.summary()} "
        f"writes={writes} tasks-verified={sum(len(t) for t in stored.values())} "
        f"duration={duration:.1f}s rate={sum(statuses.values()) / duration:.0f} req/s"
    )


def _connect_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def _wait_until_in_flight(base_url: str, requests: int) -> None:
    """Until the workers are handling `requests` requests besides the scrape itself (the
    gauge is summed over the workers): a fixed sleep is too short on a slow machine."""
    headers = bearer(METRICS_TOKEN)
    deadline = time.monotonic() + 30
    while True:
        scraped = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10)
        assert scraped.status_code == 200, scraped.text
        gauge = next(
            sample.value
            for family in text_string_to_metric_families(scraped.text)
            for sample in family.samples
            if sample.name == "http_requests_in_flight"
        )
        if gauge >= requests + 1:
            return
        assert time.monotonic() < deadline, f"in flight: {gauge - 1}, expected {requests}"
        time.sleep(0.05)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    sock.settimeout(SHUTDOWN_BOUND)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(
    database_url: str, workers: int
) -> None:
    with running_server(database_url, workers=workers, METRICS_TOKEN=METRICS_TOKEN) as (
        base_url,
        process,
        log,
    ):
        port = urlsplit(base_url).port
        assert port is not None
        token = make_token(sub=f"shutdown-user-{workers}", lifetime=600)
        # The account exists before the request under test.
        warm = httpx.post(
            f"{base_url}/api/tasks", json={"title": "before"}, headers=bearer(token), timeout=10
        )
        assert warm.status_code == 201, warm.text

        # A create genuinely in flight: headers and half the body sent, the rest after SIGTERM.
        title = f"in flight {workers}"
        body = json.dumps({"title": title}).encode()
        request = (
            f"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        in_flight = socket.create_connection(("127.0.0.1", port), timeout=5)
        in_flight.sendall(request + body[:5])
        _wait_until_in_flight(base_url, 1)  # a worker has read the headers, waits for the body

        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        while not _connect_refused(port):
            assert time.monotonic() - signalled < SHUTDOWN_BOUND, "new connections still accepted"
            time.sleep(0.05)
        refused_after = time.monotonic() - signalled
        assert process.poll() is None, "exited before the in-flight request finished"

        in_flight.sendall(body[5:])
        status, answer = _read_response(in_flight)
        in_flight.close()
        assert status == 201, answer
        assert answer["data"]["title"] == title

        code = process.wait(timeout=SHUTDOWN_BOUND)
        exited_after = time.monotonic() - signalled
        assert code == 0, log.read_text()[-2000:]

    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT title FROM tasks WHERE id = %s", (answer["data"]["id"],))
        assert cur.fetchone() == (title,)
    conn.close()
    print(
        f"\n[SIGTERM, {workers} worker(s)] refused new connections after {refused_after:.2f}s, "
        f"in-flight create 201 and stored, exit 0 after {exited_after:.2f}s"
    )
