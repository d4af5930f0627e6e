"""Real `python -m backend worker` processes: two deliver each event once and one task's
events in order; a worker killed with SIGKILL mid-batch loses nothing; a reminder arrives
when due, once."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account, _free_port, stop_process
from tests.events.conftest import (
    Receiver,
    add_tasks,
    event_states,
    start_worker,
    until,
    worker_env,
)

DAPR = "/v1.0/publish/pubsub/"


def event_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [str(e) for e in conn.execute(text("SELECT event_id FROM task_events")).scalars()]


def test_two_workers_deliver_each_event_once_and_each_task_in_order(
    db_engine: Engine, database_url: str, receiver: Receiver, alice: Account, bob: Account
) -> None:
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    env = worker_env(database_url, receiver, EVENT_BATCH_SIZE="10")
    workers = [start_worker(env, log) for _ in range(2)]
    try:
        tasks = add_tasks(db_engine, alice.id, 40) + add_tasks(db_engine, bob.id, 40)
        with db_engine.begin() as conn:  # one busy task: ten versions in a row
            for n in range(10):
                conn.execute(
                    text("UPDATE tasks SET title = :t WHERE id = :id"),
                    {"t": f"v{n}", "id": tasks[0]},
                )
        expected = len(tasks) + 10
        until(lambda: event_states(db_engine) == {"delivered": expected}, 60, log.read_text())
    finally:
        for worker in workers:
            stop_process(worker)
    published = [r.json() for r in receiver.by_path(DAPR)]
    counts = Counter(p["event_id"] for p in published)
    assert len(published) == expected and set(counts.values()) == {1}, "duplicates"
    assert set(counts) == set(event_ids(db_engine))
    busy = [p["task_data"]["title"] for p in published if p["task_id"] == tasks[0]]
    assert busy == ["task 1", *(f"v{n}" for n in range(10))]
    assert len(receiver.by_path("/hook")) == expected
    assert "worker started" in log.read_text()


def test_a_worker_killed_mid_batch_loses_nothing(
    db_engine: Engine, database_url: str, receiver: Receiver, alice: Account
) -> None:
    receiver.delay = 0.2  # each delivery takes a while: the kill lands mid-batch
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    # The killed worker's batch stays leased for twice its deadline (2 x 2 sinks x 2 s).
    env = worker_env(
        database_url, receiver, EVENT_BATCH_SIZE="20", EVENT_DELIVERY_TIMEOUT_SECONDS="2"
    )
    add_tasks(db_engine, alice.id, 60)
    first = start_worker(env, log)
    until(lambda: len(receiver.by_path(DAPR)) >= 5, 60, log.read_text())
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    receiver.settle()  # what the killed worker had sent is recorded after the delay
    sent_before_kill = len(receiver.by_path(DAPR))
    receiver.delay = 0.0
    second = start_worker(env, log)
    try:
        until(lambda: event_states(db_engine) == {"delivered": 60}, 60, log.read_text())
    finally:
        stop_process(second)
    published = [r.json()["event_id"] for r in receiver.by_path(DAPR)]
    counts = Counter(published)
    recorded = set(event_ids(db_engine))
    lost = recorded - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"crash test: {len(recorded)} events, {len(published)} deliveries, "
        f"{sent_before_kill} before the kill, {duplicates} duplicates, {len(lost)} lost"
    )
    assert not lost
    assert set(counts) == recorded  # duplicates, if any, carry an event id we know
    assert duplicates <= sent_before_kill  # only what the killed worker had sent


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_a_reminder_arrives_when_due_once(
    client: TestClient, db_engine: Engine, database_url: str, receiver: Receiver, alice: Account
) -> None:
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    ports = [_free_port() for _ in range(2)]
    workers = [
        start_worker(worker_env(database_url, receiver, WORKER_METRICS_PORT=str(port)), log)
        for port in ports
    ]
    try:
        # Both workers polling before the reminder's instant is chosen: a slow machine may
        # take longer than the 4 s below just to start them.
        for port in ports:
            until(lambda port=port: _ready(port), 60, log.read_text())
        due = datetime.now(UTC) + timedelta(seconds=4)
        created = client.post(
            "/api/tasks",
            json={
                "title": "Stand-up",
                "due_date": due.isoformat(),
                "reminders": [{"minutes_before_due": 0}],
            },
            headers=alice.headers,
        )
        assert created.status_code == 201, created.text
        until(lambda: bool(receiver.by_path(DAPR + "reminders")), 30, log.read_text())
        time.sleep(2)  # time for a second (wrong) delivery to show up
    finally:
        for worker in workers:
            stop_process(worker)
    [reminder] = receiver.by_path(DAPR + "reminders")
    body = reminder.json()
    assert (body["task_id"], body["title"], body["user_id"]) == (
        created.json()["data"]["id"],
        "Stand-up",
        alice.id,
    )
    assert body["late"] is False and body["event_id"]
    remind_at = datetime.fromisoformat(body["remind_at"])
    assert abs((remind_at - due).total_seconds()) < 0.001
    lag = reminder.at - remind_at.timestamp()
    # Delivered once its time came (never early), and well within the 60 s after which it
    # would be marked late; how soon (the poll interval) is the machine's speed, not a test.
    assert 0 <= lag < 30, lag
    hooks = [h.json() for h in receiver.by_path("/hook") if h.json()["type"] == "reminder"]
    assert len(hooks) == 1 and hooks[0]["data"] == body
