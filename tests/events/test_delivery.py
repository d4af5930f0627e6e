"""The worker delivers every change to Dapr's publish API and to signed webhooks, retries
failures with backoff, dead-letters what keeps failing, and the `events` commands show and
re-queue it."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from standardwebhooks.webhooks import Webhook

from backend.config import Settings, WebhookTarget
from backend.events import outbox
from backend.events.worker import Worker
from backend.services.delivery.reminders import fire_due
from tests.cli.helpers import closed_port, run_cli
from tests.conftest import TEST_SECRET, Account
from tests.events.conftest import (
    SECRET,
    Receiver,
    add_tasks,
    delivery_settings,
    event_states,
    make_worker,
    start_worker,
    until,
)


def test_a_change_reaches_dapr_and_the_webhook_signed(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    [task_id] = add_tasks(db_engine, alice.id, 1, "Buy milk")
    with db_engine.begin() as conn:
        conn.execute(
            text("UPDATE tasks SET completed = true, completed_at = now() WHERE id = :t"),
            {"t": task_id},
        )
        conn.execute(text("DELETE FROM tasks WHERE id = :t"), {"t": task_id})
    worker = make_worker(
        db_engine, delivery_settings(settings, receiver, dapr_api_token="dapr-token-123")
    )
    try:
        while worker.deliver_batch():
            pass
    finally:
        worker.close()
    dapr = receiver.by_path("/v1.0/publish/pubsub/task-events")
    assert [r.json()["event_type"] for r in dapr] == ["created", "completed", "deleted"]
    created = dapr[0].json()
    assert set(created) == {
        "event_id",
        "event_type",
        "task_id",
        "task_data",
        "changes",
        "actor_id",
        "user_id",
        "timestamp",
    }
    assert (created["task_id"], created["user_id"]) == (task_id, alice.id)
    # Written outside a request: no actor; what the completion changed, old and new.
    assert created["actor_id"] is None and created["changes"] is None
    assert dapr[1].json()["changes"]["completed"] == [False, True]
    assert created["task_data"]["title"] == "Buy milk 1" and created["timestamp"].endswith("Z")
    assert created["task_data"]["is_overdue"] is False  # the API's own task rendering
    assert dapr[2].json()["task_data"] is None
    assert all(r.headers["dapr-api-token"] == "dapr-token-123" for r in dapr)
    hooks = receiver.by_path("/hook")
    assert len(hooks) == 3
    for hook, published in zip(hooks, dapr, strict=True):
        verified = Webhook(SECRET).verify(hook.body, hook.headers)  # raises if forged
        assert verified["type"] == f"task.{published.json()['event_type']}"
        assert verified["data"] == published.json()
        assert hook.headers["webhook-id"] == published.json()["event_id"]
    forged = Webhook("whsec_" + "A" * 43)
    try:
        forged.verify(hooks[0].body, hooks[0].headers)
        raise AssertionError("a signature made with another secret verified")
    except Exception as exc:  # WebhookVerificationError
        assert "signature" in str(exc).lower()
    assert event_states(db_engine) == {"delivered": 3}


def test_failures_are_retried_with_backoff_then_dead_lettered_and_requeued(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account, database_url: str
) -> None:
    add_tasks(db_engine, alice.id, 1)
    receiver.status = 500
    chosen = delivery_settings(settings, receiver, event_max_attempts=3)
    worker = make_worker(db_engine, chosen)
    try:
        attempts = []
        while event_states(db_engine).get("dead", 0) == 0:
            if worker.deliver_batch():
                with db_engine.connect() as conn:
                    attempts.append(
                        conn.execute(
                            text("SELECT attempts, next_attempt_at FROM task_events")
                        ).one()
                    )
            time.sleep(0.02)
        assert [a[0] for a in attempts] == [1, 2, 3]
        # Each retry waits its backoff: no attempt reached the sink before the instant the
        # one before it set (compared, not timed: a slow machine only waits longer).
        sent = [r.at for r in receiver.attempted if r.path.startswith("/v1.0/publish")]
        assert len(sent) == 3
        for (_, retry_at), at in zip(attempts[:2], sent[1:], strict=True):
            assert at >= retry_at.timestamp(), (at, retry_at)
        with db_engine.connect() as conn:
            error = conn.execute(text("SELECT last_error FROM task_events")).scalar_one()
        assert "HTTP 500" in error
        env = {"DATABASE_URL": database_url}
        listed = run_cli("events", "dead", **env)
        assert listed.returncode == 0 and "HTTP 500" in listed.stdout, listed.stderr
        row_id = listed.stdout.split("\t")[0]
        status = run_cli("events", "status", "--max-lag", "3600", **env)
        assert "dead 1" in status.stdout
        receiver.status = 200
        requeued = run_cli("events", "requeue", row_id, **env)
        assert requeued.stdout.strip() == "requeued 1 event", requeued.stderr
        while worker.deliver_batch() == 0:
            time.sleep(0.02)
    finally:
        worker.close()
    assert event_states(db_engine) == {"delivered": 1}
    assert len(receiver.by_path("/v1.0/publish")) == 1


def test_timeouts_and_refused_connections_are_failures_too(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    add_tasks(db_engine, alice.id, 1)
    receiver.delay = 1.5
    worker = make_worker(
        db_engine, delivery_settings(settings, receiver, event_delivery_timeout_seconds=0.5)
    )
    try:
        assert worker.deliver_batch() == 1
    finally:
        worker.close()
    refused = delivery_settings(
        settings, receiver, dapr_http_endpoint=f"http://127.0.0.1:{closed_port()}"
    )
    worker = make_worker(db_engine, refused)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_events SET next_attempt_at = now()"))
    try:
        assert worker.deliver_batch() == 1
    finally:
        worker.close()
    with db_engine.connect() as conn:
        attempts, error, state = conn.execute(
            text("SELECT attempts, last_error, state FROM task_events")
        ).one()
    assert (attempts, state) == (2, "pending")
    assert "ConnectError" in error


def test_an_event_whose_last_attempt_left_no_outcome_is_dead_not_sent_once_more(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    """An event leased for its last attempt whose outcome was never recorded (its worker
    killed, its lease over) is made dead by the next lease, never sent a time more than
    `EVENT_MAX_ATTEMPTS` (issue 90); the others are delivered beside it."""
    add_tasks(db_engine, alice.id, 2)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_events SET attempts = 3 WHERE id = 1"))
    worker = make_worker(db_engine, delivery_settings(settings, receiver, event_max_attempts=3))
    try:
        assert worker.deliver_batch() == 1
    finally:
        worker.close()
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, state, attempts, last_error FROM task_events ORDER BY id")
        ).all()
    assert [(r.id, r.state, r.attempts) for r in rows] == [(1, "dead", 3), (2, "delivered", 1)]
    assert rows[0].last_error == "no outcome recorded for its last attempt (its lease ended)"
    assert len(receiver.by_path("/hook")) == len(receiver.by_path("/v1.0/publish")) == 1


def test_a_sink_that_accepted_is_not_sent_the_event_again(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    add_tasks(db_engine, alice.id, 1)
    unreachable = WebhookTarget(url=f"http://127.0.0.1:{closed_port()}/hook", secret=SECRET)
    broken_hook = delivery_settings(settings, receiver, event_webhooks=[unreachable])
    worker = make_worker(db_engine, broken_hook)
    try:
        worker.deliver_batch()
    finally:
        worker.close()
    with db_engine.connect() as conn:
        delivered_to = conn.execute(text("SELECT delivered_to FROM task_events")).scalar_one()
    assert delivered_to == ["dapr"]  # the webhook failed; Dapr is done
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_events SET next_attempt_at = now()"))
        # The unreachable webhook is configured nowhere any more: its registration lapsed
        # (else its events wait for it: test_sink_sets.py).
        conn.execute(text("UPDATE event_sinks SET seen_at = now() - interval '1 day'"))
    worker = make_worker(db_engine, delivery_settings(settings, receiver))
    try:
        assert worker.deliver_batch() == 1
    finally:
        worker.close()
    assert len(receiver.by_path("/v1.0/publish")) == 1  # Dapr got it once
    assert len(receiver.by_path("/hook")) == 1
    assert event_states(db_engine) == {"delivered": 1}


def test_status_health_and_metrics_report_the_backlog(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account, database_url: str
) -> None:
    add_tasks(db_engine, alice.id, 4)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_events SET occurred_at = now() - interval '10 minutes'"))
    behind = run_cli("events", "status", "--max-lag", "60", DATABASE_URL=database_url)
    assert behind.returncode == 1
    assert behind.stdout.startswith("pending 4, oldest pending 6")
    worker = make_worker(db_engine, delivery_settings(settings, receiver))
    try:
        worker.cycle()  # leases and sends, not waiting for the sends
        worker.finish()  # records them (what the next cycles do as they come back)
        worker.cycle()  # reads the backlog
        with db_engine.connect() as conn:
            assert outbox.backlog(conn).pending == 0
        _, body = worker.readiness.report()
        assert body["oldest_pending_seconds"] == 0
        worker.readiness.last_ok = time.monotonic()
        assert worker.readiness.report()[0] is True
        metrics = worker.metrics.registry
        assert metrics.get_sample_value("task_events_delivered_total", {"sink": "dapr"}) == 4
        assert metrics.get_sample_value("task_events_pending") == 0
        assert (
            metrics.get_sample_value("task_events_delivery_latency_seconds_count", {"sink": "dapr"})
            == 4
        )
    finally:
        worker.close()
    caught_up = run_cli("events", "status", DATABASE_URL=database_url)
    assert caught_up.returncode == 0 and caught_up.stdout.startswith("pending 0")


def test_a_worker_with_no_sink_starts_says_so_and_stops(database_url: str, tmp_path: Path) -> None:
    """It runs imports (a production API does not) and the trash's purge: no sink is no reason
    to refuse, but the log says it delivers nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAPR_HTTP_ENDPOINT", "EVENT_WEBHOOKS")}
    env.update(
        ENVIRONMENT="test",
        DATABASE_URL=database_url,
        JWT_SECRET=TEST_SECRET,
        WORKER_METRICS_PORT="0",
        WORKER_POLL_SECONDS="0.1",
    )
    log = tmp_path / "worker.log"
    process = start_worker(env, log)
    try:
        until(lambda: "worker started" in log.read_text(), 60, "started")
        assert "no event sink configured" in log.read_text()
        assert "delivers nothing" in log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        process.kill()


def test_bad_webhook_configuration_is_refused_at_start(database_url: str) -> None:
    for webhooks, message in (
        ('[{"url": "http://127.0.0.1:1/h", "secret": "short"}]', "whsec_"),
        ('[{"url": "ftp://example.com", "secret": "' + SECRET + '"}]', "URL"),
        ("not json", "EVENT_WEBHOOKS"),
        ('[{"url": "https://example.com:0/h", "secret": "' + SECRET + '"}]', "1-65535"),
        ('[{"url": "https://example.com:65536/h", "secret": "' + SECRET + '"}]', "port"),
    ):
        result = run_cli("worker", DATABASE_URL=database_url, EVENT_WEBHOOKS=webhooks)
        assert result.returncode == 2, result.stderr
        assert message.lower() in result.stderr.lower(), result.stderr
    production = run_cli(
        "worker",
        DATABASE_URL=database_url,
        ENVIRONMENT="production",
        EVENT_WEBHOOKS=json.dumps([{"url": "http://example.com/h", "secret": SECRET}]),
    )
    assert production.returncode == 2 and "https" in production.stderr


def test_list_events_reach_their_topic_and_the_webhook_in_order(
    client: TestClient, db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    """`list.created`, `list.updated`, `list.deleted` (migration 0019): the worker delivers a
    list's events in order, to DAPR_LIST_EVENTS_TOPIC and as signed `list.*` webhooks; the
    tasks deleted with the list are task events as ever."""
    created = client.post("/api/lists", json={"name": "Errands"}, headers=alice.headers)
    list_id = created.json()["data"]["id"]
    client.post("/api/tasks", json={"title": "stamps", "list_id": list_id}, headers=alice.headers)
    client.patch(f"/api/lists/{list_id}", json={"color": "#aabbcc"}, headers=alice.headers)
    assert client.delete(f"/api/lists/{list_id}", headers=alice.headers).status_code == 204
    worker = make_worker(
        db_engine, delivery_settings(settings, receiver, dapr_list_events_topic="lists")
    )
    try:
        while worker.deliver_batch():
            pass
    finally:
        worker.close()
    listed = [r.json() for r in receiver.by_path("/v1.0/publish/pubsub/lists")]
    assert [e["event_type"] for e in listed] == ["list.created", "list.updated", "list.deleted"]
    assert set(listed[0]) == {
        "event_id",
        "event_type",
        "list_id",
        "list_data",
        "changes",
        "actor_id",
        "user_id",
        "timestamp",
    }
    assert listed[0]["list_data"] == {
        key: value
        for key, value in created.json()["data"].items()
        if key not in ("task_count", "open_task_count", "role")  # the caller's, not the list's
    }
    assert listed[1]["list_data"]["color"] == "#aabbcc" and listed[2]["list_data"] is None
    assert {e["list_id"] for e in listed} == {list_id}
    tasks = [r.json()["event_type"] for r in receiver.by_path("/v1.0/publish/pubsub/task-events")]
    assert tasks == ["created", "deleted"]
    hooks = [Webhook(SECRET).verify(h.body, h.headers) for h in receiver.by_path("/hook")]
    assert [h["type"] for h in hooks if h["type"].startswith("list.")] == [
        "list.created",
        "list.updated",
        "list.deleted",
    ]
    assert event_states(db_engine) == {"delivered": 5}


def test_changes_also_reach_the_task_updates_topic_on_their_own_retries(
    client: TestClient, db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    """DAPR_TASK_UPDATES_TOPIC (specs/events.md, "Real-time sync"): every task and list
    change is published there as well, with the body its own topic gets; a reminder is not.
    A failing task-updates topic is retried alone: task-events never gets an event twice."""
    list_id = client.post("/api/lists", json={"name": "Bank"}, headers=alice.headers).json()[
        "data"
    ]["id"]
    due = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    task = client.post(
        "/api/tasks",
        json={"title": "Call", "list_id": list_id, "due_date": due, "reminders": [{"at": due}]},
        headers=alice.headers,
    ).json()["data"]
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_reminders SET remind_at = now() - interval '1 second'"))
    assert fire_due(db_engine, settings).sent == 1
    updates_path = "/v1.0/publish/pubsub/task-updates"
    receiver.failing_path = updates_path
    worker = make_worker(
        db_engine,
        delivery_settings(
            settings, receiver, event_webhooks=[], dapr_task_updates_topic="task-updates"
        ),
    )
    try:
        while worker.deliver_batch():
            pass
        # The changes failed on task-updates only; the reminder waits behind its task's
        # change (one task's events in order).
        assert event_states(db_engine) == {"pending": 3}
        receiver.failing_path = None
        until(
            lambda: worker.deliver_batch() >= 0 and event_states(db_engine) == {"delivered": 3},
            message="the retries on task-updates",
        )
    finally:
        worker.close()
    own = {
        path: [r.json() for r in receiver.by_path(f"/v1.0/publish/pubsub/{path}")]
        for path in ("task-events", "list-events", "reminders", "task-updates")
    }
    assert [e["event_type"] for e in own["task-events"]] == ["created"]
    assert own["task-events"][0]["task_id"] == task["id"]
    assert [e["event_type"] for e in own["list-events"]] == ["list.created"]
    assert [e["task_id"] for e in own["reminders"]] == [task["id"]]
    # The same bodies, once each; the reminder's event id is not among them.
    assert sorted(own["task-updates"], key=lambda e: e["event_id"]) == sorted(
        own["task-events"] + own["list-events"], key=lambda e: e["event_id"]
    )
    tried = [r.path.rsplit("/", 1)[1] for r in receiver.attempted]
    assert tried.count("task-updates") >= 2 + 2  # refused at least once each, then accepted
    assert sorted(t for t in tried if t != "task-updates") == [
        "list-events",
        "reminders",
        "task-events",
    ]


def test_no_log_line_carries_a_webhooks_query(
    db_engine: Engine,
    settings: Settings,
    receiver: Receiver,
    alice: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A receiver's credential in its webhook URL's query (`?token=...`) is in no log line at
    any level, DEBUG included (httpcore's trace of the worker's client among them), whether
    the call fails or is accepted; the worker names the webhook by its URL without the query."""
    add_tasks(db_engine, alice.id, 1, "Logged")
    url = f"{receiver.url}/hook?token=receiver-credential-5a4b3c"
    hooked = delivery_settings(
        settings, receiver, event_webhooks=[WebhookTarget(url=url, secret=SECRET)]
    )
    receiver.status = 500
    worker = make_worker(db_engine, hooked)
    try:
        with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpcore"):
            worker.deliver_batch()
            receiver.status = 200
            delivered = {"delivered": 1}
            until(lambda: worker.deliver_batch() == 0 and event_states(db_engine) == delivered)
    finally:
        worker.close()
    assert len(receiver.by_path("/hook?token=")) == 1
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("send_request_headers.started") for line in lines)
    assert not [line for line in lines if "receiver-credential" in line or "token=" in line]


def test_with_no_sink_due_events_are_done_with_in_one_statement_unsent(
    db_engine: Engine, settings: Settings, alice: Account
) -> None:
    """A worker run only for reminders (no Dapr, no webhook) reads no event back: each pump
    marks up to a window of due events delivered in one statement, counting no attempt."""
    add_tasks(db_engine, alice.id, 150, "Chore")
    worker = Worker(db_engine, settings.model_copy(update={"event_batch_size": 100}), [])
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db_engine, "before_cursor_execute", seen)
    try:
        assert worker.outbox.pump() == 100
        assert worker.outbox.in_flight == 0
        touched = [s for s in statements if "task_events" in s]
        assert len(touched) == 1 and "UPDATE task_events" in touched[0]
        assert "RETURNING" not in touched[0]
        assert event_states(db_engine) == {"delivered": 100, "pending": 50}
        assert worker.outbox.pump() == 50
    finally:
        event.remove(db_engine, "before_cursor_execute", seen)
        worker.close()
    with db_engine.connect() as conn:
        attempts = conn.execute(text("SELECT DISTINCT attempts FROM task_events")).scalars()
        assert list(attempts) == [0]
    assert event_states(db_engine) == {"delivered": 150}
