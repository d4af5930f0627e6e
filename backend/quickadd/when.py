"""Date and time phrases, matched on the lowercased words of one phrase (`keys`, a run of
words no punctuation separates). Each matcher answers how many words it took and what they
mean, or None: then the words are title text. Only whole words are compared, so Mark, Jane,
Decide, monitor or paprika never read as a month or a weekday."""

from __future__ import annotations

from datetime import date, time

from backend.quickadd import days

TONIGHT = time(21, 0)
_PREFIXES = ("on", "by", "due")
_UNITS = {"day": (1, 0), "week": (7, 0), "month": (0, 1), "year": (0, 12)}
_UNITS |= {unit + "s": step for unit, step in _UNITS.items()}
_SINGULAR = ("day", "week", "month", "year")

Keys = tuple[str, ...]  # the lowercased words of one phrase, from where it may start
# The words a date or time phrase can start with (besides a digit): any other word is skipped
# without trying the matchers.
STARTS = frozenset(
    {*_PREFIXES, "today", "tonight", "tomorrow", "next", "this", "end", "in", "the", "at"}
    | {"noon", "midnight", *days.WEEKDAYS, *days.MONTHS}
)
DateMatch = tuple[int, date, time | None]  # words taken, the day, a time it implies (tonight)


def match_date(keys: Keys, today: date) -> DateMatch | None:
    """A date phrase at the start of `keys`, with its `on`/`by`/`due` prefix if any."""
    taken = 0
    while taken < 2 and taken < len(keys) and keys[taken] in _PREFIXES:
        taken += 1  # `due on Friday`, `by the 5th`
    if taken:
        rest = keys[taken:]
        the = 1 if rest[:1] == ("the",) else 0
        found = _ordinal_day(rest[the:], today)
        if found is not None:
            return taken + the + found[0], found[1], None
    body = _body(keys[taken:], today)
    if body is None:
        return None
    return taken + body[0], body[1], body[2]


def _ordinal_day(keys: Keys, today: date) -> tuple[int, date] | None:
    """`5th` (after on/by/due) or `5th of December`."""
    if not keys:
        return None
    day = days.ordinal(keys[0])
    if day is None:
        return None
    if len(keys) >= 3 and keys[1] == "of" and keys[2] in days.MONTHS:
        found = days.month_day(today, days.MONTHS[keys[2]], day)
        return None if found is None else (3, found)
    found = days.day_of_month(today, day)
    return None if found is None else (1, found)


def _body(keys: Keys, today: date) -> DateMatch | None:
    if not keys:
        return None
    first = keys[0]
    second = keys[1] if len(keys) > 1 else ""
    taken, found = 0, None
    if first == "today":
        return 1, today, None
    if first == "tonight":
        return 1, today, TONIGHT
    if first == "tomorrow":
        taken, found = 1, days.plus_days(today, 1)
    elif first in days.WEEKDAYS:
        taken, found = 1, days.next_weekday(today, days.WEEKDAYS[first])
    elif first in ("next", "this") and second in days.WEEKDAYS:
        taken, found = 2, days.next_weekday(today, days.WEEKDAYS[second])
    elif first == "next" and second == "week":
        taken, found = 2, days.plus_days(today, 7 - today.weekday())
    elif first == "next" and second == "month":
        taken, found = 2, days.plus_months(today.replace(day=1), 1)
    elif first == "end" and second == "of":
        month = 3 if keys[2:3] == ("month",) else 4 if keys[2:4] == ("the", "month") else 0
        return (month, days.month_end(today), None) if month else None
    elif first == "in" and second:
        return _later(keys, today)
    elif first in days.MONTHS and second:
        return _month_day(keys, days.MONTHS[first], days.day_number(second), today)
    elif second in days.MONTHS:
        return _month_day(keys, days.MONTHS[second], days.day_number(first), today)
    elif first == "the":
        ordinal = _ordinal_day(keys[1:], today)
        if ordinal is not None and ordinal[0] == 3:  # `the 5th of May`; a bare `the 5th` is text
            return 4, ordinal[1], None
        return None
    elif first[:1].isdigit():
        ordinal = _ordinal_day(keys, today)
        if ordinal is not None and ordinal[0] == 3:
            return 3, ordinal[1], None
        taken, found = 1, days.iso(first)
    return None if found is None else (taken, found, None)


def _month_day(keys: Keys, month: int, day: int | None, today: date) -> DateMatch | None:
    """`Dec 5` or `5 Dec`: the next one not past; with a year after it (`Dec 5 2027`), that
    year's, past or not."""
    if day is None:
        return None
    dated = days.in_year(keys[2], month, day) if len(keys) > 2 else None
    if dated is not None:
        return 3, dated, None
    found = days.month_day(today, month, day)
    return None if found is None else (2, found, None)


def _later(keys: Keys, today: date) -> DateMatch | None:
    """`in a week`, `in 3 days`, `in 2 months` (from the 31st: the shorter month's last)."""
    if len(keys) < 3 or keys[2] not in _UNITS:
        return None
    count = 1 if keys[1] in ("a", "an", "one") else days.number(keys[1])
    if count is None or (count != 1 and keys[2] in _SINGULAR) or keys[1] == "an":
        return None
    step_days, step_months = _UNITS[keys[2]]
    if step_months:
        found = days.plus_months(today, count * step_months)
    else:
        found = days.plus_days(today, count * step_days)
    return None if found is None else (3, found, None)


def match_time(keys: Keys) -> tuple[int, time] | None:
    """`at 5pm`, `5 pm`, `5:30pm`, `17:00`, `noon`, `midnight`: words taken and the time."""
    taken = 1 if keys[:1] == ("at",) else 0
    if len(keys) <= taken:
        return None
    word = keys[taken]
    if word == "noon":
        return taken + 1, time(12, 0)
    if word == "midnight":
        return taken + 1, time(0, 0)
    half = ""
    if word[-2:] in ("am", "pm"):
        half, word = word[-2:], word[:-2]
    elif len(keys) > taken + 1 and keys[taken + 1] in ("am", "pm"):
        half = keys[taken + 1]
        taken += 1
    clock = _clock(word, half)
    return None if clock is None else (taken + 1, clock)


def _clock(word: str, half: str) -> time | None:
    """`5`/`5:30` with am or pm (12am is midnight, 12pm noon), or `17:00` (24-hour)."""
    hours, colon, minutes = word.partition(":")
    hour = days.number(hours, 0, 23) if len(hours) <= 2 else None
    minute = 0
    if colon:
        minute_value = days.number(minutes, 0, 59) if len(minutes) == 2 else None
        if minute_value is None:
            return None
        minute = minute_value
    if hour is None:
        return None
    if half:
        if not 1 <= hour <= 12:
            return None
        return time(hour % 12 + (12 if half == "pm" else 0), minute)
    return time(hour, minute) if colon else None
