"""backend/recurrence.py on its own (no database): the rule policy, the series' bounds, and the
400-year shift that bounds dateutil's search, checked against dateutil evaluating directly."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from dateutil import rrule as dateutil_rrule
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.recurrence import (
    HORIZON_YEARS,
    SCAN_LIMIT,
    TIME_ZONES,
    RuleError,
    Schedule,
    _wall_clock,
    parse_rule,
    shift_reminder,
    time_zone,
)

PATTERNS = [
    "FREQ=DAILY",
    "FREQ=DAILY;INTERVAL=3",
    "FREQ=WEEKLY;BYDAY=MO,TH",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU;WKST=SU",
    "FREQ=MONTHLY;BYMONTHDAY=31",
    "FREQ=MONTHLY;BYMONTHDAY=-1",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO",
    "FREQ=YEARLY;BYYEARDAY=-1",
    "FREQ=HOURLY;INTERVAL=5",
    "FREQ=HOURLY;BYHOUR=9,17",
]


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.sampled_from(PATTERNS),
    start=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2400, 12, 31)),
    end_year=st.integers(0, 300),
)
def test_the_shifted_calendar_gives_what_dateutil_gives_directly(
    pattern: str, start: datetime, end_year: int
) -> None:
    # Through `end_year` at least (past it, the shifted calendar may reach the year 9999).
    start, last_year = start.replace(microsecond=0), start.year + end_year
    shifted = itertools.islice(_wall_clock(pattern, start, last_year), 30)
    direct = itertools.islice(rrulestr(pattern, dtstart=start), 30)
    assert [d for d in shifted if d.year <= last_year] == [d for d in direct if d.year <= last_year]


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=HOURLY;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=WEEKLY;BYMONTH=2;BYDAY=MO;INTERVAL=1000",
        "FREQ=MONTHLY;BYMONTH=2;BYDAY=5MO;BYMONTHDAY=30",
        "FREQ=DAILY;INTERVAL=7;BYDAY=MO",
    ],
)
def test_a_rule_that_never_occurs_is_found_out_quickly(
    rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dateutil alone scans every period until the year 9999 (seconds for DAILY and HOURLY).
    # Counted, not timed: the years dateutil expands (it rebuilds its tables once per month
    # it enters) stay within the horizon plus one 400-year cycle, whatever the machine's speed.
    years: set[int] = set()
    rebuild = dateutil_rrule._iterinfo.rebuild

    def counting_rebuild(self: object, year: int, month: int) -> None:
        years.add(year)
        rebuild(self, year, month)

    monkeypatch.setattr(dateutil_rrule._iterinfo, "rebuild", counting_rebuild)
    for start in (datetime(1900, 1, 2, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)):
        years.clear()
        assert Schedule.of(rule, "Europe/Berlin", start).next_after(start) is None
        assert years, "the spy saw no expansion"
        assert len(years) <= HORIZON_YEARS + 400 + 1, len(years)


def test_the_last_years_of_the_calendar() -> None:
    start = datetime(9998, 12, 29, 9, tzinfo=UTC)
    schedule = Schedule.of("FREQ=DAILY", "Pacific/Kiritimati", start)  # UTC+14
    assert schedule.after(start, 5) == [
        datetime(9998, 12, 30, 9, tzinfo=UTC),
        datetime(9998, 12, 31, 9, tzinfo=UTC),
    ]
    assert Schedule.of("yearly", "UTC", start).next_after(start) is None


def test_the_horizon_ends_a_series_with_no_occurrence_for_a_century() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    # Every 150 years: the next is beyond the horizon.
    assert Schedule.of("FREQ=YEARLY;INTERVAL=150", "UTC", start).next_after(start) is None
    assert Schedule.of("FREQ=YEARLY;INTERVAL=90", "UTC", start).next_after(start) == (
        datetime(2120, 1, 1, tzinfo=UTC)
    )


def test_the_scan_limit_ends_a_very_long_series() -> None:
    start = datetime(2000, 1, 1, tzinfo=UTC)
    hourly = Schedule.of("FREQ=HOURLY", "UTC", start)
    within = start + timedelta(hours=SCAN_LIMIT - 10)
    assert hourly.next_after(within) == within + timedelta(hours=1)
    assert hourly.next_after(start + timedelta(hours=SCAN_LIMIT + 10)) is None


def test_the_start_counts_as_the_first_occurrence() -> None:
    # Wednesday, not a Monday: still the first of COUNT=3 (RFC 5545 3.8.5.3).
    start = datetime(2030, 1, 2, 9, tzinfo=UTC)
    schedule = Schedule.of("FREQ=WEEKLY;BYDAY=MO;COUNT=3", "UTC", start)
    assert schedule.after(datetime(2029, 1, 1, tzinfo=UTC), 10) == [
        start,
        datetime(2030, 1, 7, 9, tzinfo=UTC),
        datetime(2030, 1, 14, 9, tzinfo=UTC),
    ]


def test_until_is_inclusive_and_a_date_means_the_whole_local_day() -> None:
    start = datetime(2030, 1, 1, 22, tzinfo=UTC)  # 23:00 in Berlin
    by_day = Schedule.of("FREQ=DAILY;UNTIL=20300103", "Europe/Berlin", start)
    assert by_day.after(start, 10) == [
        datetime(2030, 1, 2, 22, tzinfo=UTC),
        datetime(2030, 1, 3, 22, tzinfo=UTC),  # 23:00 on the 3rd, local: still the 3rd
    ]
    by_instant = Schedule.of("FREQ=DAILY;UNTIL=20300102T220000Z", "Europe/Berlin", start)
    assert by_instant.after(start, 10) == [datetime(2030, 1, 2, 22, tzinfo=UTC)]
    assert parse_rule("FREQ=DAILY;UNTIL=20300103").until == date(2030, 1, 3)


def test_one_instant_for_two_local_times_counts_once() -> None:
    # HOURLY on the local clock, in spring: 02:30 does not exist, so it is 03:30's instant.
    start = datetime(2030, 3, 31, 0, 30, tzinfo=UTC)  # 01:30 CET
    schedule = Schedule.of("FREQ=HOURLY", "Europe/Berlin", start)
    assert schedule.after(start, 2) == [
        datetime(2030, 3, 31, 1, 30, tzinfo=UTC),  # 03:30 CEST
        datetime(2030, 3, 31, 2, 30, tzinfo=UTC),  # 04:30 CEST
    ]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("daily", "FREQ=DAILY"),
        ("  Weekly ", "FREQ=WEEKLY"),
        ("rrule:freq=monthly;bymonthday=1,15", "FREQ=MONTHLY;BYMONTHDAY=1,15"),
        ("FREQ=YEARLY;BYMONTH=2;BYDAY=-1MO", "FREQ=YEARLY;BYMONTH=2;BYDAY=-1MO"),
        ("FREQ=DAILY;UNTIL=20301231T235959Z", "FREQ=DAILY;UNTIL=20301231T235959Z"),
    ],
)
def test_accepted_rules_are_stored_as_rrules(value: str, stored: str) -> None:
    assert parse_rule(value).text == stored


@pytest.mark.parametrize(
    "value",
    [
        "FREQ=YEARLY;BYDAY=54MO",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=6MO",
        "FREQ=YEARLY;BYWEEKNO=0",
        "FREQ=YEARLY;BYYEARDAY=367",
        "FREQ=MONTHLY;BYMONTHDAY=-32",
        "FREQ=MONTHLY;BYSETPOS=0",
        "FREQ=DAILY;BYYEARDAY=1",
        "FREQ=MONTHLY;BYWEEKNO=1",
        "FREQ=DAILY;BYMINUTE=-1",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;COUNT=100001",
        "FREQ=DAILY;INTERVAL=1001",
        "FREQ=DAILY;INTERVAL=+1",
        "FREQ=DAILY;UNTIL=20301301",
        "FREQ=DAILY;UNTIL=2030-12-31",
        "FREQ=DAILY;BYDAY=+MO",
        "FREQ=DAILY;BYHOUR=1_0",
        "FREQ=DAILY;WKST=MONDAY",
        "FREQ=DAILY;X-NAME=1",
        "RRULE:RRULE:FREQ=DAILY",
    ],
)
def test_refused_rules(value: str) -> None:
    with pytest.raises(RuleError):
        parse_rule(value)


def test_time_zones_come_from_the_tzdata_package() -> None:
    assert "Europe/Berlin" in TIME_ZONES and "UTC" in TIME_ZONES
    assert "localtime" not in TIME_ZONES  # a system file, not a zone
    assert time_zone("Europe/Berlin").key == "Europe/Berlin"
    with pytest.raises(ValueError, match="IANA"):
        time_zone("Europe/Atlantis")


def test_an_at_reminder_moves_with_its_due_date() -> None:
    old, new = datetime(2030, 1, 1, 9, tzinfo=UTC), datetime(2030, 1, 8, 9, tzinfo=UTC)
    assert shift_reminder(datetime(2029, 12, 31, 18, tzinfo=UTC), old, new) == datetime(
        2030, 1, 7, 18, tzinfo=UTC
    )
    far = datetime(9998, 12, 31, tzinfo=UTC)
    assert shift_reminder(far, old, new) is None
