"""Tasks due on a day (migration 0095; specs/api-contract.md, "Due on a day or at an instant"):
a plain `YYYY-MM-DD` is a day on the task's `time_zone` clock, stored as that day's start, and
shown back as the day; overdue once the day has ended there; the filters, the sort, the
recurrence, the reminders and a change of zone each read it as a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account

Task = dict[str, Any]
FAR = "Pacific/Auckland"  # UTC+12/+13: a day there is mostly another day in UTC


def create(client: TestClient, user: Account, **body: Any) -> Task:
    body.setdefault("title", "Task")
    response = client.post("/api/tasks", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def patch(client: TestClient, user: Account, task_id: int, **body: Any) -> Task:
    response = client.patch(f"/api/tasks/{task_id}", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def get(client: TestClient, user: Account, task_id: int) -> Task:
    response = client.get(f"/api/tasks/{task_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def listed(client: TestClient, user: Account, query: str = "") -> list[Task]:
    response = client.get(f"/api/tasks?limit=500&{query}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def start_of(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def stored(engine: Engine, task_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT due_date, all_day, time_zone FROM tasks WHERE id = :id"), {"id": task_id}
        ).one()


def test_a_plain_date_is_a_day_on_the_tasks_clock(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task = create(client, alice, due_date="2030-12-01", time_zone="America/New_York")
    assert task["due_date"] == "2030-12-01" and task["all_day"] is True
    row = stored(db_engine, task["id"])
    assert row.all_day and row.due_date == start_of(date(2030, 12, 1), "America/New_York")
    assert get(client, alice, task["id"]) == {**task, "is_overdue": False}
    assert [t["due_date"] for t in listed(client, alice)] == ["2030-12-01"]
    # An instant is still an instant, and a PATCH turns one into the other.
    moved = patch(client, alice, task["id"], due_date="2030-12-01T17:00:00+01:00")
    assert moved["due_date"] == "2030-12-01T16:00:00Z" and moved["all_day"] is False
    back = patch(client, alice, task["id"], due_date="2030-12-02")
    assert back["due_date"] == "2030-12-02" and back["all_day"] is True
    cleared = patch(client, alice, task["id"], due_date=None)
    assert cleared["due_date"] is None and cleared["all_day"] is False


def test_a_day_stays_the_same_day_when_the_zone_changes(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task = create(client, alice, due_date="2030-12-01", time_zone="America/Los_Angeles")
    moved = patch(client, alice, task["id"], time_zone=FAR)
    assert moved["due_date"] == "2030-12-01" and moved["time_zone"] == FAR
    assert stored(db_engine, task["id"]).due_date == start_of(date(2030, 12, 1), FAR)
    # Sent together, the day is read on the new zone's clock.
    both = patch(client, alice, task["id"], due_date="2030-12-05", time_zone="Europe/Berlin")
    assert both["due_date"] == "2030-12-05"
    assert stored(db_engine, task["id"]).due_date == start_of(date(2030, 12, 5), "Europe/Berlin")


def test_overdue_once_the_day_has_ended_in_its_zone(client: TestClient, alice: Account) -> None:
    today = datetime.now(ZoneInfo(FAR)).date()
    yesterday = today - timedelta(days=1)
    day_today = create(client, alice, title="today", due_date=today.isoformat(), time_zone=FAR)
    day_before = create(
        client, alice, title="yesterday", due_date=yesterday.isoformat(), time_zone=FAR
    )
    # The instant today's day started at is past: as an instant it is overdue, as a day not.
    instant = create(client, alice, title="instant", due_date=iso(start_of(today, FAR)))
    assert day_today["is_overdue"] is False
    assert day_before["is_overdue"] is True
    assert instant["is_overdue"] is True
    titles = {t["title"]: t["is_overdue"] for t in listed(client, alice)}
    assert titles == {"today": False, "yesterday": True, "instant": True}
    assert {t["title"] for t in listed(client, alice, "overdue=true")} == {"yesterday", "instant"}
    assert [t["title"] for t in listed(client, alice, "overdue=false")] == ["today"]
    stats = client.get("/api/tasks/stats", headers=alice.headers).json()["data"]
    assert stats["overdue"] == 2


def test_due_bounds_keep_a_day_by_its_start_and_its_end(client: TestClient, alice: Account) -> None:
    zone = "America/New_York"
    day = create(client, alice, title="day", due_date="2030-12-01", time_zone=zone)
    start = start_of(date(2030, 12, 1), zone)
    end = start_of(date(2030, 12, 2), zone)
    noon = create(client, alice, title="noon", due_date=iso(start + timedelta(hours=12)))
    assert day["due_date"] == "2030-12-01"

    def titles(query: str) -> set[str]:
        return {t["title"] for t in listed(client, alice, query)}

    # "Due that day": both bounds of it.
    assert titles(f"due_after={iso(start)}&due_before={iso(end)}") == {"day", "noon"}
    # A bound inside the day keeps the instants on its side, not the day.
    assert titles(f"due_before={iso(start + timedelta(hours=13))}") == {"noon"}
    assert titles(f"due_after={iso(start + timedelta(hours=1))}") == {"noon"}
    assert titles(f"due_before={iso(end)}") == {"day", "noon"}
    assert titles(f"due_after={iso(start)}") == {"day", "noon"}
    assert noon["due_date"].endswith("Z")


def test_a_day_sorts_at_its_start_among_instants(client: TestClient, alice: Account) -> None:
    zone = "Europe/Berlin"
    start = start_of(date(2030, 12, 1), zone)
    create(client, alice, title="after", due_date=iso(start + timedelta(minutes=1)))
    create(client, alice, title="day", due_date="2030-12-01", time_zone=zone)
    create(client, alice, title="before", due_date=iso(start - timedelta(minutes=1)))
    order = [t["title"] for t in listed(client, alice, "sort=due_date&order=asc")]
    assert order == ["before", "day", "after"]


def test_a_series_on_days_stays_on_days_across_a_clock_change(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    # New York springs forward on 2030-03-10: the days' starts are 23 hours apart there.
    zone = "America/New_York"
    first = create(
        client,
        alice,
        title="Water plants",
        due_date="2030-03-09",
        time_zone=zone,
        recurrence="FREQ=DAILY",
    )
    assert first["next_due_date"] == iso(start_of(date(2030, 3, 10), zone))
    sub = client.post(
        "/api/tasks",
        json={
            "title": "Fill can",
            "parent_id": first["id"],
            "due_date": "2030-03-09",
            "time_zone": zone,
        },
        headers=alice.headers,
    )
    assert sub.status_code == 201, sub.text
    done = client.patch(
        f"/api/tasks/{first['id']}/complete", json={"completed": True}, headers=alice.headers
    )
    assert done.status_code == 200, done.text
    pending = listed(client, alice, "status=pending")
    by_title = {t["title"]: t for t in pending}
    nxt = by_title["Water plants"]
    assert nxt["due_date"] == "2030-03-10" and nxt["all_day"] is True
    # The subtask's copy moved with it, a day later, still a day.
    assert by_title["Fill can"]["due_date"] == "2030-03-10"
    assert by_title["Fill can"]["all_day"] is True
    assert stored(db_engine, by_title["Fill can"]["id"]).due_date == start_of(
        date(2030, 3, 10), zone
    )


def test_minutes_before_due_count_back_from_nine_on_the_day(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    zone = "Asia/Kolkata"  # +05:30
    task = create(
        client,
        alice,
        due_date="2030-12-01",
        time_zone=zone,
        reminders=[{"minutes_before_due": 30}, {"minutes_before_due": 0}],
    )
    with db_engine.connect() as conn:
        remind = (
            conn.execute(
                text("SELECT remind_at FROM task_reminders WHERE task_id = :t ORDER BY remind_at"),
                {"t": task["id"]},
            )
            .scalars()
            .all()
        )
    nine = datetime(2030, 12, 1, 9, 0, tzinfo=ZoneInfo(zone))
    assert remind == [nine - timedelta(minutes=30), nine]
    # Moved to another zone, the same day's 09:00 there.
    patch(client, alice, task["id"], time_zone="America/Los_Angeles")
    with db_engine.connect() as conn:
        remind = (
            conn.execute(
                text("SELECT remind_at FROM task_reminders WHERE task_id = :t ORDER BY remind_at"),
                {"t": task["id"]},
            )
            .scalars()
            .all()
        )
    nine = datetime(2030, 12, 1, 9, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert remind == [nine - timedelta(minutes=30), nine]


def test_the_change_feed_and_undo_carry_the_day(client: TestClient, alice: Account) -> None:
    task = create(client, alice, due_date="2030-12-01", time_zone=FAR)
    patch(client, alice, task["id"], due_date="2030-12-03T10:00:00Z")
    changes = client.get("/api/tasks/changes", headers=alice.headers)
    assert changes.status_code == 200, changes.text
    seen = [c["task"]["due_date"] for c in changes.json()["data"] if c.get("task")]
    assert "2030-12-01" in seen and "2030-12-03T10:00:00Z" in seen


def test_bad_days_are_422(client: TestClient, alice: Account) -> None:
    for due in ("2030-02-30", "0042-01-01", "9999-01-01", "2030-12-01T10:00:00"):
        response = client.post(
            "/api/tasks", json={"title": "x", "due_date": due}, headers=alice.headers
        )
        assert response.status_code == 422, (due, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_an_undo_and_a_restore_bring_the_day_back(client: TestClient, alice: Account) -> None:
    task = create(client, alice, due_date="2030-12-01", time_zone=FAR)
    patch(client, alice, task["id"], due_date="2030-12-03T10:00:00Z")
    newest = client.get("/api/activity", params={"limit": 1}, headers=alice.headers).json()
    undone = client.post(f"/api/activity/{newest['data'][0]['id']}/undo", headers=alice.headers)
    assert undone.status_code < 300, undone.text
    back = get(client, alice, task["id"])
    assert (back["due_date"], back["all_day"]) == ("2030-12-01", True)
    deleted = client.delete(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text
    restored = client.post(f"/api/trash/{task['id']}/restore", headers=alice.headers)
    assert restored.status_code < 300, restored.text
    again = get(client, alice, task["id"])
    assert (again["due_date"], again["all_day"], again["time_zone"]) == ("2030-12-01", True, FAR)
