"""Tasks due on a day (migration 0095) over CalDAV (specs/caldav.md, "The mapping"): a day is
`DUE;VALUE=DATE` both ways, a series on days carries `DTSTART;VALUE=DATE` and a DATE `UNTIL`,
and a completion keeps the series on days. Through the HTTP routes, on the real database."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from backend.ical.vtodo import parse, render
from backend.models import Priority
from backend.services.calendar import calendar_ics
from backend.services.calendar.dav_tags import RENDER_FORMAT
from tests.conftest import Account
from tests.dav.test_objects import (
    NO_LIST,
    _query,
    derived_path,
    put,
    responses,
    signed_in,
    task_by_id,
    vtodo,
)
from tests.dav.test_vtodo import CLIENTS, NOW, fixture, row
from tests.sharing.helpers import make_task

# An Apple Reminders object for a reminder due on a day (no time): its DUE and DTSTART DATEs.
_APPLE_DAY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//iOS 18.1//EN\r\n"
    "CALSCALE:GREGORIAN\r\nBEGIN:VTODO\r\nCREATED:20261120T081512Z\r\nUID:{uid}\r\n"
    "DTSTAMP:20261120T081530Z\r\nLAST-MODIFIED:20261120T081530Z\r\nSUMMARY:{summary}\r\n"
    "STATUS:NEEDS-ACTION\r\nDTSTART;VALUE=DATE:20301201\r\nDUE;VALUE=DATE:20301201\r\n"
    "X-APPLE-SORT-ORDER:722154930\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)


def _lines(body: bytes) -> list[str]:
    return body.decode().replace("\r\n ", "").split("\r\n")


def _get(client: TestClient, path: str, headers: dict[str, str]) -> Any:
    got = client.get(path, headers=headers)
    assert got.status_code == 200, got.text
    return got


@pytest.mark.parametrize("zone", ["Pacific/Auckland", "America/Los_Angeles"])
def test_an_apple_date_due_is_a_day_through_rest_in_any_zone(
    client: TestClient, alice: Account, zone: str
) -> None:
    """Apple's `DUE;VALUE=DATE:20301201` on a task of `zone` (an update of a REST task) and on
    a new object: REST reads the same day, `all_day`, whatever the zone's offset."""
    headers = signed_in(client, alice)
    task_id = make_task(client, alice, "Dentist", due_date="2030-11-20T17:00:00Z", time_zone=zone)
    path = derived_path(None, task_id)
    body = _APPLE_DAY.format(uid=f"task-{task_id}@task-api", summary="Dentist").encode()
    tag = _get(client, path, headers).headers["etag"]
    assert put(client, path, body, headers, **{"If-Match": tag}).status_code == 204
    task = task_by_id(client, alice, task_id)
    assert (task["due_date"], task["all_day"], task["time_zone"]) == ("2030-12-01", True, zone)
    served = _lines(_get(client, path, headers).content)
    assert "DUE;VALUE=DATE:20301201" in served and "DTSTART;VALUE=DATE:20301201" in served
    # With no precondition too (the plain write's zone guess, then the task's zone).
    again = body.replace(b"20301201", b"20301203")
    assert put(client, path, again, headers).status_code == 204
    task = task_by_id(client, alice, task_id)
    assert (task["due_date"], task["all_day"], task["time_zone"]) == ("2030-12-03", True, zone)
    # A new object: a new task (UTC, a date names no zone), due on that day.
    new = _APPLE_DAY.format(uid=f"apple-{zone}", summary=f"Bins {zone}").encode()
    assert put(client, NO_LIST + "apple.ics", new, headers).status_code == 201
    listed = client.get("/api/tasks", params={"limit": 100}, headers=alice.headers).json()
    [made] = [t for t in listed["data"] if t["title"] == f"Bins {zone}"]
    assert (made["due_date"], made["all_day"]) == ("2030-12-01", True)


def test_a_rest_day_is_served_as_a_date_and_an_instant_as_before(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    day = make_task(client, alice, "Day", due_date="2030-12-01", time_zone="Pacific/Auckland")
    served = _lines(_get(client, derived_path(None, day), headers).content)
    assert "DUE;VALUE=DATE:20301201" in served
    assert not any(line.startswith(("DTSTART", "RRULE")) for line in served)  # no series
    assert "BEGIN:VTIMEZONE" not in served  # a DATE names no zone
    instant = make_task(
        client, alice, "Call", due_date="2030-12-01T16:00:00Z", time_zone="Europe/Berlin"
    )
    served = _lines(_get(client, derived_path(None, instant), headers).content)
    assert "DUE;TZID=Europe/Berlin:20301201T170000" in served
    assert "BEGIN:VTIMEZONE" in served
    # Written back as served, each stays what it is.
    for task_id, due in ((day, "2030-12-01"), (instant, "2030-12-01T16:00:00Z")):
        path = derived_path(None, task_id)
        body = _get(client, path, headers).content
        assert put(client, path, body, headers).status_code == 204
        assert task_by_id(client, alice, task_id)["due_date"] == due


def test_a_day_series_has_date_dtstart_and_until_and_completes_into_a_day(
    client: TestClient, alice: Account
) -> None:
    """A series on days: `DTSTART;VALUE=DATE`, its COUNT as a DATE UNTIL (RFC 5545 3.8.5.3);
    Tasks.org's completion (DUE and DTSTART advanced to the next day) leaves the occurrence
    completed and a next one due on the next day, a day too, served as a DATE."""
    headers = signed_in(client, alice)
    task_id = make_task(
        client,
        alice,
        "Vitamins",
        due_date="2030-12-01",
        time_zone="Pacific/Auckland",
        recurrence="FREQ=DAILY;COUNT=5",
    )
    path = derived_path(None, task_id)
    body = _get(client, path, headers).content
    served = _lines(body)
    assert "DTSTART;VALUE=DATE:20301201" in served and "DUE;VALUE=DATE:20301201" in served
    rrule = next(line for line in served if line.startswith("RRULE:"))
    assert set(rrule[6:].split(";")) == {"FREQ=DAILY", "UNTIL=20301205"}
    advanced = body.replace(b"VALUE=DATE:20301201", b"VALUE=DATE:20301202")
    assert put(client, path, advanced, headers).status_code == 204
    done = task_by_id(client, alice, task_id)
    assert (done["completed"], done["due_date"], done["all_day"]) == (True, "2030-12-01", True)
    listed = client.get("/api/tasks", params={"status": "pending"}, headers=alice.headers).json()
    [following] = [t for t in listed["data"] if t["title"] == "Vitamins"]
    assert (following["due_date"], following["all_day"]) == ("2030-12-02", True)
    assert following["recurrence"] == "FREQ=DAILY;COUNT=5"
    # The client's object went on to the next occurrence, served as a day.
    served = _lines(_get(client, path, headers).content)
    assert "DUE;VALUE=DATE:20301202" in served and "DTSTART;VALUE=DATE:20301202" in served
    assert task_by_id(client, alice, following["id"])["all_day"] is True


def test_a_date_override_completes_the_days_occurrence(client: TestClient, alice: Account) -> None:
    """Thunderbird's form on days: a completed VTODO with `RECURRENCE-ID;VALUE=DATE` naming
    the open occurrence's day completes it; the next occurrence is a day."""
    headers = signed_in(client, alice)
    path = NO_LIST + "weekly.ics"
    master = "DTSTART;VALUE=DATE:20301202\r\nDUE;VALUE=DATE:20301202\r\nRRULE:FREQ=WEEKLY\r\n"
    assert put(client, path, vtodo("weekly", "Bins", master), headers).status_code == 201
    override = (
        "END:VTODO\r\nBEGIN:VTODO\r\nUID:weekly\r\nDTSTAMP:20301202T090000Z\r\n"
        "RECURRENCE-ID;VALUE=DATE:20301202\r\nSUMMARY:Bins\r\nDUE;VALUE=DATE:20301202\r\n"
        "STATUS:COMPLETED\r\nCOMPLETED:20301202T090000Z\r\n"
    )
    body = vtodo("weekly", "Bins", master + override)
    assert put(client, path, body, headers).status_code == 204
    listed = client.get("/api/tasks", params={"status": "all"}, headers=alice.headers).json()
    bins = sorted((t for t in listed["data"] if t["title"] == "Bins"), key=lambda t: t["id"])
    assert [(t["completed"], t["due_date"], t["all_day"]) for t in bins] == [
        (True, "2030-12-02", True),
        (False, "2030-12-09", True),
    ]
    served = _lines(_get(client, path, headers).content)
    assert "DUE;VALUE=DATE:20301209" in served
    assert "RECURRENCE-ID;VALUE=DATE:20301202" in served  # the client's completion, as sent


def test_a_days_time_range_is_the_day_on_its_clock(client: TestClient, alice: Account) -> None:
    """RFC 4791 9.9 on a day: the day from its start to its end on the task's clock. Auckland's
    1 December 2030 is 30 November 11:00 to 1 December 11:00 UTC."""
    headers = signed_in(client, alice)
    make_task(client, alice, "Day", due_date="2030-12-01", time_zone="Pacific/Auckland")
    make_task(
        client,
        alice,
        "Daily",
        due_date="2030-11-20",
        time_zone="Pacific/Auckland",
        recurrence="FREQ=DAILY",
    )

    def found(start: str, end: str) -> set[str]:
        inner = f'<C:time-range start="{start}" end="{end}"/>'
        answer = client.request(
            "REPORT", NO_LIST, content=_query(inner), headers={**headers, "Depth": "1"}
        )
        return {unquote(href) for href in responses(answer)}

    day = derived_path(None, task_by_id_title(client, alice, "Day"))
    daily = derived_path(None, task_by_id_title(client, alice, "Daily"))
    # Its last hour (10:00-11:00 UTC on 1 December) and its first (11:00-12:00 UTC before).
    assert day in found("20301201T100000Z", "20301201T103000Z")
    assert day in found("20301130T110000Z", "20301130T113000Z")
    # Just after it ends and just before it starts: not in range.
    assert day not in found("20301201T110000Z", "20301201T120000Z")
    assert day not in found("20301130T100000Z", "20301130T110000Z")
    # A series on days stands for its later days: any hour of them is in range.
    assert daily in found("20301215T230000Z", "20301215T233000Z")
    assert daily not in found("20301101T000000Z", "20301119T110000Z")


def task_by_id_title(client: TestClient, who: Account, title: str) -> int:
    listed = client.get("/api/tasks", params={"limit": 100}, headers=who.headers).json()["data"]
    [task] = [t for t in listed if t["title"] == title]
    return int(task["id"])


# The bytes of instants, as the renderer wrote them before days existed (ea494ec), a SHA-256
# prefix each: CalDAV objects (ours, then merged into each client's fixture) and both kinds of
# feed. Days changed no instant's bytes, so `RENDER_FORMAT` and `BODY_FORMAT` stayed.
_INSTANT_BYTES = [
    "d0ad675990df160a",
    "8d73439d59a03c87",
    "8dd03c2ffffc8771",
    "884b0ff60506290e",
    "24d1ff614fedb6be",
    "f54893bff5532862",
    "3119ce3043535952",
    "346a3b1eec3524c2",
    "4602c8bfcb44b1da",
    "e5fb4df7909ec90f",
    "b7b8b7ae7b6ada48",
    "f289b5ca877b4327",
    "7b9a7fc896e30482",
    "89056232f0397501",
    "cefb7ab566ed3bba",
    "8c7f010e5451fd0f",
    "f18f05ecd19b8be7",
    "10b0bdb5743eb5be",
    "250d686fced61e42",
    "78ba9ea4a5581a12",
    "3677a0c70e3ef664",
    "8d44a37973869892",
    "bcf30f1c077966b4",
    "60205d1ad8cca491",
    "a349958a7daae2b5",
]


def test_an_instants_bytes_are_what_they_were_before_days() -> None:
    berlin = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    berlin_midnight = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # still served as a DATE
    rows = [
        row(due_date=datetime(2026, 12, 1, 15, 30, tzinfo=UTC)),
        row(due_date=berlin, time_zone="Europe/Berlin", tags=["a", "b"], priority="high"),
        row(due_date=berlin_midnight, time_zone="Europe/Berlin"),
        row(
            due_date=berlin,
            time_zone="Europe/Berlin",
            recurrence="FREQ=DAILY;COUNT=5",
            series_start=berlin,
            next_due_date=berlin + timedelta(days=1),
        ),
        row(
            due_date=berlin_midnight,
            time_zone="Europe/Berlin",
            recurrence="FREQ=WEEKLY;UNTIL=20270101",
            series_start=berlin_midnight,
            next_due_date=berlin_midnight + timedelta(days=7),
        ),
    ]
    for task in rows:
        task.priority = Priority(task.priority)
    reminders = [{"minutes_before_due": 15}, {"at": "2026-12-03T08:00:00Z"}]
    bodies = [render(task, None, reminders) for task in rows]
    for name in CLIENTS:
        kept = parse(fixture(name)).keep
        bodies += [render(task, kept, reminders) for task in rows[:3]]
    feed_rows = [SimpleNamespace(**{**vars(task), "reminders": reminders}) for task in rows]
    bodies += [calendar_ics.body(kind, "Mine", NOW, feed_rows) for kind in ("events", "todos")]
    assert [hashlib.sha256(body).hexdigest()[:16] for body in bodies] == _INSTANT_BYTES
    assert (RENDER_FORMAT, calendar_ics.BODY_FORMAT) == (5, 4)
