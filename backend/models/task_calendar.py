"""A task as iCalendar (RFC 5545) properties: `MAPPING` says, for every field with a calendar
meaning, which properties carry it and how they read and write, for CalDAV and the feeds alike
(a field reaches every calendar or none); `NOT_MAPPED` says why a writable field has none.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from icalendar import Alarm, Timezone, vCategory, vRecur, vText

from backend.errors import AppError
from backend.models.types import MINUTES_BEFORE_DUE_MAX, REMINDERS_MAX_COUNT, Priority
from backend.recurrence import (
    DAY_ANCHOR,
    TIME_ZONES,
    RuleError,
    Schedule,
    calendar_rule,
    day_of,
    normalize_rule,
    time_zone,
)

# The UID of a task no client named: CalDAV's object and every calendar feed's component.
UID_DOMAIN = "task-api"
DERIVED_UID = re.compile(r"task-([1-9][0-9]{0,17})@" + re.escape(UID_DOMAIN))
KNOWN_ZONES = frozenset(TIME_ZONES)


def derived_uid(task_id: int) -> str:
    return f"task-{task_id}@{UID_DOMAIN}"


# Refusals: each a DAV precondition (RFC 4791 5.3.2.1), a 403 with `<C:{precondition}/>`.


class CalendarObjectRefused(AppError):
    """A PUT body we do not store; `precondition`: the CalDAV element of its `DAV:error`."""

    status_code = 403
    code = "INVALID_CALENDAR_OBJECT"
    message = "Not a calendar object this collection can store"
    precondition: ClassVar[str] = "valid-calendar-object-resource"


class MalformedCalendar(CalendarObjectRefused):
    """Not iCalendar text we can read (bad UTF-8, control bytes, unbalanced BEGIN/END, ...)."""

    message = "The body is not valid iCalendar data"
    precondition = "valid-calendar-data"


class InvalidTodoObject(CalendarObjectRefused):
    """A VTODO whose shape RFC 4791 4.1 or RFC 5545 forbids (several UIDs, METHOD, ...)."""


class UnsupportedRecurrence(CalendarObjectRefused):
    """A recurrence the task model cannot hold (the message says which part and why)."""


# Values.


class Text(vText):
    """A TEXT value escaped as RFC 5545 3.3.11 says (`vText` reads a literal `\\N` as a break)."""

    def to_ical(self) -> bytes:
        escaped = str(self).replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
        return re.sub(r"\r\n|\r|\n", r"\\n", escaped).encode()


class Categories(vCategory):
    """CATEGORIES: each tag a `Text`, joined by the commas that separate them."""

    def to_ical(self) -> bytes:
        return b",".join(Text(str(tag)).to_ical() for tag in self.cats)


_FLOATING_UNTIL = re.compile(r"UNTIL=([0-9]{8}T[0-9]{6})(?=;|$)")
_UTC_UNTIL = re.compile(r"UNTIL=([0-9]{8}T[0-9]{6}Z)(?=;|$)")
# What `minutes_before_due` counts back from on a day (the database's `task_due_anchor`).
_ANCHOR = timedelta(hours=DAY_ANCHOR.hour, minutes=DAY_ANCHOR.minute)
_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|[\r\n\u2028\u2029])[ \t]*")
_PRIORITY_OUT = {"high": 1, "medium": 5, "low": 9}
# RFC 5545 3.8.1.9, by value: 0 none, 1-4 high, 5 medium, 6-9 low.
_PRIORITY_IN = [Priority.none, *[Priority.high] * 4, Priority.medium, *[Priority.low] * 4]


def params(parameters: Any) -> dict[str, str]:
    """Parameters by upper-case name; a multi-valued one (`RELTYPE=A,B`) as its text."""
    return {
        str(name).upper(): ",".join(map(str, value)) if isinstance(value, list) else str(value)
        for name, value in parameters.items()
    }


def as_utc(value: date | datetime, zone: str) -> datetime:
    """A DATE (its midnight), a floating DATE-TIME (on `zone`'s clock) or an aware one, in UTC."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=time_zone(zone))
    return value.astimezone(UTC)


# Reading a VTODO: each on the clock `zone` (a floating or date value's).


def _title(todo: Any, zone: str) -> str:
    """SUMMARY; its line breaks (an escaped newline) are spaces: a title is one line."""
    return _LINE_BREAKS.sub(" ", str(todo.get("SUMMARY", "")))


def _description(todo: Any, zone: str) -> str | None:
    return str(todo.get("DESCRIPTION", "")) or None


def completed(todo: Any, zone: str) -> bool:
    """STATUS decides when present (CANCELLED is closed too); else COMPLETED or 100 percent."""
    status = todo.get("STATUS")
    if status is not None:
        return str(status).upper() in ("COMPLETED", "CANCELLED")
    percent = todo.get("PERCENT-COMPLETE")
    return todo.get("COMPLETED") is not None or (percent is not None and int(percent) >= 100)


def _priority(todo: Any, zone: str) -> Priority:
    number = int(todo.get("PRIORITY", 0))  # absent: 0, none
    if not 0 <= number <= 9:
        raise MalformedCalendar("PRIORITY is 0-9 (RFC 5545 3.8.1.9)")
    return _PRIORITY_IN[number]


def _due_value(todo: Any) -> date | datetime | None:
    """DUE's value, else DTSTART + DURATION (RFC 5545 3.8.2.5: a VTODO has one of the two)."""
    value = getattr(todo.get("DUE"), "dt", None)
    start, duration = todo.get("DTSTART"), todo.get("DURATION")
    if value is None and start is not None and isinstance(getattr(duration, "dt", 0), timedelta):
        value = start.dt + duration.dt
    return value


def due(todo: Any, zone: str) -> tuple[datetime | None, str | None]:
    """DUE in UTC, and its TZID when an IANA name (None: UTC, floating, Outlook's own names)."""
    value = _due_value(todo)
    if value is None:
        return None, None
    key = getattr(getattr(value, "tzinfo", None), "key", None)
    named = key if key in KNOWN_ZONES and key not in ("UTC", "Etc/UTC") else None
    return as_utc(value, zone), named


def due_day(todo: Any) -> date | None:
    """The day a VTODO is due on when its DUE is a DATE (Apple Reminders, Tasks.org)."""
    value = _due_value(todo)
    return value if isinstance(value, date) and not isinstance(value, datetime) else None


def _due_field(todo: Any, zone: str) -> tuple[date | datetime | None, str | None]:
    """`due_date` as the API takes it (a DATE DUE's day, else the instant), and DUE's zone."""
    when, named = due(todo, zone)
    day = due_day(todo)
    return (day if day is not None and when is not None else when), named


def _same_due(read: Any, shown: Any, task: Any) -> bool:
    """The due date as the client's lines and ours state it: the same DATE, or the same instant
    (a DATE at its zone's midnight included); a TZID naming the task's zone, or none."""
    (value, named), (ours, zone) = read, shown
    if named not in (None, zone):
        return False
    if isinstance(ours, datetime) and value is not None and not isinstance(value, datetime):
        return as_utc(value, task.time_zone) == ours  # a DATE naming an instant's midnight
    return bool(value == ours) and type(value) is type(ours)


def _tags(todo: Any, zone: str) -> list[str]:
    """Every CATEGORIES value in order, once each, as a tag is stored; blank ones dropped."""
    tags: list[str] = []
    found = todo.get("CATEGORIES", [])  # not `todo.categories`: it adds an empty one
    for prop in found if isinstance(found, list) else [found]:
        for cat in prop.cats:
            # icalendar splits on the unescaped commas but leaves each item escaped (`\\,`).
            tag = unicodedata.normalize("NFC", str(vText.from_ical(str(cat))).strip().lower())
            if tag and tag not in tags:
                tags.append(tag)
    return tags


def rule(todo: Any, zone: str) -> str | None:
    """The RRULE as the task model holds it: None for a series of one (the `caldav` library
    counts COUNT down to 1 as it completes occurrences)."""
    found = sent_rule(todo, zone)
    when, named = due(todo, zone)
    if found is None or when is None:
        return None
    return None if Schedule.of(found, named or zone, when).next_after(when) is None else found


def sent_rule(todo: Any, zone: str) -> str | None:
    """The RRULE as sent (normalized), on the series' clock (DUE's zone, else `zone`)."""
    rules = todo.rrules
    if not rules:
        return None
    if len(rules) > 1:
        raise UnsupportedRecurrence("A task has one RRULE")
    when, named = due(todo, zone)
    text = rules[0].to_ical().decode()
    # A floating UNTIL (no Z) is read on the series' clock and written in UTC.
    match = _FLOATING_UNTIL.search(text)
    if match is not None:
        local = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S")
        local = local.replace(tzinfo=time_zone(named or zone))
        text = text.replace(match.group(0), f"UNTIL={local.astimezone(UTC):%Y%m%dT%H%M%SZ}")
    if when is None:
        raise UnsupportedRecurrence(
            "A recurring task needs a DUE, or DTSTART and DURATION (its first occurrence)"
        )
    try:
        return normalize_rule(text)
    except RuleError as error:
        raise UnsupportedRecurrence(f"RRULE {error}") from None


def rule_key(text: str | None) -> frozenset[str] | None:
    """A rule's parts, in no order: two spellings of one rule compare equal."""
    return None if text is None else frozenset(text.split(";"))


def is_parent(prop: Any) -> bool:
    return params(prop.params).get("RELTYPE", "PARENT").upper() == "PARENT"


def parent_uid(todo: Any, zone: str) -> str | None:
    """The first RELATED-TO whose RELTYPE is PARENT (or absent, which means PARENT)."""
    return next((str(p) for p in todo.related_to if is_parent(p) and str(p).strip()), None)


def sort_order(todo: Any, zone: str) -> int | None:
    value = str(todo.get("X-APPLE-SORT-ORDER", ""))
    return int(value) if re.fullmatch(r"[+-]?[0-9]{1,18}", value) else None


def reminders(todo: Any, zone: str) -> list[dict[str, Any]]:
    """The DISPLAY and AUDIO alarms: relative to the due date up to four weeks before it ->
    `minutes_before_due`; any other time -> `at`; the first `REMINDERS_MAX_COUNT`."""
    when, named = due(todo, zone)
    zone = named or zone
    start = getattr(todo.get("DTSTART"), "dt", None)
    anchor = _ANCHOR if due_day(todo) is not None else timedelta(0)
    found: list[dict[str, Any]] = []
    for alarm in todo.walk("VALARM"):
        trigger = alarm.get("TRIGGER")
        if str(alarm.get("ACTION", "DISPLAY")).upper() not in ("DISPLAY", "AUDIO") or not trigger:
            continue
        one = _reminder(trigger, when, start, zone, anchor)
        if one is not None and one not in found:
            found.append(one)
    return found[:REMINDERS_MAX_COUNT]


def _reminder(
    trigger: Any,
    when: datetime | None,
    start: date | datetime | None,
    zone: str,
    anchor: timedelta = timedelta(0),
) -> dict[str, Any] | None:
    """One trigger as a reminder; `anchor`: where `minutes_before_due` counts back from."""
    value = trigger.dt
    if isinstance(value, date):  # an absolute trigger (a datetime is a date too)
        return {"at": as_utc(value, zone)}
    if params(trigger.params).get("RELATED", "START").upper() != "END" and start is not None:
        return {"at": as_utc(start, zone) + value}
    if when is None:
        return None
    before = anchor - value
    limit = timedelta(minutes=MINUTES_BEFORE_DUE_MAX)
    if timedelta(0) <= before <= limit and not before.total_seconds() % 60:
        return {"minutes_before_due": int(before.total_seconds() // 60)}
    return {"at": when + value}


# Writing a task: onto an icalendar component, for one reader.


@dataclass(frozen=True)
class Target:
    """A VTODO (CalDAV, a `todos` feed) or a VEVENT (an `events` feed), with its parent's UID
    and the reader's own reminders."""

    kind: Literal["todo", "event"]
    reminders: Any = ()
    parent_uid: str | None = None


def is_day(task: Any) -> bool:
    """Whether `task` (a row) is due on a day."""
    return bool(getattr(task, "all_day", False)) and task.due_date is not None


def served_rule(recurrence: str, zone: str, start: datetime, day: bool) -> str:
    """`calendar_rule`; a series on days ends on a DATE (RFC 5545 3.8.5.3: DTSTART's type)."""
    text = calendar_rule(recurrence, zone, start)
    if not day:
        return text
    return _UTC_UNTIL.sub(
        lambda m: f"UNTIL={day_of(datetime.strptime(m.group(1), '%Y%m%dT%H%M%S%z'), zone):%Y%m%d}",
        text,
    )


def shown_rule(task: Any) -> str | None:
    """An open recurring task's rule from its occurrence, COUNT as UNTIL (a client expands it
    from the DUE as the API does); a completed occurrence carries none."""
    if task.recurrence is None or task.completed or task.due_date is None:
        return None
    start = task.series_start or task.due_date
    return normalize_rule(served_rule(task.recurrence, task.time_zone, start, is_day(task)))


def _same_rule(read: str | None, shown: str | None, task: Any) -> bool:
    """Two spellings of one series: parts in any order, or a client's COUNT for our UNTIL."""
    if rule_key(read) == rule_key(shown) or read is None or task.due_date is None:
        return rule_key(read) == rule_key(shown)
    served = served_rule(read, task.time_zone, task.due_date, is_day(task))
    return rule_key(normalize_rule(served)) == rule_key(shown)


def _write_due(component: Any, task: Any, target: Target) -> None:
    """The due date on its zone's clock: a day as a DATE (with DTSTART when it recurs, RFC 5545
    3.8.5.3: the recurrence set is DTSTART's; an event's DTEND the next day); a VTODO's
    instant at midnight as a DATE too (the same instant reads back)."""
    if is_day(task):
        day = day_of(task.due_date, task.time_zone)
        if target.kind == "todo":
            component.add("due", day)
            if shown_rule(task) is not None:
                component.add("dtstart", day)
        else:
            component.add("dtstart", day)
            component.add("dtend", day + timedelta(days=1))
        return
    if task.due_date is not None:
        local: datetime = task.due_date.astimezone(time_zone(task.time_zone))
        todo = target.kind == "todo"
        component.add(
            "due" if todo else "dtstart",
            local.date() if todo and local.time() == time(0) else local,
        )


def _write_completion(component: Any, task: Any, target: Target) -> None:
    if not task.completed:
        component.add("status", "NEEDS-ACTION")
        return
    component.add("status", "COMPLETED")
    if task.completed_at is not None:
        component.add("completed", task.completed_at.astimezone(UTC))
    component.add("percent-complete", 100)


def alarm(task: Any, reminder: dict[str, Any], target: Target) -> Alarm:
    """One reminder as a DISPLAY VALARM, relative to the due date or at an instant (UTC)."""
    made = Alarm()
    made.add("action", "DISPLAY")
    made.add("description", Text(task.title))
    if "minutes_before_due" in reminder:
        related = {"RELATED": "END"} if target.kind == "todo" else {}
        before = timedelta(minutes=-int(reminder["minutes_before_due"]))
        if is_day(task):  # counted back from 09:00 of the day, the DATE being its start
            before += _ANCHOR
        made.add("trigger", before, parameters=related)
    else:
        at = reminder["at"]  # an instant, or its ISO text as stored
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        made.add("trigger", at.astimezone(UTC))
    return made


def _write_alarms(component: Any, task: Any, target: Target) -> None:
    for reminder in target.reminders:
        component.add_component(alarm(task, reminder, target))


# The mapping.


@dataclass(frozen=True)
class Mapped:
    """One calendar meaning of a task: its `fields`; the `properties` carrying it (the main one
    first); `read(todo, zone)` and `shown(task, target)` its two values, `same` whether they
    agree (then the client's lines are kept); `out(shown)` each property's value, or `write`
    writing them itself; `into`: the PUT's field values; `column`: the main property is the
    field's text (a `calendar-query` filter reads the row); `single`: at most once (RFC 5545
    3.6.2); `event`/`feed`: on a VEVENT, in the feeds; `merged`: replaced in a kept object."""

    fields: tuple[str, ...]
    properties: tuple[str, ...]
    read: Callable[[Any, str], Any]
    shown: Callable[[Any, Target], Any]
    out: Callable[[Any], Any] = lambda value: value
    parameters: dict[str, str] | None = None
    write: Callable[[Any, Any, Target], None] | None = None
    into: Callable[[Any], dict[str, Any]] | None = None
    same: Callable[[Any, Any, Any], bool] = lambda read, shown, task: bool(read == shown)
    column: bool = False
    single: bool = True
    event: bool = True
    feed: bool = True
    merged: bool = True

    @property
    def name(self) -> str:
        return self.properties[0]

    def values(self, read: Any) -> dict[str, Any]:
        """The PUT's field values from `read`'s value."""
        return self.into(read) if self.into else {name: read for name in self.fields}

    def put(self, component: Any, task: Any, target: Target) -> None:
        """The task's properties onto `component`."""
        if self.write is not None:
            self.write(component, task, target)
            return
        value = self.shown(task, target)
        if value is not None and (value := self.out(value)) is not None:
            for name in self.properties:
                component.add(name, value, parameters=self.parameters)


MAPPING: tuple[Mapped, ...] = (
    Mapped(
        (),
        ("UID",),
        read=lambda todo, zone: str(todo.get("UID", "")),
        shown=lambda task, target: derived_uid(task.id),
        merged=False,
    ),
    Mapped(
        ("title",),
        ("SUMMARY",),
        read=_title,
        shown=lambda task, target: task.title,
        out=Text,
        column=True,
    ),
    Mapped(
        ("description",),
        ("DESCRIPTION",),
        read=_description,
        shown=lambda task, target: task.description or None,
        out=Text,
        column=True,
    ),
    Mapped(
        ("completed", "completed_at"),
        ("STATUS", "COMPLETED", "PERCENT-COMPLETE"),
        read=completed,
        shown=lambda task, target: task.completed,
        write=_write_completion,
        into=lambda value: {"completed": value},
        event=False,  # a VEVENT's STATUS says whether it takes place
    ),
    Mapped(
        ("priority",),
        ("PRIORITY",),
        read=_priority,
        shown=lambda task, target: Priority(task.priority),
        out=lambda priority: _PRIORITY_OUT.get(str(priority)),
        into=lambda value: {"priority": value.value},
    ),
    Mapped(
        ("due_date", "time_zone"),
        ("DUE",),
        read=_due_field,
        # A day as its date (the API's `due_date`), an instant as itself.
        shown=lambda task, target: (
            day_of(task.due_date, task.time_zone) if is_day(task) else task.due_date,
            task.time_zone,
        ),
        write=_write_due,
        # The zone only when DUE's TZID names one (else the stored task's stays).
        into=lambda read: {"due_date": read[0]} | ({"time_zone": read[1]} if read[1] else {}),
        same=_same_due,
    ),
    Mapped(
        ("tags",),
        ("CATEGORIES",),
        read=_tags,
        shown=lambda task, target: list(task.tags),
        out=lambda tags: Categories(tags) if tags else None,
        single=False,
    ),
    Mapped(
        ("parent_id",),
        ("RELATED-TO",),
        read=parent_uid,
        shown=lambda task, target: target.parent_uid,
        out=Text,
        into=lambda uid: {},  # a UID: the DAV layer resolves it to a task
        parameters={"RELTYPE": "PARENT"},
        single=False,
    ),
    Mapped(
        ("recurrence",),
        ("RRULE",),
        read=rule,
        shown=lambda task, target: shown_rule(task),
        out=vRecur.from_ical,
        same=_same_rule,
        single=False,  # two are refused as `UnsupportedRecurrence`, saying why
    ),
    Mapped(
        (),
        ("X-APPLE-SORT-ORDER",),
        read=sort_order,
        shown=lambda task, target: task.position,
        single=False,
        feed=False,  # a move renumbers siblings without a version the feed's ETag counts
    ),
    Mapped(
        (),
        ("DTSTAMP", "LAST-MODIFIED"),
        read=lambda todo, zone: None,
        # A kept object's own only while no write followed its PUT (`vtodo.render`'s `fresh`).
        shown=lambda task, target: task.updated_at.astimezone(UTC),
    ),
    Mapped(
        ("reminders",),
        ("VALARM",),
        read=reminders,
        shown=lambda task, target: list(target.reminders),
        write=_write_alarms,
        single=False,
        merged=False,
    ),
)

BY_NAME = {m.name: m for m in MAPPING}
# The property (or component) a field's refusal names, as a REST 422 names the field.
PROPERTY_OF = {name: m.name for m in MAPPING for name in m.fields}
# The merged entry (by its main property) a kept line belongs to.
GROUP_OF = {name: m.name for m in MAPPING if m.merged for name in m.properties}
# At most once in a VTODO (RFC 5545 3.6.2): the mapped ones and those the due date is read from.
SINGLE = frozenset({"DTSTART", "DURATION", "RECURRENCE-ID"}).union(
    name for m in MAPPING if m.single for name in m.properties
)
# Why a field a client writes has no calendar property.
NOT_MAPPED: dict[str, str] = {
    "assignees": "account ids of this service; RFC 5545's ATTENDEE names calendar users by "
    "address and carries scheduling (RFC 6638), and a client dropping it would unassign",
    "list_id": "the collection: a CalDAV calendar is a list, the object's place is its href",
}


def zone(tzid: str, year: int) -> Timezone:
    """`tzid`'s VTIMEZONE from the zone database, from the year before `year` to six after."""
    first, last = date(max(year - 1, 1900), 1, 1), date(min(year + 6, 9998), 1, 1)
    return Timezone.from_tzid(tzid, first_date=first, last_date=last)


def add_zones(calendar: Any, year: int) -> None:
    """A VTIMEZONE for each zone `calendar` names, in TZID order (icalendar's own order changes
    with the hash seed, and one state must be one body, a strong ETag, in every process)."""
    at = len(calendar.timezones)
    for tzid in sorted(calendar.get_missing_tzids()):
        with suppress(ValueError):  # not in the zone database: none written, as icalendar does
            calendar.subcomponents.insert(at, zone(tzid, year))
            at += 1


def write(component: Any, task: Any, target: Target) -> None:
    """Every mapped property of `task` a feed's component for `target` holds."""
    for mapped in MAPPING:
        if mapped.feed and (mapped.event or target.kind == "todo"):
            mapped.put(component, task, target)
