"""A reminder reaches its person's browsers by Web Push (issue 72), end to end against a real
protocol peer on loopback: `PushReceiver` checks each POST's VAPID JWT against the key the API
publishes and decrypts its `aes128gcm` body with the browser's private key
(scripts/bench/reminder_peers.py). Faults (500, 429, 410), the bound, roles and a removed member;
two workers, and a worker killed mid-send.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.events.bounds import HttpClient
from backend.events.deliveries import reminder_lane
from backend.events.engine import Lane
from backend.events.health import WorkerMetrics
from backend.events.notify import topic
from backend.events.worker import Worker
from backend.main import create_app
from backend.services.delivery.reminders import fire_due
from scripts.bench.reminder_peers import Browser, PushReceiver
from tests.conftest import Account, count_rows
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
def notifier(db_engine: Engine, push_settings: Settings) -> Iterator[Lane]:
    with (
        ThreadPoolExecutor(4) as pool,
        closing(HttpClient(5.0)) as http,
    ):
        yield reminder_lane(db_engine, push_settings, WorkerMetrics(), pool, http, parallel=4)


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


def drain(notifier: Lane, engine: Engine, rounds: int = 100) -> None:
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
    notifier: Lane,
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
        worker.cycle()  # fires, leases and sends; does not wait for the send
        assert worker.reminders.in_flight == 1
        worker.finish()  # what the next cycles (or the worker's stop) do: records both lanes
    finally:
        worker.close()
    assert [r.payload["title"] for r in receiver.received] == ["Water the plants"]
    delivered = worker.metrics.notifications.labels("push", "delivered")._value.get()
    assert delivered == 1
    assert worker.reminders.in_flight == 0
    assert count_rows(db_engine, "reminder_deliveries") == 0
    # A worker with no event sink: the due events are done with unsent (no attempt counted,
    # none failed by a batch deadline of 0 s and retried); a later one waits for its cycle.
    with db_engine.connect() as conn:
        events = conn.execute(
            text("SELECT state, attempts, last_error FROM task_events ORDER BY id")
        ).all()
    assert events[0] == ("delivered", 0, None)
    assert all(tuple(e) in {("delivered", 0, None), ("pending", 0, None)} for e in events)


def test_500_and_429_are_retried_and_nothing_is_lost(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    notifier: Lane,
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
    notifier: Lane,
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
    notifier: Lane,
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/gone")
    subscribe(push_client, alice, receiver, "/push/kept")
    task_with_reminder(push_client, alice, "Gone")
    make_due(db_engine, push_settings)
    # The worker sends both pushes at once: the 410 is the gone endpoint's own answer.
    receiver.answers_at["/push/gone"] = deque([(410, {})])
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
    notifier: Lane,
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


# Two workers and a worker killed mid-send (specs/events.md, "At least once; a repeat is
# recognisable"): each push exactly once between two sinks, one leasing while the other is
# still sending; a sink killed after sending and before recording loses nothing, and the
# repeat carries the same `Topic` and `event_id`.

REMINDERS = 12
BATCH = 4


class Killed(BaseException):
    """The worker's process ending between the send and the record (SIGKILL, OOM)."""


@pytest.fixture
def sinks(db_engine: Engine, push_settings: Settings) -> Iterator[list[Lane]]:
    """Two workers' sinks, each with its own pool and HTTP client, small batches."""
    small = push_settings.model_copy(update={"event_batch_size": BATCH})
    with ExitStack() as stack:
        made = []
        for _ in range(2):
            pool = stack.enter_context(ThreadPoolExecutor(4))
            http = stack.enter_context(closing(HttpClient(5.0)))
            made.append(reminder_lane(db_engine, small, WorkerMetrics(), pool, http, parallel=4))
        yield made


def _due_reminders(
    client: TestClient, who: Account, engine: Engine, settings: Settings
) -> set[str]:
    for number in range(REMINDERS):
        task_with_reminder(client, who, f"Reminder {number}")
    assert make_due(engine, settings) == REMINDERS
    with engine.connect() as conn:
        events = conn.execute(text("SELECT event_id FROM task_events WHERE type = 'reminder'"))
        return {topic(row.event_id) for row in events}


def _topics(peer: PushReceiver) -> Counter[str]:
    for got in peer.received:
        assert got.headers["topic"] == topic(got.payload["event_id"])
    return Counter(got.headers["topic"] for got in peer.received)


def test_two_workers_push_each_reminder_exactly_once(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    sinks: list[Lane],
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/alice")
    topics = _due_reminders(push_client, alice, db_engine, push_settings)
    first, second = sinks
    # The first worker's batch is still being sent (its first push held at the receiver)
    # when the second leases: it takes the next batch, none of the first's.
    receiver.hold = release = threading.Event()
    with ThreadPoolExecutor(1) as background:
        sending = background.submit(first.run)
        assert receiver.arrived.wait(10)
        assert second.run() == BATCH
        release.set()
        assert sending.result(timeout=10) == BATCH
    for _ in range(REMINDERS):  # then both, in turns, until nothing is due (bounded)
        if first.run() + second.run() == 0:
            break
    assert _topics(receiver) == Counter(dict.fromkeys(topics, 1))
    assert count_rows(db_engine, "reminder_deliveries") == 0


def test_a_worker_killed_mid_send_loses_nothing_and_the_repeat_is_recognisable(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    sinks: list[Lane],
    db_engine: Engine,
    push_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscribe(push_client, alice, receiver, "/push/alice")
    topics = _due_reminders(push_client, alice, db_engine, push_settings)
    killed, survivor = sinks

    record = killed.queue.exchange

    def kill(db: Engine, settled: Any, lease: int, seconds: float) -> Any:
        if settled:  # the batch's outcomes, never recorded
            raise Killed
        return record(db, settled, lease, seconds)

    monkeypatch.setattr(killed.queue, "exchange", kill)
    with pytest.raises(Killed):
        killed.run()
    sent = _topics(receiver)
    assert len(sent) == BATCH and set(sent) <= topics
    # Its batch stays leased: the survivor takes only the others meanwhile (bounded).
    for _ in range(REMINDERS):
        if survivor.run() == 0:
            break
    with db_engine.connect() as conn:
        leased = conn.execute(
            text("SELECT count(*) FROM reminder_deliveries WHERE next_attempt_at > now()")
        ).scalar_one()
    assert leased == BATCH
    assert _topics(receiver) == Counter(dict.fromkeys(topics, 1))
    # The lease ends (moved to now rather than waited for): the survivor sends them again,
    # with the same Topic and event id, and nothing is left.
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE reminder_deliveries SET next_attempt_at = clock_timestamp()"))
    drain(survivor, db_engine)
    assert _topics(receiver) == Counter({t: 2 if t in sent else 1 for t in topics})
    assert count_rows(db_engine, "reminder_deliveries") == 0


def test_no_log_line_carries_a_push_endpoint(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    db_engine: Engine,
    push_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At DEBUG, every logger (httpcore's trace of the worker's client among them), a push
    that fails, is retried and then delivered: the endpoint's path, the subscription's
    capability, is in no line; its host may be."""
    capability = "/push/cXyZ-capability-9f8e7d6c5b4a"
    subscribe(push_client, alice, receiver, capability)
    task_with_reminder(push_client, alice, "Logged")
    assert make_due(db_engine, push_settings) == 1
    receiver.answers.extend([(500, {}), (429, {"Retry-After": "0"})])
    with ThreadPoolExecutor(4) as pool, closing(HttpClient(5.0)) as http:
        notifier = reminder_lane(db_engine, push_settings, WorkerMetrics(), pool, http, parallel=4)
        with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpcore"):
            drain(notifier, db_engine)
    assert len(receiver.received) == 1
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("send_request_headers.started") for line in lines)
    assert not [line for line in lines if "capability" in line]


def test_the_push_body_is_rfc_8291_aes128gcm_with_our_key_as_key_id() -> None:
    """http-ece directly (no pywebpush): the 86-byte header (16-byte salt, record size 4096,
    a 65-byte key id: our ephemeral P-256 public key, uncompressed) and a body the
    subscription's private key and auth secret decrypt."""
    import base64
    import os

    import http_ece
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from backend.events.notify import encrypt

    browser = ec.generate_private_key(ec.SECP256R1())
    point = browser.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    auth = os.urandom(16)

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    sealed = encrypt(b'{"type":"reminder"}', b64(point), b64(auth))
    salt, record_size, id_length = sealed[:16], sealed[16:20], sealed[20]
    key_id = sealed[21 : 21 + id_length]
    assert (len(salt), int.from_bytes(record_size, "big"), id_length) == (16, 4096, 65)
    assert key_id[0] == 0x04  # an uncompressed point
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key_id)  # a P-256 key
    opened = http_ece.decrypt(sealed, private_key=browser, auth_secret=auth, version="aes128gcm")
    assert opened == b'{"type":"reminder"}'


SETTINGS = "/api/notification-settings"


def _around_now(engine: Engine) -> dict[str, str]:
    """A window from an hour ago to an hour ahead on UTC's clock (across midnight or not)."""
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one().astimezone(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}


def test_a_push_in_quiet_hours_waits_for_the_windows_end_then_goes(
    push_client: TestClient,
    alice: Account,
    receiver: PushReceiver,
    notifier: Lane,
    db_engine: Engine,
    push_settings: Settings,
) -> None:
    subscribe(push_client, alice, receiver, "/push/alice")
    quiet = {"quiet_hours": _around_now(db_engine), "time_zone": "UTC"}
    assert push_client.patch(SETTINGS, json=quiet, headers=alice.headers).status_code == 200
    task_with_reminder(push_client, alice, "Sleep on it")
    assert make_due(db_engine, push_settings) == 1
    assert notifier.run() == 1  # leased, and held: not sent
    assert receiver.received == []
    with db_engine.connect() as conn:
        held = conn.execute(
            text(
                "SELECT state, attempts, next_attempt_at, quiet_until(user_id, now()) AS until "
                "FROM reminder_deliveries"
            )
        ).one()
    # Waiting for the window's end, its attempts untouched (the hold is not a failure).
    assert (held.state, held.attempts) == ("pending", 0)
    assert held.next_attempt_at == held.until and held.until > datetime.now(UTC)
    assert notifier.run() == 0  # not due again before the window ends
    # The window gone (the row due now), the push goes.
    assert (
        push_client.patch(SETTINGS, json={"quiet_hours": None}, headers=alice.headers).status_code
        == 200
    )
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE reminder_deliveries SET next_attempt_at = now()"))
    drain(notifier, db_engine)
    assert [r.payload["title"] for r in receiver.received] == ["Sleep on it"]
