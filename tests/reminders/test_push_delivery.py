"""A reminder reaches its person's browsers by Web Push (issue 72), end to end against a real
protocol peer on loopback: `PushReceiver` checks each POST's VAPID JWT against the key the API
publishes and decrypts its `aes128gcm` body with the browser's private key
(tests/reminders/push_peer.py). Faults (500, 429, 410), the bound, roles and a removed member.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.events.health import WorkerMetrics
from backend.events.notify import Notifier, topic
from backend.events.worker import Worker
from backend.main import create_app
from backend.services.reminders import fire_due
from tests.conftest import Account, count_rows
from tests.reminders.push_peer import Browser, PushReceiver
from tests.sharing.helpers import join


@pytest.fixture(scope="module")
def push_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "push_allow_loopback": True,
            "event_retry_base_seconds": 0.01,
            "event_retry_max_seconds": 0.02,
            "event_max_attempts": 4,
            "push_timeout_seconds": 5.0,
        }
    )


@pytest.fixture(scope="module")
def push_client(push_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(push_settings)) as client:
        yield client


@pytest.fixture
def receiver(push_client: TestClient) -> Iterator[PushReceiver]:
    key = push_client.get("/api/push/public-key").json()["data"]["public_key"]
    with PushReceiver(key, {}) as peer:
        yield peer


@pytest.fixture
def notifier(db_engine: Engine, push_settings: Settings) -> Iterator[Notifier]:
    with (
        ThreadPoolExecutor(4) as pool,
        httpx.Client(timeout=5.0, follow_redirects=False, trust_env=False) as http,
    ):
        yield Notifier(db_engine, push_settings, WorkerMetrics(), pool, http)


def subscribe(client: TestClient, who: Account, peer: PushReceiver, path: str) -> Browser:
    browser = Browser()
    peer.browsers[path] = browser
    made = client.post(
        "/api/push-subscriptions",
        json=browser.subscription(peer.endpoint(path)),
        headers=who.headers,
    )
    assert made.status_code == 201, made.text
    return browser


def task_with_reminder(client: TestClient, who: Account, title: str, **fields: Any) -> Any:
    due = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    made = client.post(
        "/api/tasks",
        json={"title": title, "due_date": due.isoformat(), "reminders": [{"at": due.isoformat()}]}
        | fields,
        headers=who.headers,
    )
    assert made.status_code == 201, made.text
    return made.json()["data"]


def make_due(engine: Engine, settings: Settings) -> int:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE task_reminders SET remind_at = now() - interval '1 second' "
                "WHERE fired_at IS NULL"
            )
        )
    return fire_due(engine, settings).sent


def drain(notifier: Notifier, engine: Engine, rounds: int = 100) -> None:
    """Run the sink until no delivery is pending (each retry waits its backoff: 20 ms at most
    here); bounded."""
    for _ in range(rounds):
        notifier.run()
        with engine.connect() as conn:
            pending = conn.execute(
                text("SELECT count(*) FROM reminder_deliveries WHERE state = 'pending'")
            ).scalar_one()
        if not pending:
            return
        time.sleep(0.02)
    raise AssertionError("deliveries still pending")


def event_of(engine: Engine, task_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT event_id, task FROM task_events WHERE type = 'reminder' AND task_id = :t"),
            {"t": task_id},
        ).one()


def test_a_reminder_reaches_the_browser_encrypted_and_signed(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    notifier: Notifier,
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/alice")
    task = task_with_reminder(push_client, alice, 'Pay rent <b>"now"</b>')
    assert make_due(db_engine, push_settings) == 1
    assert count_rows(db_engine, "reminder_deliveries") == 1
    drain(notifier, db_engine)
    [got] = receiver.received
    event = event_of(db_engine, task["id"])
    assert got.payload == {
        "type": "reminder",
        "event_id": str(event.event_id),
        "task_id": task["id"],
        "title": 'Pay rent <b>"now"</b>',
        "due_date": event.task["due_at"],
        "remind_at": event.task["remind_at"],
        "late": False,
    }
    assert got.headers["topic"] == topic(event.event_id) and len(got.headers["topic"]) <= 32
    assert got.headers["urgency"] == "high"
    assert got.claims["aud"] == f"http://127.0.0.1:{receiver.port}"
    assert receiver.refused == []
    assert count_rows(db_engine, "reminder_deliveries") == 0


def test_the_worker_fires_and_pushes_in_one_cycle(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/a")
    task_with_reminder(push_client, alice, "Water the plants")
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_reminders SET remind_at = now() - interval '1 second'"))
    worker = Worker(db_engine, push_settings, [])
    try:
        worker.cycle()
    finally:
        worker.close()
    assert [r.payload["title"] for r in receiver.received] == ["Water the plants"]
    delivered = worker.metrics.notifications.labels("push", "delivered")._value.get()
    assert delivered == 1


def test_500_and_429_are_retried_and_nothing_is_lost(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    notifier: Notifier,
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/flaky")
    task_with_reminder(push_client, alice, "Flaky")
    make_due(db_engine, push_settings)
    receiver.answers.extend([(500, {}), (429, {"Retry-After": "0"})])
    drain(notifier, db_engine)
    assert [r.payload["title"] for r in receiver.received] == ["Flaky"]
    assert receiver.calls == 3
    # Each try carried the same Topic: a push service would replace, not pile up.
    assert count_rows(db_engine, "reminder_deliveries") == 0


def test_a_receiver_failing_past_the_bound_dead_letters_the_push(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    notifier: Notifier,
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/down")
    task_with_reminder(push_client, alice, "Down")
    make_due(db_engine, push_settings)
    receiver.answers.extend([(503, {})] * 10)
    drain(notifier, db_engine)
    assert receiver.calls == push_settings.event_max_attempts  # retried within its bound
    with db_engine.connect() as conn:
        row = conn.execute(
            text("SELECT state, attempts, last_error FROM reminder_deliveries")
        ).one()
    assert tuple(row) == ("dead", 4, "push: HTTP 503")


def test_410_deletes_the_subscription(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    notifier: Notifier,
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/gone")
    subscribe(push_client, alice, receiver, "/push/kept")
    task_with_reminder(push_client, alice, "Gone")
    make_due(db_engine, push_settings)
    receiver.answers.append((410, {}))
    drain(notifier, db_engine)
    listed = push_client.get("/api/push-subscriptions", headers=alice.headers).json()["data"]
    assert [s["endpoint"] for s in listed] == [receiver.endpoint("/push/kept")]
    assert [r.path for r in receiver.received] == ["/push/kept"]
    assert count_rows(db_engine, "reminder_deliveries") == 0


def test_a_members_reminder_reaches_that_member_alone_and_not_after_removal(
    push_client: TestClient,
    alice: Account,
    bob: Account,
    receiver: PushReceiver,
    notifier: Notifier,
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/owner")
    subscribe(push_client, bob, receiver, "/push/member")
    made = push_client.post("/api/lists", json={"name": "Home"}, headers=alice.headers)
    list_id = made.json()["data"]["id"]
    join(push_client, alice, bob, list_id, "editor")
    due = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0).isoformat()
    task = push_client.post(
        "/api/tasks",
        json={"title": "Shared", "list_id": list_id, "due_date": due},
        headers=alice.headers,
    ).json()["data"]
    mine = push_client.patch(
        f"/api/tasks/{task['id']}", json={"reminders": [{"at": due}]}, headers=bob.headers
    )
    assert mine.status_code == 200, mine.text
    assert make_due(db_engine, push_settings) == 1
    drain(notifier, db_engine)
    assert [r.path for r in receiver.received] == ["/push/member"]  # never the owner's

    # Bob's next reminder fires, then he loses the list before it is sent: nobody gets it.
    receiver.received.clear()
    later = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0).isoformat()
    push_client.patch(
        f"/api/tasks/{task['id']}", json={"reminders": [{"at": later}]}, headers=bob.headers
    )
    assert make_due(db_engine, push_settings) == 1
    removed = push_client.delete(f"/api/lists/{list_id}/members/{bob.id}", headers=alice.headers)
    assert removed.status_code == 204, removed.text
    drain(notifier, db_engine)
    assert receiver.received == []
    assert count_rows(db_engine, "reminder_deliveries") == 0
