"""Calendar words and day arithmetic, bounded to the years a task may have (1900..9998):
a phrase that would leave them is not a date, so it stays in the title."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

FIRST_YEAR = 1900
LAST_YEAR = 9998
COUNT_MAX = 1000  # `in N days`, `every N weeks`: larger N is text


def _numbered(groups: str, start: int) -> dict[str, int]:
    """Each name of `groups` (`"a b|c"`: a and b name one thing) to its group's number."""
    return {name: n for n, group in enumerate(groups.split("|"), start) for name in group.split()}


WEEKDAYS = _numbered(
    "monday mon|tuesday tue tues|wednesday wed|thursday thu thur thurs|friday fri|saturday sat|"
    "sunday sun",
    0,
)
MONTHS = _numbered(
    "january jan|february feb|march mar|april apr|may|june jun|july jul|august aug|"
    "september sep sept|october oct|november nov|december dec",
    1,
)
_SUFFIXES = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}


def number(key: str, low: int = 1, high: int = COUNT_MAX) -> int | None:
    """`key` as a number in low..high (ASCII digits, at most 4), else None."""
    if not 0 < len(key) <= 4 or not key.isascii() or not key.isdigit():
        return None
    value = int(key)
    return value if low <= value <= high else None


def ordinal(key: str) -> int | None:
    """`5th`, `1st`, `22nd` as a day of a month (1..31), the suffix the right one."""
    day = number(key[:-2], 1, 31)
    if day is None or key[:1] == "0" or key[-2:] != _SUFFIXES.get(day, "th"):
        return None
    return day


def day_number(key: str) -> int | None:
    """A day of a month typed as `5` or `5th`."""
    if key[-2:].isalpha():
        return ordinal(key)
    return number(key, 1, 31) if len(key) <= 2 else None


def bounded(day: date) -> date | None:
    return day if FIRST_YEAR <= day.year <= LAST_YEAR else None


def plus_days(day: date, days: int) -> date | None:
    try:
        return bounded(day + timedelta(days=days))
    except OverflowError:
        return None


def plus_months(day: date, months: int) -> date | None:
    """`months` later, on the same day or the shorter month's last (Jan 31 -> Feb 28)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        return None
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def next_weekday(today: date, weekday: int) -> date | None:
    """The next such day strictly after today."""
    return plus_days(today, (weekday - today.weekday() - 1) % 7 + 1)


def month_end(today: date) -> date:
    return today.replace(day=calendar.monthrange(today.year, today.month)[1])


def day_of_month(today: date, day: int) -> date | None:
    """The `day`th of this month if not past, else of the next month that has it."""
    start = today.replace(day=1)
    for ahead in range(3):  # every run of three months has a 31st
        month = plus_months(start, ahead)
        if month is None:
            return None
        if day <= calendar.monthrange(month.year, month.month)[1]:
            found = month.replace(day=day)
            if found >= today:
                return found
    return None  # pragma: no cover (three months always reach it)


def month_day(today: date, month: int, day: int) -> date | None:
    """`month`/`day` this year if not past, else the next year that has it (Feb 29)."""
    if day > (29 if month == 2 else calendar.monthrange(2001, month)[1]):
        return None  # never a date (Feb 30, Apr 31): text
    for year in range(today.year, min(today.year + 9, LAST_YEAR + 1)):
        if day <= calendar.monthrange(year, month)[1]:
            found = date(year, month, day)
            if found >= today:
                return found
    return None


def in_year(key: str, month: int, day: int) -> date | None:
    """`month`/`day` of the year `key` (`Oct 5 2027`, as Todoist exports a date); None when
    `key` is no year a task may have or that year has no such day."""
    year = number(key, FIRST_YEAR, LAST_YEAR) if len(key) == 4 else None
    if year is None or day > calendar.monthrange(year, month)[1]:
        return None
    return date(year, month, day)


def iso(key: str) -> date | None:
    """`2026-12-05` exactly (an impossible day is None)."""
    if len(key) != 10 or key[4] != "-" or key[7] != "-":
        return None
    parts = key[:4], key[5:7], key[8:]
    if not all(part.isascii() and part.isdigit() for part in parts):
        return None
    try:
        return bounded(date(int(parts[0]), int(parts[1]), int(parts[2])))
    except ValueError:
        return None


def passed(at: time, instant: datetime, now: datetime) -> bool:
    """Whether a time typed without a date, `at`, on today's `instant`, is past: a time that is
    now is today, but midnight typed at 00:00:00 is the next one, as at 00:00:01 (it names the
    day's end, never the instant it is typed)."""
    return now > instant or (now == instant and at == time(0))


def local(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The instant of wall time `at` on `day`: a time the clocks skip is moved forward by the
    gap, one they show twice is the first (fold=0), as RFC 5545 reads them."""
    wall = datetime.combine(day, at, tzinfo=zone)
    try:
        instant = wall.astimezone(UTC).astimezone(zone)
    except OverflowError:
        return None
    return instant if FIRST_YEAR <= instant.year <= LAST_YEAR else None
