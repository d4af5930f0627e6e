"""A reminder record (written by the database when a reminder fires) goes out through the same
sinks as a change: Dapr's reminders topic with the stored Reminder Event plus `event_id`, and
a signed webhook typed `reminder`. Built from a constructed outbox row, so the bodies are
pinned without waiting for a reminder to fall due (test_workers.py does that end to end). A
task's child's event names its row as the feed does."""

from __future__ import annotations

import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from standardwebhooks.webhooks import Webhook

from backend.config import Settings
from backend.events.bounds import HttpClient
from backend.events.sinks import configured_sinks, event_body
from tests.conftest import Account
from tests.events.conftest import SECRET, Receiver, delivery_settings


@dataclass(frozen=True)
class Row:
    """The columns of a `task_events` row that delivery reads (sinks.EventRow)."""

    id: int
    event_id: uuid.UUID
    user_id: str
    task_id: int
    type: str
    task: dict[str, Any] | None
    occurred_at: datetime


REMINDER_BODY = {
    "task_id": 42,
    "title": "Call the bank",
    "due_at": "2026-11-24T09:00:00.000000Z",
    "remind_at": "2026-11-24T08:30:00.000000Z",
    "user_id": "user-1",
    "late": False,
}


def test_a_reminder_goes_to_the_reminders_topic_and_to_webhooks_typed_reminder(
    settings: Settings, receiver: Receiver
) -> None:
    row = Row(
        id=7,
        event_id=uuid.uuid4(),
        user_id="user-1",
        task_id=42,
        type="reminder",
        task=REMINDER_BODY,
        occurred_at=datetime(2026, 11, 24, 8, 30, 0, 250000, tzinfo=UTC),
    )
    body = event_body(row)
    assert body == {**REMINDER_BODY, "event_id": str(row.event_id)}
    configured = delivery_settings(settings, receiver, dapr_reminders_topic="due-soon")
    with closing(HttpClient(5)) as client:
        for sink in configured_sinks(configured):
            sink.send(client, row, body)
    [published] = receiver.by_path("/v1.0/publish/")
    assert published.path == "/v1.0/publish/pubsub/due-soon"
    assert published.headers["Content-Type"] == "application/json"
    assert published.json() == body
    [hook] = receiver.by_path("/hook")
    verified = Webhook(SECRET).verify(hook.body, hook.headers)  # raises if the signature is off
    assert verified == {
        "type": "reminder",
        "timestamp": "2026-11-24T08:30:00.250000Z",
        "data": body,
    }
    assert hook.headers["webhook-id"] == str(row.event_id)


def test_a_childs_event_names_its_row_as_the_feed_does(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A webhook's (and Dapr's) body of a child's event carries the feed's `child`, read from
    the same `task_events` row: its kind and id, the deleted row's as it was."""
    cursor = client.get("/api/tasks", headers=alice.headers).json()["meta"]["changes_cursor"]
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice.headers).json()["data"]
    comments = f"/api/tasks/{task['id']}/comments"
    comment = client.post(comments, json={"body": "hi"}, headers=alice.headers).json()["data"]
    assert client.delete(f"{comments}/{comment['id']}", headers=alice.headers).status_code == 204
    feed = client.get("/api/tasks/changes", params={"cursor": cursor}, headers=alice.headers)
    entries = {e["event_id"]: e["child"] for e in feed.json()["data"] if e["child"]}
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM task_events WHERE type LIKE 'comment.%' ORDER BY id")
        ).all()
    bodies = [event_body(row) for row in rows]
    named = {"kind": "comment", "id": comment["id"]}
    assert [(b["event_type"], b["child"]) for b in bodies] == [
        ("comment.created", named),
        ("comment.deleted", named),
    ]
    assert {b["event_id"]: b["child"] for b in bodies} == entries
