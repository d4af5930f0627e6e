"""Dates and times of the quick-add grammar, at frozen moments in several zones (daylight
saving's gap and fold, month and year ends)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from backend.quickadd import read
from tests.quickadd.common import BERLIN, DIRECTORY, SATURDAY, moment, read_at, spans


def instant(day: date, at: time, zone: object = BERLIN) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("x today", date(2026, 11, 28)),
        ("x tomorrow", date(2026, 11, 29)),
        ("x monday", date(2026, 11, 30)),
        ("x Mon", date(2026, 11, 30)),
        ("x tues", date(2026, 12, 1)),
        ("x thurs", date(2026, 12, 3)),
        ("x saturday", date(2026, 12, 5)),  # strictly after today, a Saturday
        ("x next friday", date(2026, 12, 4)),
        ("x next week", date(2026, 11, 30)),
        ("x next month", date(2026, 12, 1)),
        ("x end of month", date(2026, 11, 30)),
        ("x end of the month", date(2026, 11, 30)),
        ("x in a day", date(2026, 11, 29)),
        ("x in a week", date(2026, 12, 5)),
        ("x in a month", date(2026, 12, 28)),
        ("x in 3 days", date(2026, 12, 1)),
        ("x in 2 weeks", date(2026, 12, 12)),
        ("x in 2 months", date(2027, 1, 28)),
        ("x in 1000 days", date(2029, 8, 24)),
        ("x on the 5th", date(2026, 12, 5)),
        ("x on the 28th", date(2026, 11, 28)),  # today is not past
        ("x on the 31st", date(2026, 12, 31)),  # November has none
        ("x by 5th", date(2026, 12, 5)),
        ("x due the 21st", date(2026, 12, 21)),
        ("x due on friday", date(2026, 12, 4)),
        ("x Dec 5", date(2026, 12, 5)),
        ("x 5 Dec", date(2026, 12, 5)),
        ("x December 5th", date(2026, 12, 5)),
        ("x dec 5th", date(2026, 12, 5)),
        ("x the 5th of May", date(2027, 5, 5)),
        ("x Nov 27", date(2027, 11, 27)),  # past: next year
        ("x Nov 28", date(2026, 11, 28)),
        ("x Feb 29", date(2028, 2, 29)),
        ("x Dec 5 2027", date(2027, 12, 5)),  # a year typed after it: that year's
        ("x 5 Dec 2027", date(2027, 12, 5)),
        ("x Nov 27 2026", date(2026, 11, 27)),  # past, as typed
        ("x Feb 29 2028", date(2028, 2, 29)),
        ("x 2026-12-05", date(2026, 12, 5)),
        ("x 2020-01-01", date(2020, 1, 1)),
    ],
)
def test_a_date_alone_is_a_day(text: str, due: date) -> None:
    reading = read_at(text)
    assert reading.title == "x"
    assert reading.due == due and not isinstance(reading.due, datetime)
    assert [token.kind for token in reading.tokens] == ["due"]
    assert reading.tokens[0].text == text[2:]


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("x at 5pm", time(17)),
        ("x 5pm", time(17)),
        ("x 5 pm", time(17)),
        ("x 5:30 pm", time(17, 30)),
        ("x 5:30pm", time(17, 30)),
        ("x 17:00", time(17)),
        ("x at 17:00", time(17)),
        ("x at noon", time(12)),
        ("x noon", time(12)),
        ("x 12pm", time(12)),
        ("x 11:59 PM", time(23, 59)),
    ],
)
def test_a_time_alone_is_today_until_it_has_passed(text: str, at: time) -> None:
    reading = read_at(text, SATURDAY.replace(hour=8))
    assert reading.title == "x"
    assert reading.due == instant(date(2026, 11, 28), at)
    assert spans(reading) == [("due", text[2:])]


@pytest.mark.parametrize("text", ["x midnight", "x 12:00 am", "x 12am", "x at 9am"])
def test_a_time_that_has_passed_is_tomorrow(text: str) -> None:
    reading = read_at(text)  # 15:00
    assert isinstance(reading.due, datetime)
    assert reading.due.date() == date(2026, 11, 29)


def test_a_time_that_is_now_is_today() -> None:
    assert read_at("x 3pm").due == instant(date(2026, 11, 28), time(15))


@pytest.mark.parametrize("second", [0, 1])
@pytest.mark.parametrize("text", ["x midnight", "x at midnight", "x 12am", "x 00:00"])
def test_midnight_at_the_start_of_the_day_is_the_next_midnight(text: str, second: int) -> None:
    # At 00:00:00 as at 00:00:01 (issue 90): not due the instant it is typed.
    reading = read_at(text, datetime(2026, 11, 28, 0, 0, second, tzinfo=BERLIN))
    assert reading.due == instant(date(2026, 11, 29), time(0))


@pytest.mark.parametrize("second", [0, 1])
def test_a_series_at_midnight_typed_at_midnight_starts_at_the_next(second: int) -> None:
    reading = read_at(
        "x every day at midnight", datetime(2026, 11, 28, 0, 0, second, tzinfo=BERLIN)
    )
    assert reading.due == instant(date(2026, 11, 29), time(0))


@pytest.mark.parametrize("text", ["x 25:00", "x 13pm", "x 0pm", "x 5:7pm", "x at 5", "x 24:00"])
def test_an_invalid_time_is_text(text: str) -> None:
    reading = read_at(text)
    assert reading.title == text and reading.due is None and reading.tokens == ()


def test_tonight_is_nine_and_a_time_beside_it_replaces_that() -> None:
    assert read_at("x tonight").due == instant(date(2026, 11, 28), time(21))
    assert read_at("x tonight at 8pm").due == instant(date(2026, 11, 28), time(20))


@pytest.mark.parametrize(
    "text",
    ["Call tomorrow 5pm", "Call tomorrow at 5pm", "Call 5pm tomorrow", "Call at 5pm tomorrow"],
)
def test_a_date_and_a_time_side_by_side_are_one_token(text: str) -> None:
    reading = read_at(text)
    assert reading.title == "Call"
    assert reading.due == instant(date(2026, 11, 29), time(17))
    assert spans(reading) == [("due", text[5:])]


def test_a_date_with_a_time_and_a_day() -> None:
    reading = read_at("Ship Dec 5 at 9:30am")
    assert reading.due == instant(date(2026, 12, 5), time(9, 30))
    assert spans(reading) == [("due", "Dec 5 at 9:30am")]


def test_a_date_and_a_time_apart_are_two_tokens_of_one_due() -> None:
    reading = read_at("Dinner tomorrow with Bob at 7pm")
    assert reading.title == "Dinner with Bob"
    due = instant(date(2026, 11, 29), time(19))
    assert [(token.text, token.value) for token in reading.tokens] == [
        ("tomorrow", due),
        ("at 7pm", due),
    ]


def test_the_first_date_wins_and_a_later_one_stays_in_the_title() -> None:
    reading = read_at("Prepare Monday report for Friday")
    assert reading.title == "Prepare report for Friday"
    assert reading.due == date(2026, 11, 30)
    reading = read_at("Prepare Monday report for Friday 5pm")
    assert reading.title == "Prepare report for Friday"
    assert reading.due == instant(date(2026, 11, 30), time(17))


def test_the_first_time_wins() -> None:
    reading = read_at("x 5pm and 6pm")
    assert reading.title == "x and 6pm"
    assert reading.due == instant(date(2026, 11, 28), time(17))


def test_a_month_beside_a_time_stays_a_word() -> None:
    reading = read_at("Call May 5pm")
    assert (reading.title, reading.due) == ("Call May", instant(date(2026, 11, 28), time(17)))
    reading = read_at("Party 4th of July")
    assert (reading.title, reading.due) == ("Party", date(2027, 7, 4))


def test_a_standalone_weekday_is_a_date() -> None:
    reading = read_at("Meet Friday team")
    assert (reading.title, reading.due) == ("Meet team", date(2026, 12, 4))


@pytest.mark.parametrize(
    "text",
    [
        "Call May",
        "Read The 5th Wave",
        "Buy 2 eggs",
        "x Feb 30",
        "x 2026-02-30",
        "x Apr 31",
        "x on the 32nd",
        "x on the 2th",
        "x in 0 days",
        "x in 1001 days",
        "x in 2 day",
        "x 0 Dec",
        "The 9/11 Report",
    ],
)
def test_what_is_not_a_date_is_text(text: str) -> None:
    reading = read_at(text)
    assert reading.title == text and reading.due is None and reading.tokens == ()


# -- zones, daylight saving, month and year ends -------------------------------------------------


def test_today_is_the_zones_day() -> None:
    auckland = moment("Pacific/Auckland", 2027, 3, 29, 1, 0)  # still the 28th in UTC
    assert read_at("x today", auckland).due == date(2027, 3, 29)
    due = read_at("x tomorrow 9am", auckland).due
    assert isinstance(due, datetime)
    assert (due.date(), due.hour, due.utcoffset()) == (date(2027, 3, 30), 9, timedelta(hours=13))
    los_angeles = moment("America/Los_Angeles", 2027, 3, 28, 5, 0)
    assert read_at("x today", los_angeles).due == date(2027, 3, 28)
    due = read_at("x 5pm", los_angeles).due
    assert isinstance(due, datetime)
    assert (due.date(), due.hour, due.utcoffset()) == (date(2027, 3, 28), 17, timedelta(hours=-7))


def test_a_time_the_clocks_skip_moves_forward_by_the_gap() -> None:
    berlin = moment("Europe/Berlin", 2027, 3, 28, 0, 30)
    due = read_at("x today at 2:30am", berlin).due
    assert isinstance(due, datetime)
    assert (due.hour, due.minute, due.utcoffset()) == (3, 30, timedelta(hours=2))
    new_york = moment("America/New_York", 2027, 3, 14, 0, 30)
    due = read_at("x 2:30am", new_york).due
    assert isinstance(due, datetime)
    assert (due.date(), due.hour, due.minute) == (date(2027, 3, 14), 3, 30)
    assert due.utcoffset() == timedelta(hours=-4)  # EDT


def test_a_time_the_clocks_show_twice_is_the_first() -> None:
    new_york = moment("America/New_York", 2027, 11, 7, 0, 10)
    due = read_at("x 1:30am", new_york).due
    assert isinstance(due, datetime)
    assert (due.date(), due.hour, due.minute) == (date(2027, 11, 7), 1, 30)
    assert due.utcoffset() == timedelta(hours=-4)  # EDT, the first of the two


def test_month_ends() -> None:
    january = moment("Europe/Berlin", 2027, 1, 31, 12, 0)
    assert read_at("x in a month", january).due == date(2027, 2, 28)
    assert read_at("x in 1 month", moment("UTC", 2028, 1, 31, 12, 0)).due == date(2028, 2, 29)
    last = moment("Europe/Berlin", 2026, 11, 30, 12, 0)
    assert read_at("x end of month", last).due == date(2026, 11, 30)
    assert read_at("x on the 30th", last).due == date(2026, 11, 30)
    assert read_at("x on the 29th", last).due == date(2026, 12, 29)
    assert read_at("x on the 30th", january).due == date(2027, 3, 30)


def test_year_ends() -> None:
    december = moment("America/New_York", 2026, 12, 31, 18, 0)
    assert read_at("x tomorrow", december).due == date(2027, 1, 1)
    assert read_at("x Jan 5", december).due == date(2027, 1, 5)
    assert read_at("x next month", december).due == date(2027, 1, 1)
    assert read_at("x next week", december).due == date(2027, 1, 4)
    due = read_at("x 5pm", december).due  # passed: tomorrow, next year
    assert isinstance(due, datetime) and due.date() == date(2027, 1, 1)


def test_no_date_leaves_the_years_a_task_may_have() -> None:
    last = moment("UTC", 9998, 12, 31, 12, 0)
    assert read_at("x tomorrow", last).title == "x tomorrow"
    assert read_at("x in 2 years", last).due is None
    assert read_at("x today", last).due == date(9998, 12, 31)
    assert read_at("x 1899-12-31").due is None
    assert read_at("x 9999-01-01").due is None


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        read("x", now=datetime(2026, 1, 1), zone=BERLIN, directory=DIRECTORY)
