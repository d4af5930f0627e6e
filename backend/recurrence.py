"""Recurring tasks: RFC 5545 rules, IANA time zones and the series they describe (the series'
semantics: specs/api-contract.md, "Recurrence"). dateutil parses and expands a rule on the zone's
wall clock; this module adds the policy (one RRULE line, hourly at most, RFC 5545's ranges) and
the bounds: dateutil only stops at the year 9999 when periods keep coming up empty (seconds of
CPU), so a rule runs on a calendar shifted by a multiple of 400 years (the Gregorian cycle), and
COUNT and UNTIL are applied here, on the UTC instants."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from itertools import islice
from typing import Final
from zoneinfo import ZoneInfo

from dateutil.parser import isoparse
from dateutil.rrule import rrule, rrulestr

# Shorthands accepted for `recurrence`, stored as their RRULE.
SHORTHANDS: Final = {
    "daily": "FREQ=DAILY",
    "weekdays": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "weekly": "FREQ=WEEKLY",
    "monthly": "FREQ=MONTHLY",
    "yearly": "FREQ=YEARLY",
}
RULE_MAX_LENGTH: Final = 500
# The OpenAPI document's: a superset of what is accepted (JSON Schema cannot state a rule).
RULE_PATTERN: Final = "^[A-Za-z0-9=;:,+-]+$"
INTERVAL_MAX: Final = 1000
COUNT_MAX: Final = 100_000
# A series with no occurrence for this long has ended (a rule without one is refused).
HORIZON_YEARS: Final = 100
# Occurrences read in one evaluation (hourly: about 11 years, daily: 270); past it the series ends.
SCAN_LIMIT: Final = 100_000
# Instants must stay within the years the API accepts (backend/models/task.py).
INSTANT_MAX_YEAR: Final = 9998
_LAST_INSTANT = datetime(INSTANT_MAX_YEAR, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_CYCLE_YEARS = 400

_FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")
_TOO_FREQUENT = ("MINUTELY", "SECONDLY")
# RFC 5545 3.3.10: each part's values.
_INT_RANGES: Final = {
    "BYSECOND": (0, 59, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_PARTS = ("FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "WKST", *_INT_RANGES)
# RFC 5545 3.3.10: parts that a frequency may not use.
_NOT_WITH: Final = {
    "BYWEEKNO": ("MONTHLY", "WEEKLY", "DAILY", "HOURLY"),
    "BYYEARDAY": ("MONTHLY", "WEEKLY", "DAILY"),
    "BYMONTHDAY": ("WEEKLY",),
}
_BYDAY_ITEM = re.compile(r"([+-]?)([0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_INTEGER = re.compile(r"[+-]?[0-9]{1,4}")
_UNTIL_DATE = re.compile(r"[0-9]{8}")
_UNTIL_UTC = re.compile(r"[0-9]{8}T[0-9]{6}Z")


class RuleError(ValueError):
    """A rule a task may not have; the message says why (it becomes the 422's message)."""


@dataclass(frozen=True)
class Rule:
    """A checked rule: `text` is stored; dateutil expands `pattern`, `Schedule` applies the rest."""

    text: str
    pattern: str
    count: int | None
    # A UTC instant, or a date meaning the whole of that day in the task's time zone.
    until: datetime | date | None


def normalize_rule(value: str) -> str:
    """The stored form of `value` (a shorthand or an RRULE): `RuleError` if it is refused."""
    return parse_rule(value).text


@lru_cache(maxsize=1024)
def parse_rule(value: str) -> Rule:
    if len(value) > RULE_MAX_LENGTH:
        raise RuleError(f"a rule has at most {RULE_MAX_LENGTH} characters")
    shorthand = SHORTHANDS.get(value.strip().lower())
    text = shorthand or value.strip().upper()
    text = text.removeprefix("RRULE:")
    if not text or not re.fullmatch(r"[A-Z0-9=;,+-]+", text):
        if "DTSTART" in text:
            raise RuleError("DTSTART cannot be part of the rule: the series starts at due_date")
        raise RuleError(
            "must be one RRULE line (FREQ=WEEKLY;BYDAY=MO,TH, with or without RRULE:) or one "
            f"of {', '.join(SHORTHANDS)}"
        )
    parts: dict[str, str] = {}
    for part in text.split(";"):
        name, equals, values = part.partition("=")
        if name == "DTSTART":
            raise RuleError("DTSTART cannot be part of the rule: the series starts at due_date")
        if not equals or not name or not values:
            raise RuleError(
                "every part of a rule is NAME=VALUE, separated by ';' (FREQ=WEEKLY;BYDAY=MO)"
            )
        if name not in _PARTS:
            raise RuleError(f"unknown rule part {name} (RFC 5545: {', '.join(_PARTS)})")
        if name in parts:
            raise RuleError(f"{name} appears more than once")
        parts[name] = values
    _check_parts(parts)
    count = int(parts["COUNT"]) if "COUNT" in parts else None
    until = _until(parts["UNTIL"]) if "UNTIL" in parts else None
    pattern = ";".join(f"{k}={v}" for k, v in parts.items() if k not in ("COUNT", "UNTIL"))
    try:
        # dateutil reads the rule: values it cannot use (BYHOUR=24, WKST=XX...) raise here.
        rule = rrulestr(pattern, dtstart=datetime(2001, 1, 1))
    except (ValueError, TypeError, KeyError):
        raise RuleError("is not a valid RRULE (RFC 5545): check the values of its parts") from None
    if not isinstance(rule, rrule):  # pragma: no cover (one line is always one rrule)
        raise RuleError("must be one RRULE")
    return Rule(text=text, pattern=pattern, count=count, until=until)


def _check_parts(parts: dict[str, str]) -> None:
    frequency = parts.get("FREQ")
    if frequency is None:
        raise RuleError("FREQ is required (DAILY, WEEKLY, MONTHLY, YEARLY or HOURLY)")
    if frequency in _TOO_FREQUENT:
        raise RuleError(f"FREQ={frequency} fires more often than hourly: HOURLY at most")
    if frequency not in _FREQUENCIES:
        raise RuleError("FREQ must be DAILY, WEEKLY, MONTHLY, YEARLY or HOURLY")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RuleError("COUNT and UNTIL cannot both be given (RFC 5545)")
    for name, (low, high, negative) in _INT_RANGES.items():
        if name in parts:
            values = _integers(name, parts[name])
            if any(not low <= abs(v) <= high or (v < 0 and not negative) for v in values):
                span = f"{low}..{high}" + (f" or -{high}..-{low}" if negative else "")
                raise RuleError(f"{name} values must be {span}")
            if name in ("BYMINUTE", "BYSECOND") and len(set(values)) > 1:
                raise RuleError(f"several {name} values fire more often than hourly: give one")
    for name, frequencies in _NOT_WITH.items():
        if name in parts and frequency in frequencies:
            raise RuleError(f"{name} cannot be used with FREQ={frequency} (RFC 5545)")
    if "BYDAY" in parts:
        for item in parts["BYDAY"].split(","):
            match = _BYDAY_ITEM.fullmatch(item)
            if match is None or (match.group(1) and not match.group(2)):
                raise RuleError("BYDAY values are MO..SU, optionally numbered (+1MO, -1FR)")
            if match.group(2) is not None:
                if frequency not in ("MONTHLY", "YEARLY"):
                    raise RuleError("numbered BYDAY values (1MO) need FREQ=MONTHLY or YEARLY")
                limit = 5 if frequency == "MONTHLY" or "BYMONTH" in parts else 53
                if not 1 <= int(match.group(2)) <= limit:
                    raise RuleError(f"a BYDAY number must be 1..{limit} or -{limit}..-1")
    if "WKST" in parts and parts["WKST"] not in _WEEKDAYS:
        raise RuleError("WKST must be MO..SU")
    for name, high in (("INTERVAL", INTERVAL_MAX), ("COUNT", COUNT_MAX)):
        if name in parts:
            if not parts[name].isdigit() or len(parts[name]) > 6:
                raise RuleError(f"{name} must be a whole number 1..{high}")
            if not 1 <= int(parts[name]) <= high:
                raise RuleError(f"{name} must be 1..{high}")


def _integers(name: str, value: str) -> list[int]:
    items = value.split(",")
    if not all(_INTEGER.fullmatch(item) for item in items):
        raise RuleError(f"{name} is a list of whole numbers separated by ','")
    return [int(item) for item in items]


def _until(value: str) -> datetime | date:
    if _UNTIL_UTC.fullmatch(value):
        return _isoparse(value).astimezone(UTC)
    if _UNTIL_DATE.fullmatch(value):
        return _isoparse(value).date()
    raise RuleError("UNTIL must be a date (20261231) or a UTC date-time (20261231T170000Z)")


def _isoparse(value: str) -> datetime:
    try:
        return isoparse(value)
    except (ValueError, OverflowError):
        raise RuleError("UNTIL is not a valid date") from None


# From the locked `tzdata` package, not the system's: every machine has the same zones and rules.
TIME_ZONES: Final = tuple(
    sorted(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())
)
_KNOWN_ZONES = frozenset(TIME_ZONES)
TIME_ZONE_MAX_LENGTH: Final = 64
DEFAULT_TIME_ZONE: Final = "UTC"


def check_time_zone(name: str) -> str:
    if name not in _KNOWN_ZONES:
        raise ValueError("must be an IANA time zone name, e.g. Europe/Berlin or UTC")
    return name


@lru_cache(maxsize=len(TIME_ZONES))
def time_zone(name: str) -> ZoneInfo:
    """The zone `name` from the tzdata package (`check_time_zone` first)."""
    check_time_zone(name)
    package = resources.files("tzdata.zoneinfo")
    with package.joinpath(*name.split("/")).open("rb") as data:
        return ZoneInfo.from_file(data, key=name)


# A task due on a day is stored at that day's start on its zone's clock (the same rules in SQL:
# `task_due_end`, `task_due_anchor`).
DAY_ANCHOR: Final = time(9)  # what `minutes_before_due` counts back from on a day


def day_start(day: date, zone_name: str) -> datetime:
    """The instant (UTC) `day` starts in the zone (its first, where a zone skips midnight)."""
    return datetime.combine(day, time(0), time_zone(zone_name)).astimezone(UTC)


def day_of(instant: datetime, zone_name: str) -> date:
    """The day `instant` falls on in the zone (a day's stored start reads back as its day)."""
    return instant.astimezone(time_zone(zone_name)).date()


def day_end(instant: datetime, zone_name: str) -> datetime:
    """The instant the day of `instant` ends in the zone: the next day's start."""
    return day_start(day_of(instant, zone_name) + timedelta(days=1), zone_name)


@dataclass(frozen=True)
class Schedule:
    """A series: its rule, its time zone and its start (a UTC instant)."""

    rule: Rule
    zone: ZoneInfo
    start: datetime

    @classmethod
    def of(cls, recurrence: str, zone_name: str, start: datetime) -> Schedule:
        return cls(parse_rule(recurrence), time_zone(zone_name), start.astimezone(UTC))

    def next_after(self, instant: datetime) -> datetime | None:
        """The series' first due date after `instant`, or None when it has ended by then."""
        found = self.after(instant, 1)
        return found[0] if found else None

    def after(self, instant: datetime, limit: int) -> list[datetime]:
        """Up to `limit` due dates of the series after `instant`, within `HORIZON_YEARS`."""
        return list(islice(self._series(instant, _years_later(instant, HORIZON_YEARS)), limit))

    def _series(self, after: datetime, end: datetime) -> Iterator[datetime]:
        """The series' due dates in UTC after `after`, in order, until `end` or its own end."""
        rule, zone = self.rule, self.zone
        if self.start > after:
            yield self.start
        produced, last, scanned = 1, self.start, 0
        if rule.count is not None and produced >= rule.count:
            return
        until_day = rule.until if not isinstance(rule.until, datetime) else None
        until = rule.until if isinstance(rule.until, datetime) else None
        # Local times a day or more before `after` are before it whatever the UTC offsets:
        # without COUNT (which counts every occurrence), they need no conversion.
        skip_before = _local(after - timedelta(days=1), zone) if rule.count is None else None
        local_start = _local(self.start, zone)
        for wall in _wall_clock(rule.pattern, local_start, _local(end, zone).year):
            scanned += 1
            if scanned > SCAN_LIMIT or (until_day is not None and wall.date() > until_day):
                return
            if skip_before is not None and wall < skip_before:
                continue
            try:
                due = wall.replace(tzinfo=zone).astimezone(UTC)
            except OverflowError:
                return
            if due > end or (until is not None and due > until):
                return
            if due <= last:  # the start itself, or two local times on one instant
                continue
            produced, last = produced + 1, due
            if due > after:
                yield due
            if rule.count is not None and produced >= rule.count:
                return


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    """`instant` as a naive local time in `zone`."""
    try:
        return instant.astimezone(zone).replace(tzinfo=None)
    except OverflowError:  # the first or last hours of the calendar
        return instant.replace(tzinfo=None)


def _wall_clock(pattern: str, start: datetime, end_year: int) -> Iterator[datetime]:
    """The rule's occurrences from `start`, naive local times, through `end_year` at least:
    evaluated 400*n years later, so dateutil's stop at 9999 comes soon after `end_year`."""
    shift = _CYCLE_YEARS * max(0, (MAXYEAR - 1 - end_year) // _CYCLE_YEARS)
    expanded = rrulestr(pattern, dtstart=start.replace(year=start.year + shift))
    occurrences = iter(expanded)
    while True:
        try:
            wall = next(occurrences)
        except (StopIteration, ValueError, OverflowError):  # the end of the calendar
            return
        yield wall.replace(year=wall.year - shift)


def _years_later(instant: datetime, years: int) -> datetime:
    if instant.year + years > INSTANT_MAX_YEAR:
        return _LAST_INSTANT
    return min(instant + timedelta(days=366 * years), _LAST_INSTANT)


def shift_reminder(at: datetime, old_due: datetime, new_due: datetime) -> datetime | None:
    """An `at` reminder moved with its task's due date; None if that leaves the instants' years."""
    try:
        moved = at + (new_due - old_due)
    except OverflowError:
        return None
    return moved if 1900 <= moved.year <= INSTANT_MAX_YEAR else None


def calendar_rule(recurrence: str, zone_name: str, series_start: datetime) -> str:
    """The rule for a DTSTART at a later occurrence (a feed's): COUNT and UNTIL become one UTC
    UNTIL, the series' last instant (RFC 5545 3.3.10: a DTSTART with a TZID takes a UTC UNTIL)."""
    rule = parse_rule(recurrence)
    ends: list[datetime] = []
    if isinstance(rule.until, datetime):
        ends.append(rule.until)
    elif rule.until is not None:  # that whole local day
        after = datetime.combine(rule.until + timedelta(days=1), time(), time_zone(zone_name))
        ends.append(after.astimezone(UTC) - timedelta(seconds=1))
    if rule.count is not None:
        start = series_start.astimezone(UTC)
        schedule = Schedule.of(recurrence, zone_name, start)
        ends.append(([start, *schedule.after(start, rule.count - 1)])[-1])
    if not ends:
        return rule.pattern
    return f"{rule.pattern};UNTIL={min(ends):%Y%m%dT%H%M%SZ}"
