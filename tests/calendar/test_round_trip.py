"""A feed's recurring tasks as a calendar app expands them (issue 52, "Round trip"): each
RRULE, expanded by `recurring-ical-events` (what calendar apps do), gives the same instants, to
the minute, as the API's own recurrence (`backend.recurrence.Schedule`) over a year that
crosses daylight-saving changes, in zones north and south of the equator; a completed
occurrence shows once, beside its open successor's rule."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from fastapi.testclient import TestClient

from backend.recurrence import Schedule
from tests.calendar.test_feeds import make_feed, path_of
from tests.conftest import Account

# Berlin and New York change clocks in March and October/November; Sydney (south of the
# equator) in April and October, the other way round.
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney")
RULES = (
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=MO,TH",
    "FREQ=MONTHLY;BYDAY=2TU",
    "FREQ=MONTHLY;BYMONTHDAY=15",
    "FREQ=YEARLY",
    "FREQ=WEEKLY;BYDAY=FR;COUNT=30",
    "FREQ=DAILY;INTERVAL=3;UNTIL=20270601",
)
YEAR = timedelta(days=366)


def _minutes(instants: list[datetime]) -> list[str]:
    return sorted(i.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") for i in instants)


def _start(zone: str) -> datetime:
    """Tomorrow at 09:30 local time in `zone`."""
    local = datetime.now(ZoneInfo(zone)).date() + timedelta(days=1)
    return datetime.combine(local, time(9, 30), ZoneInfo(zone))


def _expanded(client: TestClient, feed: dict, start: datetime) -> dict[str, list[str]]:
    """Each task's occurrences in the year from `start`, as recurring-ical-events reads the
    feed, by title."""
    calendar = icalendar.Calendar.from_ical(client.get(path_of(feed)).content)
    found: dict[str, list[datetime]] = {}
    for event in recurring_ical_events.of(calendar).between(
        start - timedelta(days=1), start + YEAR
    ):
        found.setdefault(str(event["SUMMARY"]), []).append(event["DTSTART"].dt)
    return {title: _minutes(instants) for title, instants in found.items()}


@pytest.mark.parametrize("zone", ZONES)
def test_every_rule_expands_as_the_api_does(client: TestClient, alice: Account, zone: str) -> None:
    start = _start(zone)
    expected: dict[str, list[str]] = {}
    for rule in RULES:
        made = client.post(
            "/api/tasks",
            json={
                "title": rule,
                "due_date": start.isoformat(),
                "time_zone": zone,
                "recurrence": rule,
            },
            headers=alice.headers,
        )
        assert made.status_code == 201, made.text
        series_start = datetime.fromisoformat(made.json()["data"]["series_start"])
        schedule = Schedule.of(rule, zone, series_start)
        within = [series_start] + [
            due for due in schedule.after(series_start, 2000) if due < start + YEAR
        ]
        expected[rule] = _minutes(within)
    got = _expanded(client, make_feed(client, alice), start)
    assert got == expected
    # The year crosses both of the zone's clock changes: two UTC offsets among the instants.
    offsets = {
        datetime.fromisoformat(m).replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).utcoffset()
        for m in got["FREQ=DAILY"]
    }
    assert len(offsets) == 2


def test_a_completed_occurrence_shows_once_beside_its_successors_rule(
    client: TestClient, alice: Account
) -> None:
    zone = "Australia/Sydney"
    start = _start(zone)
    rule = "FREQ=WEEKLY;BYDAY=MO,TH;COUNT=12"
    made = client.post(
        "/api/tasks",
        json={"title": "gym", "due_date": start.isoformat(), "time_zone": zone, "recurrence": rule},
        headers=alice.headers,
    ).json()["data"]
    done = client.patch(
        f"/api/tasks/{made['id']}/complete", json={"completed": True}, headers=alice.headers
    )
    assert done.status_code == 200, done.text
    series_start = datetime.fromisoformat(made["series_start"])
    schedule = Schedule.of(rule, zone, series_start)
    series = [series_start, *schedule.after(series_start, 11)]
    got = _expanded(client, make_feed(client, alice), start)
    assert got == {"gym": _minutes(series)}
    calendar = icalendar.Calendar.from_ical(client.get(path_of(make_feed(client, alice))).content)
    events = calendar.walk("VEVENT")
    assert len(events) == 2
    assert sorted("RRULE" in event for event in events) == [False, True]
