"""Quick add's recurrence phrases: their RRULE (as `backend.recurrence` stores it) and the
first due date of the series."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from dateutil.rrule import rrulestr

from backend.recurrence import normalize_rule, parse_rule
from tests.quickadd.common import BERLIN, SATURDAY, moment, read_at, spans


@pytest.mark.parametrize(
    ("phrase", "rule"),
    [
        ("every day", "FREQ=DAILY"),
        ("daily", "FREQ=DAILY"),
        ("every weekday", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
        ("every weekend", "FREQ=WEEKLY;BYDAY=SA,SU"),
        ("every week", "FREQ=WEEKLY"),
        ("weekly", "FREQ=WEEKLY"),
        ("every monday", "FREQ=WEEKLY;BYDAY=MO"),
        ("every Mondays", "FREQ=WEEKLY;BYDAY=MO"),
        ("every mon and thu", "FREQ=WEEKLY;BYDAY=MO,TH"),
        ("every mon, thu", "FREQ=WEEKLY;BYDAY=MO,TH"),
        ("every thu, mon and wed", "FREQ=WEEKLY;BYDAY=MO,WE,TH"),
        ("every other week", "FREQ=WEEKLY;INTERVAL=2"),
        ("every other monday", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"),
        ("every 3 days", "FREQ=DAILY;INTERVAL=3"),
        ("every 1 day", "FREQ=DAILY"),
        ("every 2 weeks", "FREQ=WEEKLY;INTERVAL=2"),
        ("every 2 weeks on tue and fri", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,FR"),
        ("every 6 months", "FREQ=MONTHLY;INTERVAL=6"),
        ("every 1000 years", "FREQ=YEARLY;INTERVAL=1000"),
        ("every month", "FREQ=MONTHLY"),
        ("monthly", "FREQ=MONTHLY"),
        ("every month on the 15th", "FREQ=MONTHLY;BYMONTHDAY=15"),
        ("every 3 months on 1st", "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1"),
        ("every year", "FREQ=YEARLY"),
        ("yearly", "FREQ=YEARLY"),
    ],
)
def test_rules(phrase: str, rule: str) -> None:
    reading = read_at(f"Water plants {phrase}")
    assert (reading.title, reading.recurrence) == ("Water plants", rule)
    assert normalize_rule(rule) == rule
    assert spans(reading) == [("recurrence", phrase)]
    # The due, a day, is the first day on or after today the rule's pattern has.
    pattern = ";".join(p for p in parse_rule(rule).pattern.split(";") if "INTERVAL" not in p)
    today = datetime(2026, 11, 28)
    first = rrulestr(pattern, dtstart=today).after(today, inc=True)
    assert first is not None and reading.due == first.date()


@pytest.mark.parametrize(
    "text",
    [
        "every every every",
        "every now and then",
        "every 0 days",
        "every 1001 days",
        "every 2 day",
        "every days",
        "every other weeks",
        "every other weekday",
        "every 2 mondays",
        "every",
    ],
)
def test_every_without_a_rule_is_text(text: str) -> None:
    reading = read_at(f"x {text}")
    assert reading.title == f"x {text}" and reading.recurrence is None


def test_a_weekly_rule_typed_on_its_day_starts_today() -> None:
    monday = datetime(2026, 11, 30, 12, 0, tzinfo=BERLIN)
    assert read_at("Standup every monday", monday).due == date(2026, 11, 30)
    assert read_at("Standup every other monday", monday).due == date(2026, 11, 30)
    wednesday = datetime(2026, 12, 2, 12, 0, tzinfo=BERLIN)
    assert read_at("Water plants every other monday", wednesday).due == date(2026, 12, 7)


def test_a_rules_time_that_has_passed_starts_the_series_at_its_next_occurrence() -> None:
    ten = SATURDAY.replace(hour=10)
    reading = read_at("Run every day at 9am", ten)
    assert reading.due == datetime(2026, 11, 29, 9, 0, tzinfo=BERLIN)
    assert spans(reading) == [("recurrence", "every day"), ("due", "at 9am")]
    assert read_at("Run every day at 11am", ten).due == datetime(2026, 11, 28, 11, tzinfo=BERLIN)
    # Saturday: the next weekday is Monday either way.
    assert read_at("Run every weekday 9am", ten).due == datetime(2026, 11, 30, 9, tzinfo=BERLIN)
    # The series starts today; its next occurrence is a fortnight on.
    assert read_at("Run every other week at 9am", ten).due == datetime(
        2026, 12, 12, 9, tzinfo=BERLIN
    )


def test_a_rule_on_a_month_day_starts_at_the_next_one() -> None:
    sixteenth = moment("Europe/Berlin", 2026, 11, 16, 9, 0)
    assert read_at("Pay rent every month on the 15th", sixteenth).due == date(2026, 12, 15)
    assert read_at("Pay rent every month on the 31st", sixteenth).due == date(2026, 12, 31)


def test_a_typed_date_is_the_first_due() -> None:
    reading = read_at("Gym every monday from tomorrow")
    assert (reading.recurrence, reading.due) == ("FREQ=WEEKLY;BYDAY=MO", date(2026, 11, 29))
    assert reading.title == "Gym from"
    reading = read_at("Gym every mon and thu Dec 3 at 7:15")
    assert reading.due == datetime(2026, 12, 3, 7, 15, tzinfo=BERLIN)


def test_the_first_recurrence_counts() -> None:
    reading = read_at("Report daily every monday")
    assert (reading.title, reading.recurrence) == ("Report every monday", "FREQ=DAILY")
    assert reading.due == date(2026, 11, 28)


def test_a_rule_starts_across_a_daylight_saving_gap() -> None:
    night = moment("America/New_York", 2027, 3, 14, 0, 30)
    due = read_at("Backup every day at 2:30am", night).due
    assert isinstance(due, datetime)
    assert (due.date(), due.time()) == (date(2027, 3, 14), time(3, 30))
