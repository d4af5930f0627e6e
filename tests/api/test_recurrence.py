"""Recurring tasks (issue 17): the rule, its time zone and next_due_date on every task route;
completing an occurrence creates exactly one next occurrence, whichever way it is completed;
the rule's evaluation (daylight saving, month ends, leap days, BYSETPOS, INTERVAL, COUNT,
UNTIL) seen through `GET /api/tasks/{id}/occurrences`; bad rules refused with nothing written.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from backend.models.task_fields import DERIVED
from tests.conftest import Account, bearer, count_rows, running_server
from tests.mcp.conftest import call_tool_rpc

BERLIN_9AM_BEFORE_SPRING = "2030-03-29T08:00:00Z"  # Friday 09:00 CET; CEST from Sunday 31st


def create(client: TestClient, user: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("title", "Water the plants")
    response = client.post("/api/tasks", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def get(client: TestClient, user: Account, task_id: int) -> dict[str, Any]:
    response = client.get(f"/api/tasks/{task_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def listed(client: TestClient, user: Account, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/api/tasks?sort=due_date&limit=500{query}", headers=user.headers)
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["data"]
    return tasks


def occurrences(client: TestClient, user: Account, task_id: int, count: int = 5) -> list[str]:
    response = client.get(f"/api/tasks/{task_id}/occurrences?count={count}", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert body["task_id"] == task_id
    dates: list[str] = body["occurrences"]
    return dates


def successors(client: TestClient, user: Account, task: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in listed(client, user) if t["previous_task_id"] == task["id"]]


def complete(client: TestClient, user: Account, task_id: int) -> dict[str, Any]:
    response = client.patch(
        f"/api/tasks/{task_id}/complete", json={"completed": True}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


# --- the fields ------------------------------------------------------------------------------


def test_a_recurring_task_shows_its_rule_zone_series_and_next_due_date(
    client: TestClient, alice: Account
) -> None:
    task = create(
        client,
        alice,
        recurrence="RRULE:FREQ=WEEKLY;BYDAY=MO,TH",
        time_zone="Europe/Berlin",
        due_date="2030-01-07T08:00:00Z",  # Monday 09:00 in Berlin
        reminders=[{"minutes_before_due": 30}, {"at": "2030-01-06T18:00:00+01:00"}],
    )
    assert task["recurrence"] == "FREQ=WEEKLY;BYDAY=MO,TH"
    assert task["time_zone"] == "Europe/Berlin"
    assert task["due_date"] == task["series_start"] == "2030-01-07T08:00:00Z"
    assert task["next_due_date"] == "2030-01-10T08:00:00Z"  # Thursday 09:00
    assert task["reminders"] == [{"minutes_before_due": 30}, {"at": "2030-01-06T17:00:00Z"}]
    assert task["series_id"] is not None and task["previous_task_id"] is None
    # The single-task encoder and the listing's encoder agree.
    assert get(client, alice, task["id"]) == task
    assert listed(client, alice) == [task]


def test_a_task_that_does_not_recur_has_no_series(client: TestClient, alice: Account) -> None:
    task = create(client, alice, due_date="2030-01-07")
    assert task["recurrence"] is None and task["next_due_date"] is None
    assert task["series_id"] is None and task["series_start"] is None
    assert task["time_zone"] == "UTC" and task["reminders"] == []
    assert occurrences(client, alice, task["id"]) == []


@pytest.mark.parametrize(
    ("shorthand", "rule", "next_due"),
    [
        ("daily", "FREQ=DAILY", "2030-01-05T09:00:00Z"),
        ("weekdays", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "2030-01-07T09:00:00Z"),
        ("weekly", "FREQ=WEEKLY", "2030-01-11T09:00:00Z"),
        ("monthly", "FREQ=MONTHLY", "2030-02-04T09:00:00Z"),
        ("yearly", "FREQ=YEARLY", "2031-01-04T09:00:00Z"),
        ("Weekdays", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "2030-01-07T09:00:00Z"),
    ],
)
def test_shorthands_are_stored_as_their_rule(
    client: TestClient, alice: Account, shorthand: str, rule: str, next_due: str
) -> None:
    # Friday 4 January 2030, 09:00 UTC.
    task = create(client, alice, recurrence=shorthand, due_date="2030-01-04T09:00:00Z")
    assert task["recurrence"] == rule
    assert task["next_due_date"] == next_due


def test_a_lower_case_rule_is_stored_upper_case(client: TestClient, alice: Account) -> None:
    task = create(client, alice, recurrence="freq=monthly;bymonthday=-1", due_date="2030-01-31")
    assert task["recurrence"] == "FREQ=MONTHLY;BYMONTHDAY=-1"
    assert task["next_due_date"] == "2030-02-28T00:00:00Z"


# --- refused: 422 saying why, nothing written ----------------------------------------------

BAD_RULES = [
    ("FREQ=SECONDLY", "more often than hourly"),
    ("FREQ=MINUTELY;INTERVAL=90", "more often than hourly"),
    ("FREQ=DAILY;BYHOUR=9,10;BYMINUTE=0,30", "more often than hourly"),
    ("FREQ=HOURLY;BYHOUR=8,9,10;BYSECOND=0,1", "more often than hourly"),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31", "no occurrence"),
    ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "no occurrence"),
    ("FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4,6,9,11", "no occurrence"),
    ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", "no occurrence"),  # due on a Tuesday: never a Monday
    ("FREQ=DAILY;COUNT=1", "no occurrence"),
    ("FREQ=DAILY;UNTIL=20290101T000000Z", "no occurrence"),
    ("FREQ=DAILY;COUNT=3;UNTIL=20310101T000000Z", "COUNT and UNTIL"),
    ("DTSTART:20300101T090000Z\nRRULE:FREQ=DAILY", "String should match pattern"),
    ("FREQ=DAILY;DTSTART=20300101T090000Z", "DTSTART"),
    ("RRULE:FREQ=DAILY;EXDATE:20300102", "one RRULE line"),
    ("FREQ=DAILY\u0000", "String should match pattern"),
    ("FREQ=DAILY;BYMONTH=13", "BYMONTH values must be 1..12"),
    ("FREQ=DAILY;BYHOUR=24", "BYHOUR values must be 0..23"),
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be 1..1000"),
    ("FREQ=DAILY;INTERVAL=99999999999", "INTERVAL must be a whole number"),
    ("FREQ=DAILY;FREQ=WEEKLY", "more than once"),
    ("FREQ=DAILY;BYEASTER=0", "unknown rule part BYEASTER"),
    ("FREQ=WEEKLY;BYDAY=1MO", "numbered BYDAY values"),
    ("FREQ=WEEKLY;BYMONTHDAY=1", "cannot be used with FREQ=WEEKLY"),
    ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL must be a date"),
    ("FREQ=DAILY;BYDAY=XX", "BYDAY values are MO..SU"),
    ("INTERVAL=2", "FREQ is required"),
    ("FREQ=FORTNIGHTLY", "FREQ must be"),
    ("every day", "String should match pattern"),
    ("garbage", "NAME=VALUE"),
    ("FREQ=DAILY;", "NAME=VALUE"),
    ("F" * 501, "at most 500 characters"),
    ("FREQ=DAILY;BYHOUR=" + ",".join(["9"] * 5000), "at most 500 characters"),
    ("", "String should match pattern"),
]


@pytest.mark.parametrize(("rule", "why"), BAD_RULES, ids=[r[:40] for r, _ in BAD_RULES])
def test_a_refused_rule_is_a_422_that_says_why_and_writes_nothing(
    client: TestClient, alice: Account, db_engine: Engine, rule: str, why: str
) -> None:
    due = "2030-01-08T09:00:00Z"  # a Tuesday
    response = client.post(
        "/api/tasks",
        json={"title": "t", "recurrence": rule, "due_date": due},
        headers=alice.headers,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [d["field"] for d in error["details"]] == ["body.recurrence"]
    assert why in error["details"][0]["message"], error
    assert count_rows(db_engine, "tasks") == 0
    # The same on PATCH and PUT of an existing task, which stays as it was.
    task = create(client, alice, due_date=due)
    patched = client.patch(
        f"/api/tasks/{task['id']}", json={"recurrence": rule}, headers=alice.headers
    )
    replaced = client.put(
        f"/api/tasks/{task['id']}",
        json={"title": "t", "recurrence": rule, "due_date": due},
        headers=alice.headers,
    )
    assert patched.status_code == replaced.status_code == 422
    assert get(client, alice, task["id"]) == task


def test_a_rule_needs_a_due_date(client: TestClient, alice: Account, db_engine: Engine) -> None:
    response = client.post(
        "/api/tasks", json={"title": "t", "recurrence": "daily"}, headers=alice.headers
    )
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "body.due_date" and "needs a due_date" in detail["message"]
    assert count_rows(db_engine, "tasks") == 0
    plain = create(client, alice)
    patched = client.patch(
        f"/api/tasks/{plain['id']}", json={"recurrence": "daily"}, headers=alice.headers
    )
    assert patched.status_code == 422
    recurring = create(client, alice, recurrence="daily", due_date="2030-01-01")
    cleared = client.patch(
        f"/api/tasks/{recurring['id']}", json={"due_date": None}, headers=alice.headers
    )
    assert cleared.status_code == 422
    assert cleared.json()["error"]["details"][0]["field"] == "body.due_date"
    assert get(client, alice, recurring["id"]) == recurring


@pytest.mark.parametrize(
    "zone",
    [
        *("Mars/Olympus_Mons", "europe/berlin", "", "Europe/Berlin\u0000", "../../etc/passwd"),
        *(5, None, ["UTC"], {"name": "UTC"}),
    ],
)
def test_an_unknown_time_zone_is_refused_in_one_short_message(
    client: TestClient, alice: Account, zone: Any
) -> None:
    # Short: not the enum's own error, which would list all ~600 names.
    response = client.post(
        "/api/tasks", json={"title": "t", "time_zone": zone}, headers=alice.headers
    )
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "body.time_zone"
    assert "IANA time zone" in detail["message"] and len(detail["message"]) < 200


@pytest.mark.parametrize(
    ("reminders", "field"),
    [
        ([{"minutes_before_due": 1}] * 6, "body.reminders"),
        ([{"minutes_before_due": 40321}], "body.reminders.0.MinutesBeforeDue.minutes_before_due"),
        ([{"minutes_before_due": -1}], "body.reminders.0.MinutesBeforeDue.minutes_before_due"),
        ([{"minutes_before_due": "30"}], "body.reminders.0.MinutesBeforeDue.minutes_before_due"),
        ([{"minutes_before_due": 5, "at": "2030-01-01"}], "body.reminders.0.MinutesBeforeDue.at"),
        ([{"at": "0042-01-01T00:00:00Z"}], "body.reminders.0.ReminderAt.at"),
        ([{}], "body.reminders.0.MinutesBeforeDue.minutes_before_due"),
        ({"minutes_before_due": 5}, "body.reminders"),
    ],
)
def test_bad_reminders_are_refused(
    client: TestClient, alice: Account, reminders: Any, field: str
) -> None:
    response = client.post(
        "/api/tasks",
        json={"title": "t", "due_date": "2030-01-01", "reminders": reminders},
        headers=alice.headers,
    )
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_a_reminder_before_the_due_date_needs_one(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/api/tasks",
        json={"title": "t", "reminders": [{"minutes_before_due": 10}]},
        headers=alice.headers,
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "body.reminders"
    task = create(client, alice, due_date="2030-01-01", reminders=[{"minutes_before_due": 10}])
    cleared = client.patch(
        f"/api/tasks/{task['id']}", json={"due_date": None}, headers=alice.headers
    )
    assert cleared.status_code == 422
    # An absolute reminder needs none; duplicates are dropped; the order is kept.
    task = create(
        client, alice, reminders=[{"at": "2030-01-01T10:00:00+02:00"}, {"at": "2030-01-01T08:00Z"}]
    )
    assert task["reminders"] == [{"at": "2030-01-01T08:00:00Z"}]
    changed = client.patch(
        f"/api/tasks/{task['id']}", json={"reminders": []}, headers=alice.headers
    )
    assert changed.json()["data"]["reminders"] == []


# --- evaluation: what the rule gives, through the preview --------------------------------

EVALUATIONS = [
    # Berlin, 09:00 local: CET (UTC+1) until 31 March 2030, then CEST (UTC+2).
    (
        "daily",
        "Europe/Berlin",
        BERLIN_9AM_BEFORE_SPRING,
        ["2030-03-30T08:00:00Z", "2030-03-31T07:00:00Z", "2030-04-01T07:00:00Z"],
    ),
    # ... and back to CET on 27 October 2030.
    (
        "daily",
        "Europe/Berlin",
        "2030-10-25T07:00:00Z",
        ["2030-10-26T07:00:00Z", "2030-10-27T08:00:00Z", "2030-10-28T08:00:00Z"],
    ),
    # New York, 08:00 local: EST (UTC-5) to EDT (UTC-4) on 10 March 2030, back on 3 November.
    (
        "daily",
        "America/New_York",
        "2030-03-09T13:00:00Z",
        ["2030-03-10T12:00:00Z", "2030-03-11T12:00:00Z"],
    ),
    (
        "weekly",
        "America/New_York",
        "2030-10-28T12:00:00Z",
        ["2030-11-04T13:00:00Z", "2030-11-11T13:00:00Z"],
    ),
    # The same rule in UTC keeps the UTC time instead.
    ("daily", "UTC", BERLIN_9AM_BEFORE_SPRING, ["2030-03-30T08:00:00Z", "2030-03-31T08:00:00Z"]),
    # 02:30 does not exist in Berlin on 31 March 2030: the instant an hour later (03:30 CEST).
    (
        "FREQ=DAILY",
        "Europe/Berlin",
        "2030-03-30T01:30:00Z",
        ["2030-03-31T01:30:00Z", "2030-04-01T00:30:00Z"],
    ),
    # 02:30 exists twice on 27 October 2030: the first (CEST).
    (
        "FREQ=DAILY",
        "Europe/Berlin",
        "2030-10-26T00:30:00Z",
        ["2030-10-27T00:30:00Z", "2030-10-28T01:30:00Z"],
    ),
    # Day 31: only the months that have one. Day -1: every month's last.
    (
        "FREQ=MONTHLY;BYMONTHDAY=31",
        "UTC",
        "2030-01-31",
        ["2030-03-31T00:00:00Z", "2030-05-31T00:00:00Z", "2030-07-31T00:00:00Z"],
    ),
    (
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "UTC",
        "2030-01-31",
        ["2030-02-28T00:00:00Z", "2030-03-31T00:00:00Z", "2030-04-30T00:00:00Z"],
    ),
    (
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "UTC",
        "2031-12-31",
        ["2032-01-31T00:00:00Z", "2032-02-29T00:00:00Z"],
    ),
    # 29 February, yearly: leap years only (and 2100 is not one).
    (
        "yearly",
        "UTC",
        "2092-02-29T12:00:00Z",
        ["2096-02-29T12:00:00Z", "2104-02-29T12:00:00Z"],
    ),
    # The last weekday of each month.
    (
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "UTC",
        "2030-01-31T16:00:00Z",
        ["2030-02-28T16:00:00Z", "2030-03-29T16:00:00Z", "2030-04-30T16:00:00Z"],
    ),
    # Every other week, Monday and Thursday (from Monday 7 January 2030).
    (
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
        "UTC",
        "2030-01-07T09:00:00Z",
        ["2030-01-10T09:00:00Z", "2030-01-21T09:00:00Z", "2030-01-24T09:00:00Z"],
    ),
    # COUNT counts from the series' start, the start included: three occurrences in all.
    ("FREQ=DAILY;COUNT=3", "UTC", "2030-01-01", ["2030-01-02T00:00:00Z", "2030-01-03T00:00:00Z"]),
    # UNTIL is inclusive: a UTC date-time, or a date (that whole local day).
    (
        "FREQ=DAILY;UNTIL=20300103T000000Z",
        "UTC",
        "2030-01-01",
        ["2030-01-02T00:00:00Z", "2030-01-03T00:00:00Z"],
    ),
    (
        "FREQ=DAILY;UNTIL=20300102",
        "Pacific/Auckland",
        "2029-12-31T20:00:00Z",  # 09:00 on 1 January in Auckland
        ["2030-01-01T20:00:00Z"],
    ),
    # Hourly, the most frequent allowed.
    ("FREQ=HOURLY;INTERVAL=6", "UTC", "2030-01-01", ["2030-01-01T06:00:00Z"]),
]


@pytest.mark.parametrize(
    ("rule", "zone", "due", "expected"),
    EVALUATIONS,
    ids=[f"{r} {z} {d}" for r, z, d, _ in EVALUATIONS],
)
def test_the_rule_is_evaluated_on_the_local_clock(
    client: TestClient, alice: Account, rule: str, zone: str, due: str, expected: list[str]
) -> None:
    task = create(client, alice, recurrence=rule, time_zone=zone, due_date=due)
    assert task["next_due_date"] == expected[0]
    preview = occurrences(client, alice, task["id"], count=len(expected) + 1)
    if "COUNT" in rule or "UNTIL" in rule:
        assert preview == expected  # and then the series ends
    else:
        assert preview[: len(expected)] == expected and len(preview) == len(expected) + 1


def test_the_series_ends_with_count_and_until(client: TestClient, alice: Account) -> None:
    for rule in ("FREQ=DAILY;COUNT=3", "FREQ=DAILY;UNTIL=20300103T000000Z"):
        first = create(client, alice, title=rule, recurrence=rule, due_date="2030-01-01")
        second = next(t for t in successors(client, alice, complete(client, alice, first["id"])))
        assert second["due_date"] == "2030-01-02"  # a day: the series stays on days
        third = successors(client, alice, complete(client, alice, second["id"]))[0]
        assert third["due_date"] == "2030-01-03"
        assert third["next_due_date"] is None
        assert occurrences(client, alice, third["id"]) == []
        assert successors(client, alice, complete(client, alice, third["id"])) == []
    assert len(listed(client, alice)) == 6


def test_the_preview_is_bounded_and_answers_like_get(
    client: TestClient, alice: Account, bob: Account
) -> None:
    task = create(client, alice, recurrence="daily", due_date="2030-01-01")
    assert len(occurrences(client, alice, task["id"], count=100)) == 100
    assert len(occurrences(client, alice, task["id"], count=1)) == 1
    for bad in ("0", "101", "-1", "1.0", "ten", "5_0"):
        response = client.get(
            f"/api/tasks/{task['id']}/occurrences?count={bad}", headers=alice.headers
        )
        assert response.status_code == 422, (bad, response.text)
    default = client.get(f"/api/tasks/{task['id']}/occurrences", headers=alice.headers)
    assert len(default.json()["data"]["occurrences"]) == 10
    assert default.json()["data"]["time_zone"] == "UTC"
    foreign = client.get(f"/api/tasks/{task['id']}/occurrences", headers=bob.headers)
    missing = client.get(f"/api/tasks/{task['id'] + 1000}/occurrences", headers=bob.headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert client.get(f"/api/tasks/{task['id']}/occurrences").status_code == 401
    bad_token = {"Authorization": "Bearer not-a-token"}
    assert client.get(f"/api/tasks/{task['id']}/occurrences", headers=bad_token).status_code == 401
    twin = client.get(f"/api/{alice.id}/tasks/{task['id']}/occurrences", headers=alice.headers)
    assert twin.json() == default.json()


# --- completing creates the next occurrence -----------------------------------------------


def _complete_by(way: str, client: TestClient, user: Account, task: dict[str, Any]) -> None:
    task_id = task["id"]
    if way == "toggle":
        response = client.patch(f"/api/tasks/{task_id}/complete", headers=user.headers)
    elif way == "set":
        response = client.patch(
            f"/api/tasks/{task_id}/complete", json={"completed": True}, headers=user.headers
        )
    elif way == "patch":
        response = client.patch(
            f"/api/tasks/{task_id}", json={"completed": True}, headers=user.headers
        )
    elif way == "put":
        body = {k: task[k] for k in ("title", "description", "priority", "due_date", "tags")}
        body |= {k: task[k] for k in ("recurrence", "time_zone", "reminders")}
        response = client.put(
            f"/api/tasks/{task_id}", json={**body, "completed": True}, headers=user.headers
        )
    elif way == "put-whole":  # a frontend sending the task back as it got it
        response = client.put(
            f"/api/tasks/{task_id}", json={**task, "completed": True}, headers=user.headers
        )
    elif way == "bulk":
        response = client.post(
            "/api/tasks/bulk",
            json={"operations": [{"op": "complete", "id": task_id}]},
            headers=user.headers,
        )
    else:
        raise AssertionError(way)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("way", ["toggle", "set", "patch", "put", "put-whole", "bulk"])
def test_completing_creates_the_next_occurrence(
    client: TestClient, alice: Account, way: str
) -> None:
    first = create(
        client,
        alice,
        title="Team report",
        description="Numbers for the week",
        priority="high",
        tags=["work"],
        recurrence="FREQ=WEEKLY;BYDAY=MO,TH",
        time_zone="Europe/Berlin",
        due_date="2030-03-28T08:00:00Z",  # Thursday 09:00 CET
        reminders=[{"minutes_before_due": 60}, {"at": "2030-03-27T17:00:00Z"}],
    )
    _complete_by(way, client, alice, first)
    done = get(client, alice, first["id"])
    assert done["completed"] is True
    [following] = successors(client, alice, first)
    # A copy, pending, due at the completed one's next_due_date (Monday 09:00, now CEST).
    for field in ("title", "description", "priority", "tags", "recurrence", "time_zone"):
        assert following[field] == first[field]
    assert following["series_id"] == first["series_id"]
    assert following["series_start"] == first["series_start"]
    assert following["due_date"] == first["next_due_date"] == "2030-04-01T07:00:00Z"
    assert following["next_due_date"] == "2030-04-04T07:00:00Z"
    assert following["completed"] is False and following["completed_at"] is None
    # The relative reminder is copied; the absolute one moves with the due date.
    assert following["reminders"] == [
        {"minutes_before_due": 60},
        {"at": "2030-03-31T16:00:00Z"},  # 15 hours before, as before
    ]
    assert len(listed(client, alice)) == 2


def test_reopening_creates_none_and_completing_again_no_second(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task = create(client, alice, recurrence="daily", due_date="2030-01-01")
    for _ in range(3):
        complete(client, alice, task["id"])
        reopened = client.patch(
            f"/api/tasks/{task['id']}/complete", json={"completed": False}, headers=alice.headers
        )
        assert reopened.status_code == 200
    for _ in range(4):  # toggles: complete, reopen, complete, reopen
        assert client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers).is_success
    complete(client, alice, task["id"])
    complete(client, alice, task["id"])  # already completed: stays so
    assert len(successors(client, alice, task)) == 1
    assert count_rows(db_engine, "tasks") == 2
    # Reopening alone creates none.
    other = create(client, alice, recurrence="daily", due_date="2030-01-01", completed=True)
    client.patch(
        f"/api/tasks/{other['id']}/complete", json={"completed": False}, headers=alice.headers
    )
    assert successors(client, alice, other) == []


def test_a_task_created_completed_is_no_completion(client: TestClient, alice: Account) -> None:
    task = create(client, alice, recurrence="daily", due_date="2030-01-01", completed=True)
    assert successors(client, alice, task) == []
    # Editing an already completed occurrence completes nothing either.
    response = client.patch(
        f"/api/tasks/{task['id']}", json={"title": "x", "completed": True}, headers=alice.headers
    )
    assert response.status_code == 200
    assert successors(client, alice, task) == []


def test_the_chain_goes_on_occurrence_after_occurrence(client: TestClient, alice: Account) -> None:
    task = create(client, alice, recurrence="weekdays", due_date="2030-01-03T17:00:00Z")  # Thu
    dues = [task["due_date"]]
    for _ in range(4):
        complete(client, alice, task["id"])
        [task] = successors(client, alice, task)
        dues.append(task["due_date"])
    assert dues == [
        "2030-01-03T17:00:00Z",
        "2030-01-04T17:00:00Z",
        "2030-01-07T17:00:00Z",
        "2030-01-08T17:00:00Z",
        "2030-01-09T17:00:00Z",
    ]
    assert len({t["series_id"] for t in listed(client, alice)}) == 1


def test_a_postponed_occurrence_is_followed_by_the_rules_next_one(
    client: TestClient, alice: Account
) -> None:
    task = create(client, alice, recurrence="FREQ=WEEKLY;BYDAY=MO", due_date="2030-01-07T09:00:00Z")
    moved = client.patch(
        f"/api/tasks/{task['id']}", json={"due_date": "2030-01-16T09:00:00Z"}, headers=alice.headers
    ).json()["data"]
    # The series keeps its start and rhythm: after Wednesday the 16th comes Monday the 21st.
    assert moved["series_start"] == task["series_start"]
    assert moved["next_due_date"] == "2030-01-21T09:00:00Z"
    complete(client, alice, task["id"])
    assert successors(client, alice, task)[0]["due_date"] == "2030-01-21T09:00:00Z"


def test_a_new_rule_or_zone_restarts_the_series_and_the_same_rule_keeps_it(
    client: TestClient, alice: Account
) -> None:
    task = create(client, alice, recurrence="FREQ=DAILY;COUNT=2", due_date="2030-01-01T00:00:00Z")
    assert task["next_due_date"] == "2030-01-02T00:00:00Z"
    # PUT with the same rule (a frontend sending the task back): the series is unchanged.
    same = client.put(
        f"/api/tasks/{task['id']}",
        json={**task, "title": "renamed", "due_date": "2030-01-02T00:00:00Z"},
        headers=alice.headers,
    ).json()["data"]
    assert same["series_start"] == "2030-01-01T00:00:00Z" and same["next_due_date"] is None
    assert same["series_id"] == task["series_id"]
    # Another zone: the series starts again at the due date (COUNT counts from there).
    zoned = client.patch(
        f"/api/tasks/{task['id']}", json={"time_zone": "Asia/Tokyo"}, headers=alice.headers
    ).json()["data"]
    assert zoned["series_start"] == "2030-01-02T00:00:00Z"
    assert zoned["next_due_date"] == "2030-01-03T00:00:00Z"
    assert zoned["series_id"] == task["series_id"]
    ruled = client.patch(
        f"/api/tasks/{task['id']}", json={"recurrence": "weekly"}, headers=alice.headers
    ).json()["data"]
    assert ruled["next_due_date"] == "2030-01-09T00:00:00Z"


def test_removing_the_rule_ends_the_series(client: TestClient, alice: Account) -> None:
    task = create(client, alice, recurrence="daily", due_date="2030-01-01")
    cleared = client.patch(
        f"/api/tasks/{task['id']}", json={"recurrence": None}, headers=alice.headers
    ).json()["data"]
    assert cleared["recurrence"] is None and cleared["next_due_date"] is None
    assert cleared["series_id"] is None and cleared["series_start"] is None
    complete(client, alice, task["id"])
    assert successors(client, alice, task) == []
    # PUT with a null rule, too (a PUT that omits it keeps the series).
    task = create(client, alice, recurrence="daily", due_date="2030-01-01")
    replaced = client.put(
        f"/api/tasks/{task['id']}",
        json={"title": "once", "completed": True, "recurrence": None},
        headers=alice.headers,
    ).json()["data"]
    assert replaced["recurrence"] is None and replaced["series_id"] is None
    assert successors(client, alice, task) == []


def test_if_match_guards_a_schedule_change(client: TestClient, alice: Account) -> None:
    task = create(client, alice, due_date="2030-01-01")
    stale = {**alice.headers, "If-Match": f'"{task["id"]}-0"'}
    response = client.patch(f"/api/tasks/{task['id']}", json={"recurrence": "daily"}, headers=stale)
    assert response.status_code == 412
    fresh = {**alice.headers, "If-Match": f'"{task["id"]}-1"'}
    response = client.patch(f"/api/tasks/{task['id']}", json={"recurrence": "daily"}, headers=fresh)
    assert response.status_code == 200 and response.headers["etag"] == f'"{task["id"]}-2"'
    missing = client.patch("/api/tasks/999999", json={"recurrence": "daily"}, headers=alice.headers)
    assert missing.status_code == 404


def test_bulk_completes_many_and_each_gets_one_successor(
    client: TestClient, alice: Account
) -> None:
    tasks = [create(client, alice, recurrence="daily", due_date="2030-01-01") for _ in range(3)]
    operations = [{"op": "complete", "id": t["id"]} for t in tasks]
    operations += [{"op": "reopen", "id": tasks[0]["id"]}, {"op": "complete", "id": tasks[0]["id"]}]
    response = client.post(
        "/api/tasks/bulk", json={"operations": operations}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    for task in tasks:
        assert len(successors(client, alice, task)) == 1
    # A failed batch creates nothing: the completion and its successor roll back together.
    fresh = create(client, alice, recurrence="daily", due_date="2030-01-01")
    failing = client.post(
        "/api/tasks/bulk",
        json={
            "operations": [{"op": "complete", "id": fresh["id"]}, {"op": "delete", "id": 999999}]
        },
        headers=alice.headers,
    )
    assert failing.status_code == 404
    assert (
        successors(client, alice, fresh) == [] and not get(client, alice, fresh["id"])["completed"]
    )


def test_an_idempotency_key_replay_creates_no_second_occurrence(
    client: TestClient, alice: Account
) -> None:
    task = create(client, alice, recurrence="daily", due_date="2030-01-01")
    headers = {**alice.headers, "Idempotency-Key": "complete-once-4f1c"}
    body = {"operations": [{"op": "complete", "id": task["id"]}]}
    first = client.post("/api/tasks/bulk", json=body, headers=headers)
    replay = client.post("/api/tasks/bulk", json=body, headers=headers)
    assert first.status_code == replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert len(successors(client, alice, task)) == 1


def test_the_change_feed_records_the_completion_and_the_new_occurrence_in_one_transaction(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task = create(client, alice, recurrence="daily", due_date="2030-01-01")
    complete(client, alice, task["id"])
    [following] = successors(client, alice, task)
    with db_engine.connect() as conn:
        rows = (
            conn.execute(
                text("SELECT type, task_id, xmin::text AS tx, task FROM task_events ORDER BY id")
            )
            .mappings()
            .all()
        )
    assert [(r["type"], r["task_id"]) for r in rows] == [
        ("created", task["id"]),
        ("completed", task["id"]),
        ("created", following["id"]),
    ]
    assert rows[1]["tx"] == rows[2]["tx"] != rows[0]["tx"]
    assert rows[2]["task"]["previous_task_id"] == task["id"]
    # The feed shows the new occurrence as the API does (but for the subtask counts, which
    # are not the task's own fields: a change holds those).
    feed = client.get("/api/tasks/changes", headers=alice.headers).json()["data"]
    derived = dict.fromkeys(DERIVED)
    assert feed[-1]["type"] == "created" and feed[-1]["task"] == {**following, **derived}


def test_the_recurring_filter(client: TestClient, alice: Account) -> None:
    recurring = create(client, alice, recurrence="daily", due_date="2030-01-01")
    plain = create(client, alice, due_date="2030-01-02")
    assert [t["id"] for t in listed(client, alice, "&recurring=true")] == [recurring["id"]]
    assert [t["id"] for t in listed(client, alice, "&recurring=false")] == [plain["id"]]
    assert len(listed(client, alice)) == 2
    bad = client.get("/api/tasks?recurring=maybe", headers=alice.headers)
    assert bad.status_code == 422
    # A cursor is bound to the filter.
    page = client.get("/api/tasks?recurring=true&limit=1", headers=alice.headers).json()
    assert page["meta"]["next_cursor"] is None


def test_twenty_concurrent_completions_create_exactly_one_next_occurrence(
    database_url: str, db_engine: Engine, register: Any
) -> None:
    """The real server (two worker processes), twenty clients completing the same occurrence
    at once, in every way there is (and some undoing it first): one successor."""
    user = register()
    with running_server(database_url, workers=2) as (base_url, _, _):
        http = httpx.Client(base_url=base_url, headers=bearer(user.token), timeout=30)
        task = http.post(
            "/api/tasks",
            json={"title": "Raced", "recurrence": "daily", "due_date": "2030-01-01"},
        ).json()["data"]
        task_id = task["id"]
        requests: list[tuple[str, str, Any]] = [
            ("PATCH", f"/api/tasks/{task_id}/complete", {"completed": True}),
            ("PATCH", f"/api/tasks/{task_id}", {"completed": True}),
            ("PUT", f"/api/tasks/{task_id}", {**task, "completed": True}),
            ("POST", "/api/tasks/bulk", {"operations": [{"op": "complete", "id": task_id}]}),
            (
                "POST",
                "/api/tasks/bulk",
                {
                    "operations": [
                        {"op": "reopen", "id": task_id},
                        {"op": "complete", "id": task_id},
                    ]
                },
            ),
        ]

        def attempt(n: int) -> int:
            method, path, body = requests[n % len(requests)]
            # A new connection per request, so both workers get some.
            with httpx.Client(base_url=base_url, timeout=30) as own:
                if n % 7 == 6:  # an agent, through MCP
                    result = call_tool_rpc(
                        own, "/mcp", user.token, "complete_task", {"task_id": task_id}
                    )
                    return 200 if result["isError"] is False else 500
                response = own.request(
                    method, path, json=body, headers={**bearer(user.token), "Connection": "close"}
                )
                return response.status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(attempt, range(20)))
        assert statuses == [200] * 20, statuses
        tasks = http.get("/api/tasks").json()["data"]
        http.close()
    assert len(tasks) == 2
    [following] = [t for t in tasks if t["previous_task_id"] == task_id]
    assert following["due_date"] == "2030-01-02" and not following["completed"]
    assert count_rows(db_engine, "tasks") == 2


def test_isolation_of_the_new_fields(client: TestClient, alice: Account, bob: Account) -> None:
    task = create(client, alice, recurrence="daily", due_date="2030-01-01", title="alice's")
    assert listed(client, bob, "&recurring=true") == []
    completing = client.post(
        "/api/tasks/bulk",
        json={"operations": [{"op": "complete", "id": task["id"]}]},
        headers=bob.headers,
    )
    assert completing.status_code == 404
    for body in ({"recurrence": "weekly"}, {"time_zone": "Asia/Tokyo"}, {"reminders": []}):
        response = client.patch(f"/api/tasks/{task['id']}", json=body, headers=bob.headers)
        assert response.status_code == 404 and "alice" not in response.text
    assert listed(client, alice) == [task]


def test_rescheduling_reads_the_stored_schedule_with_the_entry_and_writes_it_with_the_commit(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A due date moved is two statements, read then written, for a task that recurs and one
    that does not alike: the read rides in the request's first message and commits with it,
    the write in a second one that commits (tests/test_round_trips.py counts the two round
    trips and checks that neither leaves its transaction open)."""
    plain = create(client, alice, due_date="2030-01-01", reminders=[{"minutes_before_due": 5}])
    recurring = create(client, alice, recurrence="weekly", due_date="2030-01-01")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "tasks" in statement and "users" not in statement:
            # What each message does to the task: read it, or write it.
            statements.append("UPDATE" if "UPDATE tasks" in statement else "SELECT")

    event.listen(db_engine.__class__, "before_cursor_execute", record)
    try:
        moved = client.patch(
            f"/api/tasks/{plain['id']}", json={"due_date": "2030-02-01"}, headers=alice.headers
        )
        assert moved.status_code == 200 and statements == ["SELECT", "UPDATE"], statements
        statements.clear()
        # A recurring task's next_due_date moves with it.
        moved = client.patch(
            f"/api/tasks/{recurring['id']}", json={"due_date": "2030-01-02"}, headers=alice.headers
        )
        assert moved.json()["data"]["next_due_date"] == "2030-01-08T00:00:00Z"  # Tuesdays
        assert statements == ["SELECT", "UPDATE"], statements
        statements.clear()
        # A completion of a task that does not recur: one statement that commits.
        client.patch(f"/api/tasks/{plain['id']}/complete", headers=alice.headers)
        assert statements == ["UPDATE"], statements
    finally:
        event.remove(db_engine.__class__, "before_cursor_execute", record)
    # If-Match still guards it, and a stale one changes nothing.
    stale = {**alice.headers, "If-Match": f'"{plain["id"]}-1"'}
    response = client.patch(
        f"/api/tasks/{plain['id']}", json={"due_date": "2031-01-01"}, headers=stale
    )
    assert response.status_code == 412
    assert get(client, alice, plain["id"])["due_date"] == "2030-02-01"
