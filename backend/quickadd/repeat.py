"""Recurrence phrases (`every other monday`, `every month on the 15th`, `weekly`) into RRULE
text that `backend.recurrence` accepts, and the first due date of the series they start."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from backend.quickadd import days
from backend.quickadd.when import Keys
from backend.recurrence import INTERVAL_MAX, RuleError, normalize_rule, parse_rule

WORDS = {word: word.upper() for word in ("daily", "weekly", "monthly", "yearly")}
WORDS["annually"] = "YEARLY"
_UNITS = {"day": "DAILY", "week": "WEEKLY", "month": "MONTHLY", "year": "YEARLY"}
_UNITS |= {unit + "s": frequency for unit, frequency in _UNITS.items()}
_BYDAY = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_SETS = {"weekday": "MO,TU,WE,TH,FR", "weekend": "SA,SU"}
_SETS |= {name + "s": byday for name, byday in _SETS.items()}


def match_rule(keys: Keys, listed: Keys) -> tuple[int, str] | None:
    """A recurrence phrase at the start of `keys` (a run no punctuation splits): words taken
    and its RRULE. `listed` is the same run continued across commas, each comma word's key
    ending in ",", for weekday lists (`every mon, thu`)."""
    first = keys[0]
    if first in WORDS:
        return 1, f"FREQ={WORDS[first]}"
    if first != "every" or len(keys) < 2:
        return None
    interval, at, plural = 1, 1, False
    if keys[1] == "other":
        interval, at = 2, 2
    elif len(keys) > 2 and keys[2] in _UNITS:
        count = days.number(keys[1], 1, INTERVAL_MAX)
        if count is None:
            return None
        interval, at, plural = count, 2, count != 1
    if at >= len(keys):
        return None
    word = keys[at]
    parts = []
    if word in _UNITS:
        if plural != word.endswith("s") and not (interval == 1 and at == 2):
            return None
        frequency = _UNITS[word]
        at += 1
        extra = _on(keys[at:], frequency, listed[at:])
        if extra is not None:
            at += extra[0]
            parts.append(extra[1])
    elif word in _SETS and interval == 1:
        frequency = "WEEKLY"
        parts.append(f"BYDAY={_SETS[word]}")
        at += 1
    else:
        weekdays = _weekdays(listed[at:])
        if weekdays is None or plural:
            return None
        frequency = "WEEKLY"
        at += weekdays[0]
        parts.append(weekdays[1])
    interval_part = [f"INTERVAL={interval}"] if interval > 1 else []
    try:
        return at, normalize_rule(";".join([f"FREQ={frequency}", *interval_part, *parts]))
    except RuleError:  # pragma: no cover (every rule built here is one it accepts)
        return None


def _on(keys: Keys, frequency: str, listed: Keys) -> tuple[int, str] | None:
    """`... month on the 15th` (BYMONTHDAY) or `... week on mon and thu` (BYDAY)."""
    if keys[:1] != ("on",):
        return None
    if frequency == "MONTHLY":
        the = 1 if keys[1:2] == ("the",) else 0
        day = days.ordinal(keys[1 + the]) if len(keys) > 1 + the else None
        return None if day is None else (2 + the, f"BYMONTHDAY={day}")
    if frequency == "WEEKLY":
        weekdays = _weekdays(listed[1:])
        return None if weekdays is None else (1 + weekdays[0], weekdays[1])
    return None


def _weekday(key: str) -> int | None:
    key = key.removesuffix(",")
    if key in days.WEEKDAYS:
        return days.WEEKDAYS[key]
    if len(key) > 4 and key.endswith("s"):  # every mondays
        return days.WEEKDAYS.get(key[:-1])
    return None


def _weekdays(listed: Keys) -> tuple[int, str] | None:
    """`mon`, `mon and thu`, `mon, wed and fri`: words taken and the BYDAY part."""
    found: set[int] = set()
    taken = index = 0
    while index < len(listed):
        day = _weekday(listed[index])
        if day is None:
            break
        found.add(day)
        taken = index + 1
        following = listed[index + 1 : index + 2]
        if listed[index].endswith(","):
            index += 2 if following == ("and",) else 1
        elif following == ("and",):
            index += 2
        else:
            break
    if not found:
        return None
    return taken, "BYDAY=" + ",".join(_BYDAY[day] for day in sorted(found))


def first_due(
    rule: str, today: date, at: time | None, now: datetime, zone: ZoneInfo
) -> date | datetime | None:
    """The series' first due date when none was typed: the first day on or after today that
    the rule's pattern has (its INTERVAL counts from there); with a time that has passed on
    that day (today), the series' next occurrence instead."""
    pattern = parse_rule(rule).pattern
    single = ";".join(part for part in pattern.split(";") if not part.startswith("INTERVAL="))
    midnight = datetime.combine(today, time())
    first = rrulestr(single, dtstart=midnight).after(midnight, inc=True)
    if first is None or days.bounded(first.date()) is None:
        return None
    if at is None:
        return first.date()
    instant = days.local(first.date(), at, zone)
    if instant is not None and days.passed(at, instant, now):
        following = rrulestr(pattern, dtstart=first).after(first)
        if following is None or days.bounded(following.date()) is None:
            return None
        instant = days.local(following.date(), at, zone)
    return instant
