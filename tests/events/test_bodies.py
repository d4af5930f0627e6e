"""A reminder record (written by the database when a reminder fires) goes out through the same
sinks as a change: Dapr's reminders topic with the stored Reminder Event plus `event_id`, and
a signed webhook typed `reminder`. Built from a constructed outbox row, so the bodies are
pinned without waiting for a reminder to fall due (test_workers.py does that end to end)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from backend.config import Settings
from backend.events.sinks import configured_sinks, event_body
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
    with httpx.Client(timeout=5) as client:
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
