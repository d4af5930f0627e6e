"""A change event stored before a column existed is still served and delivered: absent keys
are read with the field declaration's defaults (`TaskPublic.from_stored`), one rule for every
column added later, so no backfill migration is needed."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.events.sinks import event_body
from backend.models.task_fields import event_defaults
from tests.changes.test_feed import poll
from tests.changes.test_outbox import create
from tests.conftest import Account

# Every field an old event may lack: those with a default or null as their value.
ADDED_LATER = (
    "description",
    "completed_at",
    "priority",
    "due_date",
    "tags",
    "recurrence",
    "time_zone",
    "next_due_date",
    "reminders",
    "series_id",
    "series_start",
    "previous_task_id",
)
AS_READ = {
    "description": None,
    "completed_at": None,
    "priority": "none",
    "due_date": None,
    "tags": [],
    "recurrence": None,
    "time_zone": "UTC",
    "next_due_date": None,
    "reminders": [],
    "series_id": None,
    "series_start": None,
    "previous_task_id": None,
}


def _strip_event(engine: Engine, task_id: int) -> None:
    with engine.begin() as conn:
        stored = conn.execute(
            text("UPDATE task_events SET task = task - CAST(:keys AS text[]) WHERE task_id = :t"),
            {"keys": list(ADDED_LATER), "t": task_id},
        )
        assert stored.rowcount == 1


def test_the_rule_gives_every_declared_field_a_value() -> None:
    defaults = event_defaults()
    assert {name: defaults[name] for name in ADDED_LATER} == AS_READ


def test_an_event_stored_without_some_fields_is_served_by_the_feed(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task_id = create(client, alice, "old event", priority="high", tags=["x"])
    _strip_event(db_engine, task_id)
    [change] = poll(client, alice)["data"]
    task: dict[str, Any] = change["task"]
    assert change["type"] == "created"
    assert {name: task[name] for name in ADDED_LATER} == AS_READ
    assert (task["id"], task["title"], task["is_overdue"]) == (task_id, "old event", False)


def test_an_event_stored_without_some_fields_is_delivered(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task_id = create(client, alice, "old event")
    _strip_event(db_engine, task_id)
    with db_engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT id, event_id, user_id, task_id, type, task, occurred_at "
                "FROM task_events WHERE task_id = :t"
            ),
            {"t": task_id},
        ).one()
    body = event_body(row)
    assert body["task_id"] == task_id
    assert {name: body["task_data"][name] for name in ADDED_LATER} == AS_READ
