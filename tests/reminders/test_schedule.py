"""The reminder schedule follows the task in the writing transaction (migration 0010's
trigger), and firing turns each due reminder into exactly one `reminder` event."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.services.delivery.reminders import fire_due
from tests.conftest import Account


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def schedule(engine: Engine, task_id: int | None = None) -> list[tuple[datetime, str | None]]:
    """The task's reminder rows: (instant, outcome), in instant order."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT remind_at, outcome FROM task_reminders "
                "WHERE :t IS NULL OR task_id = :t ORDER BY remind_at"
            ),
            {"t": task_id},
        ).all()
    return [(row.remind_at, row.outcome) for row in rows]


def reminder_events(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT event_id, task FROM task_events WHERE type = 'reminder' ORDER BY id")
        ).all()
    return [{"event_id": str(row.event_id), **row.task} for row in rows]


def create(client: TestClient, account: Account, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/tasks", json={"title": "Call the bank", **fields}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def test_reminders_are_scheduled_before_the_due_date_and_at_instants(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    at = due - timedelta(days=1, hours=3)
    task = create(
        client,
        alice,
        due_date=iso(due),
        reminders=[{"minutes_before_due": 30}, {"minutes_before_due": 0}, {"at": iso(at)}],
    )
    assert schedule(db_engine, task["id"]) == [
        (at, None),
        (due - timedelta(minutes=30), None),
        (due, None),
    ]
    # A task without reminders has no schedule.
    plain = create(client, alice, due_date=iso(due))
    assert schedule(db_engine, plain["id"]) == []


def test_the_schedule_follows_due_date_completion_and_deletion(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    task = create(client, alice, due_date=iso(due), reminders=[{"minutes_before_due": 60}])
    path, headers = f"/api/tasks/{task['id']}", alice.headers
    later = due + timedelta(days=1)
    assert client.patch(path, json={"due_date": iso(later)}, headers=headers).status_code == 200
    assert schedule(db_engine, task["id"]) == [(later - timedelta(hours=1), None)]
    assert client.patch(path, json={"title": "renamed"}, headers=headers).status_code == 200
    assert schedule(db_engine, task["id"]) == [(later - timedelta(hours=1), None)]
    assert client.patch(f"{path}/complete", headers=headers).status_code == 200
    assert schedule(db_engine, task["id"]) == []  # completed: nothing to remind of
    assert client.patch(f"{path}/complete", headers=headers).status_code == 200
    assert schedule(db_engine, task["id"]) == [(later - timedelta(hours=1), None)]
    assert client.patch(path, json={"reminders": []}, headers=headers).status_code == 200
    assert schedule(db_engine, task["id"]) == []
    assert (
        client.patch(
            path, json={"reminders": [{"minutes_before_due": 5}]}, headers=headers
        ).status_code
        == 200
    )
    assert client.delete(path, headers=headers).status_code == 204
    assert schedule(db_engine) == []


def test_a_reminder_already_past_is_not_scheduled(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    due = datetime.now(UTC) + timedelta(minutes=10)
    task = create(
        client,
        alice,
        due_date=iso(due),
        reminders=[{"minutes_before_due": 60}, {"minutes_before_due": 5}],
    )
    assert [instant for instant, _ in schedule(db_engine, task["id"])] == [
        due - timedelta(minutes=5)
    ]


def make_due(engine: Engine, seconds_ago: float) -> None:
    """Move every unfired reminder into the past (as if its time had come)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE task_reminders SET remind_at = clock_timestamp() "
                "- make_interval(secs => :s) WHERE fired_at IS NULL"
            ),
            {"s": seconds_ago},
        )


def test_a_due_reminder_becomes_one_event_with_the_reminder_shape(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    task = create(client, alice, due_date=iso(due), reminders=[{"minutes_before_due": 30}])
    assert fire_due(db_engine, settings).fired == 0  # not due yet
    make_due(db_engine, 1)
    fired = fire_due(db_engine, settings)
    assert (fired.fired, fired.sent, fired.skipped) == (1, 1, 0)
    [event] = reminder_events(db_engine)
    [(instant, outcome)] = schedule(db_engine, task["id"])
    assert outcome == "sent"
    assert event == {
        "event_id": event["event_id"],
        "task_id": task["id"],
        "title": "Call the bank",
        "due_at": iso(due).replace("Z", ".000000Z"),
        "remind_at": instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "user_id": alice.id,
        "late": False,
    }
    assert fire_due(db_engine, settings).fired == 0  # never twice
    # Reminders are no changes: the feed does not show them, its positions skip them.
    feed = client.get("/api/tasks/changes", headers=alice.headers).json()
    assert [c["type"] for c in feed["data"]] == ["created"]


def test_late_and_skipped_reminders(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    due = datetime.now(UTC) + timedelta(days=3)
    create(client, alice, due_date=iso(due), reminders=[{"minutes_before_due": 1}])
    make_due(db_engine, settings.reminder_grace_seconds + 600)  # the worker was down
    assert fire_due(db_engine, settings).sent == 1
    assert reminder_events(db_engine)[0]["late"] is True
    create(client, alice, title="Old", due_date=iso(due), reminders=[{"minutes_before_due": 2}])
    make_due(db_engine, settings.reminder_max_lateness_seconds + 60)
    fired = fire_due(db_engine, settings)
    assert (fired.fired, fired.sent, fired.skipped) == (1, 0, 1)
    assert len(reminder_events(db_engine)) == 1
    assert [outcome for _, outcome in schedule(db_engine)] == ["skipped", "late"]


def test_racing_firers_send_each_reminder_once(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    for n in range(30):
        create(
            client,
            alice,
            title=f"t{n}",
            due_date=iso(due),
            reminders=[{"minutes_before_due": 10}, {"minutes_before_due": 20}],
        )
    make_due(db_engine, 1)
    sent: list[int] = []

    def fire() -> None:
        sent.append(fire_due(db_engine, settings, batch=7).sent)

    while len(reminder_events(db_engine)) < 60:
        racers = [threading.Thread(target=fire) for _ in range(4)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
    assert sum(sent) == 60
    events = reminder_events(db_engine)
    assert len({(e["task_id"], e["remind_at"]) for e in events}) == len(events) == 60


def test_a_completed_task_is_not_reminded_even_if_due(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    task = create(client, alice, due_date=iso(due), reminders=[{"minutes_before_due": 10}])
    make_due(db_engine, 1)
    client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    assert fire_due(db_engine, settings).fired == 0
    assert reminder_events(db_engine) == []


def test_the_next_occurrence_of_a_recurring_task_is_reminded_too(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=5)
    task = create(
        client,
        alice,
        due_date=iso(due),
        recurrence="daily",
        reminders=[{"minutes_before_due": 15}],
    )
    done = client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    assert done.status_code == 200, done.text
    with db_engine.connect() as conn:
        successor = conn.execute(
            text("SELECT id, due_date FROM tasks WHERE previous_task_id = :t"), {"t": task["id"]}
        ).one()
    assert successor.due_date == due + timedelta(days=1)
    assert schedule(db_engine, task["id"]) == []
    assert schedule(db_engine, successor.id) == [(successor.due_date - timedelta(minutes=15), None)]
