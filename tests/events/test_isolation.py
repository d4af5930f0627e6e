"""One receiver's trouble costs only its own deliveries (issue 82, target 1), shown by counts:

- a webhook that never answers holds at most its bound of calls (`Receivers`: a fair share
  of the outbox lane's threads) while a healthy one gets every event once; an event it had
  no room for is not an attempt (its `attempts` count only the calls made to it);
- a task's later changes reach a healthy webhook while an earlier one still waits for a
  failing webhook, and each webhook gets a task's changes in order;
- a push service at its bound: its other pushes are deferred uncounted and not leased until
  it has room, while another service's pushes go.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings, WebhookTarget
from backend.events.bounds import HttpClient
from backend.events.deliveries import reminder_lane
from backend.events.engine import Receivers
from backend.events.health import WorkerMetrics
from backend.events.worker import PARALLEL_DELIVERIES
from scripts.bench.reminder_peers import Browser, PushReceiver
from tests.conftest import Account
from tests.events.conftest import (
    SECRET,
    Receiver,
    add_tasks,
    beside_a_stall,
    delivery_settings,
    make_worker,
    until,
)
from tests.events.test_bad_receivers import Stall, Watch, stall, watch, worker_engine
from tests.reminders.test_push_delivery import (
    make_due,
    push_client,
    push_settings,
    subscribe,
    task_with_reminder,
)

__all__ = ["push_client", "push_settings", "stall", "watch", "worker_engine"]

EVENTS = 40


def _running(engine: Engine, settings: Settings) -> tuple[threading.Event, threading.Thread, Any]:
    worker = make_worker(engine, settings)
    stop = threading.Event()
    loop = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    loop.start()
    return stop, loop, worker


def _stop(stop: threading.Event, loop: threading.Thread, worker: Any) -> None:
    stop.set()
    loop.join(60)
    worker.close()
    assert not loop.is_alive()


def test_a_stalled_webhook_holds_its_bound_and_the_healthy_one_gets_every_event(
    db_engine: Engine,
    worker_engine: Engine,
    settings: Settings,
    receiver: Receiver,
    watch: Watch,
    stall: Stall,
    alice: Account,
) -> None:
    bound = PARALLEL_DELIVERIES // 2  # two sinks: half the lane's threads each
    chosen = beside_a_stall(
        settings,
        receiver,
        stall.url,
        event_delivery_timeout_seconds=5,
        event_max_attempts=2,
    )
    add_tasks(db_engine, alice.id, EVENTS)
    stop, loop, worker = _running(worker_engine, chosen)
    try:
        until(
            lambda: len(receiver.by_path("/hook")) >= EVENTS and stall.open == bound,
            60,
            "every event at the healthy webhook, the stalled one at its bound",
        )
    finally:
        _stop(stop, loop, worker)
    hooks = receiver.by_path("/hook")
    assert len({h.headers["webhook-id"] for h in hooks}) == len(hooks) == EVENTS
    assert stall.most_open == bound
    with db_engine.connect() as conn:
        rows = conn.execute(text("SELECT attempts, delivered_to FROM task_events")).all()
    assert all(f"{receiver.url}/hook" in row.delivered_to for row in rows)
    # Only the calls made count: an event the stalled webhook had no room for was deferred
    # (a call the loaded test receiver cut short may count one more: a failed attempt).
    hook_failed = worker.metrics.registry.get_sample_value(
        "task_events_failed_attempts_total", {"sink": f"{receiver.url}/hook"}
    )
    assert stall.requests <= sum(row.attempts for row in rows)
    assert sum(row.attempts for row in rows) <= stall.requests + (hook_failed or 0)
    assert all(row.attempts <= 2 for row in rows)


def test_a_tasks_changes_reach_a_healthy_webhook_past_one_a_failing_webhook_waits_for(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    receiver.failing_path = "/down"
    chosen = delivery_settings(
        settings,
        receiver,
        dapr_http_endpoint=None,
        event_webhooks=[
            WebhookTarget(url=f"{receiver.url}/down", secret=SECRET),
            WebhookTarget(url=f"{receiver.url}/hook", secret=SECRET),
        ],
        # A failed call waits long (full jitter: almost surely past the test) for its retry.
        event_retry_base_seconds=3600,
        event_retry_max_seconds=3600,
        event_max_attempts=12,
    )
    (task_id,) = add_tasks(db_engine, alice.id, 1)
    for n in range(2):
        with db_engine.begin() as conn:
            conn.execute(
                text("UPDATE tasks SET title = :t WHERE id = :id"), {"t": n, "id": task_id}
            )
    with db_engine.connect() as conn:
        events = list(conn.execute(text("SELECT event_id FROM task_events ORDER BY id")).scalars())
    assert len(events) == 3
    stop, loop, worker = _running(db_engine, chosen)
    try:
        until(lambda: len(receiver.by_path("/hook")) >= 3, 30, "the task's changes")
    finally:
        _stop(stop, loop, worker)
    # The healthy webhook got the three in order, once each; the failing one only the first
    # (the others wait until it has the first, or the first is dead), tried once or more.
    assert [h.headers["webhook-id"] for h in receiver.by_path("/hook")] == [str(e) for e in events]
    tried = [r.headers["webhook-id"] for r in receiver.attempted if r.path == "/down"]
    assert tried and set(tried) == {str(events[0])}
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT state, attempts, delivered_to FROM task_events ORDER BY id")
        ).all()
    hook = f"{receiver.url}/hook"
    assert [(r.state, r.delivered_to) for r in rows] == [("pending", [hook])] * 3
    assert [r.attempts for r in rows] == [len(tried), 0, 0]


@pytest.fixture
def gated(receiver: Receiver) -> Iterator[Receiver]:
    receiver.gate = threading.Event()
    yield receiver
    receiver.gate.set()


def test_a_push_service_at_its_bound_defers_its_pushes_and_the_others_go(
    db_engine: Engine,
    push_settings: Settings,
    push_client: TestClient,
    gated: Receiver,
    alice: Account,
    bob: Account,
) -> None:
    slow = 4  # bob's endpoints at one push service that holds every call until the gate opens
    for n in range(slow):
        made = push_client.post(
            "/api/push-subscriptions",
            json=Browser().subscription(f"{gated.url}/slow/{n}"),
            headers=bob.headers,
        )
        assert made.status_code == 201, made.text
    task_with_reminder(push_client, bob, "Slow")
    key = push_client.get("/api/push/public-key").json()["data"]["public_key"]
    with (
        PushReceiver(key, {}) as healthy,
        ThreadPoolExecutor(4) as pool,
        closing(HttpClient(5.0)) as http,
    ):
        subscribe(push_client, alice, healthy, "/push/alice")
        task_with_reminder(push_client, alice, "Healthy")
        make_due(db_engine, push_settings)
        lane = reminder_lane(db_engine, push_settings, WorkerMetrics(), pool, http, parallel=4)
        bound = 2  # half the lane's 4 threads per push service
        assert lane.pump() == slow + 1
        # Alice's push went; the slow service holds its bound of calls, the others of
        # bob's came back deferred at once.
        until(lambda: len(healthy.received) == 1 and lane.sending == bound, 30, "the sends")
        assert len(gated.arrived) == bound
        # Recorded: alice's done with, the deferred not counted; the slow service still
        # full, so none of its rows is leased again.
        assert lane.pump() == 0
        with db_engine.connect() as conn:
            rows = conn.execute(
                text("SELECT user_id, attempts FROM reminder_deliveries ORDER BY attempts")
            ).all()
        assert [(r.user_id, r.attempts) for r in rows] == [(bob.id, 0)] * 2 + [(bob.id, 1)] * 2
        # The service answers: its two are recorded and the other two leased and sent.
        gated.gate.set()
        until(lambda: lane.sending == 0, 30, "the held calls")
        assert lane.pump() == slow - bound
        lane.finish()
    assert sorted(gated.arrived) == [f"/slow/{n}" for n in range(slow)]
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM reminder_deliveries")).scalar_one() == 0


def test_a_full_receiver_is_waited_for_only_while_it_answers() -> None:
    """In a burst the next call to a receiver that answers waits for a place; to one whose
    last call failed, none waits: the send is deferred at once."""
    receivers = Receivers(1, patience=60)
    began = receivers.enter("hook")
    assert began is not None
    receivers.leave("hook", began, ok=False)
    began = receivers.enter("hook")
    assert began is not None and receivers.enter("hook") is None  # failing: not waited for
    receivers.leave("hook", began, ok=True)  # answers again
    began = receivers.enter("hook")
    assert began is not None
    waited = ThreadPoolExecutor(1).submit(receivers.enter, "hook")
    until(lambda: waited.running(), 10, "the waiting send")
    assert not waited.done() and receivers.busy() == ["hook"]
    receivers.leave("hook", began, ok=True)
    assert waited.result(timeout=10) is not None
