"""A task as a CalDAV object (issue 62; specs/caldav.md): VTODO in, task fields out, and back.

Three functions for the DAV layer:

- `parse(body, zone=...)`: a client's PUT body -> `ParsedTodo` (the task fields the REST
  service accepts, validated by `TaskUpdate`; the UID; the parent's UID; the recurrence
  overrides; the object to keep). Anything a client can send that we refuse raises a
  `CalendarObjectRefused` subclass (a 403 with its CalDAV precondition), never another error.
- `render(task, kept, reader_reminders, parent_uid=...)`: the bytes one reader gets. The client's
  object (`kept`, as `ParsedTodo.keep` stored it) is merged, never rebuilt: each property we
  model is replaced by ours only when its meaning differs from ours (a REST edit), so an
  unchanged task comes back with the client's own lines; every line we do not model (X-
  properties, unknown properties and parameters, unknown components, other VTIMEZONEs) comes
  back byte for byte. VALARMs are the reader's own reminders: a kept object holds none.
- `etag(body)`: the strong ETag of exactly those bytes.

The text is read and written by `icalendar` (content lines, values, escaping, folding,
VTIMEZONE); what is kept is kept as the client's raw lines, grouped by their BEGIN/END.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar

from icalendar import Alarm, Calendar, Todo, vRecur, vText
from icalendar.parser import Contentline
from pydantic import ValidationError

from backend.errors import AppError
from backend.models.task import TaskUpdate
from backend.models.types import (
    MINUTES_BEFORE_DUE_MAX,
    REMINDERS_MAX_COUNT,
    Priority,
)
from backend.recurrence import (
    DEFAULT_TIME_ZONE,
    TIME_ZONES,
    RuleError,
    Schedule,
    calendar_rule,
    normalize_rule,
    time_zone,
)
from backend.services.calendar_ics import _Categories, _Text

PRODUCT = "-//Task API//CalDAV//EN"
UID_DOMAIN = "task-api"
# Bounds on what a PUT may hold (RFC 4791 `max-resource-size`): a task with a long description,
# its zones and a few hundred recurrence overrides fits many times over.
MAX_OBJECT_BYTES = 256 * 1024
MAX_LINES = 4000
MAX_COMPONENTS = 400
MAX_DEPTH = 4  # VCALENDAR > VTODO > VALARM > one more (an X- component inside)
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
# The version of `render`'s output, part of every `object_tag`: bump it whenever the same
# values render differently (a property added or written otherwise, another icalendar).
RENDER_FORMAT = 2

# The properties of the master VTODO that we model, by the value they carry ("what"). Each
# group is replaced as a whole when our value differs from the one the kept lines carry.
_GROUPS: dict[str, tuple[str, ...]] = {
    "title": ("SUMMARY",),
    "description": ("DESCRIPTION",),
    "completion": ("STATUS", "COMPLETED", "PERCENT-COMPLETE"),
    "priority": ("PRIORITY",),
    "due": ("DUE",),
    "tags": ("CATEGORIES",),
    "parent": ("RELATED-TO",),
    "recurrence": ("RRULE",),
    "order": ("X-APPLE-SORT-ORDER",),
    "stamps": ("DTSTAMP", "LAST-MODIFIED"),
}
_GROUP_OF = {name: group for group, names in _GROUPS.items() for name in names}
# The order our groups are written in when the kept object has none of their lines.
_ORDER = tuple(_GROUPS)
_ALLOWED_COMPONENTS = frozenset({"VTODO", "VTIMEZONE"})
_NOT_A_TODO = frozenset({"VEVENT", "VJOURNAL", "VFREEBUSY", "VAVAILABILITY"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FLOATING_UNTIL = re.compile(r"UNTIL=([0-9]{8}T[0-9]{6})(?=;|$)")
_KNOWN_ZONES = frozenset(TIME_ZONES)


# ---------------------------------------------------------------------------------------------
# Errors: each is a DAV precondition (RFC 4791 5.3.2.1), a 403 with `<C:{precondition}/>`.


class CalendarObjectRefused(AppError):
    """A PUT body we do not store: nothing is written. `precondition` is the CalDAV element
    (namespace `CALDAV_NS`) the DAV layer puts in its `DAV:error` body."""

    status_code = 403
    code = "INVALID_CALENDAR_OBJECT"
    message = "Not a calendar object this collection can store"
    precondition: ClassVar[str] = "valid-calendar-object-resource"


class ObjectTooLarge(CalendarObjectRefused):
    message = f"A calendar object has at most {MAX_OBJECT_BYTES} bytes"
    precondition = "max-resource-size"


class MalformedCalendar(CalendarObjectRefused):
    """Not iCalendar (RFC 5545) text we can read: bad UTF-8, NUL or control bytes, lines that
    are not content lines, unbalanced BEGIN/END, values of the wrong type."""

    message = "The body is not valid iCalendar data"
    precondition = "valid-calendar-data"


class NotATodo(CalendarObjectRefused):
    """A VEVENT (VJOURNAL, ...) in a task collection, or no VTODO at all."""

    message = "A task collection holds VTODO components only"
    precondition = "supported-calendar-component"


class InvalidTodoObject(CalendarObjectRefused):
    """A VTODO whose shape RFC 4791 4.1 forbids: several UIDs, no UID, no master, METHOD."""


class UnsupportedRecurrence(CalendarObjectRefused):
    """A recurrence the task model cannot hold (the message says which part and why)."""


class FieldRefused(CalendarObjectRefused):
    """A value the REST API would refuse too (a 201-character SUMMARY, a 33-character tag):
    `details` name the property, as a REST 422 names the field."""


# ---------------------------------------------------------------------------------------------
# The raw object: content lines as the client wrote them, grouped by BEGIN/END.


@dataclass
class _Line:
    raw: str  # the physical lines, folds and line ends included, exactly as received
    name: str  # upper-case property name
    params: dict[str, str]
    value: str


@dataclass
class _Block:
    name: str
    begin: str
    items: list[_Line | _Block] = field(default_factory=list)
    end: str = ""

    def lines(self, name: str) -> list[_Line]:
        return [item for item in self.items if isinstance(item, _Line) and item.name == name]

    def blocks(self, name: str | None = None) -> list[_Block]:
        return [
            item
            for item in self.items
            if isinstance(item, _Block) and (name is None or item.name == name)
        ]

    def text(self) -> str:
        return (
            self.begin
            + "".join(item.raw if isinstance(item, _Line) else item.text() for item in self.items)
            + self.end
        )


_PHYSICAL = re.compile(r"[^\n]*\n|[^\n]+$")


def _logical_lines(text: str) -> Iterator[str]:
    """Each content line with its continuation lines (RFC 5545 3.1), as received. Lines end
    at LF only (`str.splitlines` would also split inside a value at U+2028, U+0085, ...)."""
    current = ""
    for physical in _PHYSICAL.findall(text):
        if physical[:1] in (" ", "\t") and current:
            current += physical
            continue
        if current:
            yield current
        current = physical
    if current:
        yield current


def _unfold(raw: str) -> str:
    return re.sub(r"\r?\n[ \t]", "", raw).rstrip("\r\n")


def _tree(text: str) -> _Block:
    """The one VCALENDAR of `text` as blocks; `MalformedCalendar` if it is not one."""
    stack: list[_Block] = []
    top: _Block | None = None
    count = 0
    for number, raw in enumerate(_logical_lines(text)):
        if number >= MAX_LINES:
            raise ObjectTooLarge(f"A calendar object has at most {MAX_LINES} content lines")
        unfolded = _unfold(raw)
        if not unfolded.strip():
            if stack:
                raise MalformedCalendar("An empty line inside a component")
            continue
        try:
            name, params, value = Contentline(unfolded).parts()  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, IndexError, TypeError):
            raise MalformedCalendar(f"Line {number + 1} is not an iCalendar content line") from None
        name = name.upper()
        if name == "BEGIN":
            count += 1
            if count > MAX_COMPONENTS or len(stack) >= MAX_DEPTH:
                raise ObjectTooLarge("Too many or too deeply nested components")
            block = _Block(value.upper(), raw)
            if stack:
                stack[-1].items.append(block)
            elif top is not None:
                raise MalformedCalendar("A calendar object is one VCALENDAR")
            else:
                top = block
            stack.append(block)
        elif name == "END":
            if not stack or stack[-1].name != value.upper():
                raise MalformedCalendar(f"END:{value} does not close the open component")
            stack.pop().end = raw
        elif not stack:
            raise MalformedCalendar("A property outside BEGIN:VCALENDAR ... END:VCALENDAR")
        else:
            stack[-1].items.append(_Line(raw, name, _params(params), value))
    if stack or top is None or top.name != "VCALENDAR":
        raise MalformedCalendar("A calendar object is one complete VCALENDAR")
    if not top.end.endswith("\n"):
        top.end += "\r\n"
    return top


def _params(params: Any) -> dict[str, str]:
    """Parameters by upper-case name; a multi-valued one (`RELTYPE=A,B`) as its text."""
    return {
        str(name).upper(): ",".join(map(str, value)) if isinstance(value, list) else str(value)
        for name, value in params.items()
    }


def _master(calendar: _Block) -> _Block:
    return next(b for b in calendar.blocks("VTODO") if not b.lines("RECURRENCE-ID"))


# ---------------------------------------------------------------------------------------------
# Parsing: a PUT body into what the task service takes.


@dataclass(frozen=True)
class Override:
    """A VTODO with RECURRENCE-ID: one occurrence of the series, as the client changed it
    (Thunderbird completes an occurrence this way)."""

    recurrence_id: datetime  # UTC; a date means its midnight on the series' clock
    completed: bool
    due_date: datetime | None


@dataclass(frozen=True)
class ParsedTodo:
    """A PUT body, read. `fields` are the REST fields (a `TaskUpdate` sending every one we
    model: a property the client left out clears the field, as a whole-object PUT means);
    `keep` is the object to store beside the task: the client's bytes minus its VALARMs
    (reminders are per reader: the writer's go to `fields["reminders"]`)."""

    uid: str
    fields: dict[str, Any]
    parent_uid: str | None
    sort_order: int | None
    completed_at: datetime | None  # the client's COMPLETED (ours is set by the service)
    overrides: tuple[Override, ...]
    keep: bytes

    def update(self) -> TaskUpdate:
        """The fields as the service's PATCH takes them (every modelled field sent)."""
        return TaskUpdate.model_validate(self.fields)

    def create_fields(self) -> dict[str, Any]:
        """The fields for `TaskCreate` (nulls and empty values left to the defaults)."""
        return {k: v for k, v in self.fields.items() if v not in (None, [])}


def parse(body: bytes, zone: str = DEFAULT_TIME_ZONE) -> ParsedTodo:
    """Read a client's PUT body. `zone` is the stored task's time zone (UTC for a new task): a
    floating DUE and a date-only DUE are read on its clock. Raises `CalendarObjectRefused`
    (a subclass saying which precondition) for anything we do not store."""
    text = _decode(body)
    calendar = _tree(text)
    try:
        parsed = Calendar.from_ical(text)
    except Exception as error:  # the library's own parse errors are many types
        raise MalformedCalendar(_parse_message(error)) from None
    if not isinstance(parsed, Calendar):
        raise MalformedCalendar("A calendar object is one VCALENDAR")
    for component in parsed.walk():
        if getattr(component, "errors", None):
            raise MalformedCalendar("A property's value is not valid iCalendar")
    _check_shape(calendar)
    todos = list(parsed.walk("VTODO"))
    masters = [t for t in todos if t.get("RECURRENCE-ID") is None]
    master = masters[0]
    try:
        return _read(calendar, master, todos, zone)
    except CalendarObjectRefused:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as error:
        raise MalformedCalendar(_parse_message(error)) from None


def _decode(body: bytes) -> str:
    if len(body) > MAX_OBJECT_BYTES:
        raise ObjectTooLarge()
    if b"\x00" in body:
        raise MalformedCalendar("The body holds a NUL byte")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCalendar("The body is not UTF-8") from None
    text = text.removeprefix("\ufeff")
    if _CONTROL.search(text):
        raise MalformedCalendar("The body holds a control character (RFC 5545 3.1)")
    # Lines end in CRLF (RFC 5545 3.1): a client's bare LF or CR is kept as CRLF, so the
    # lines we merge in and the client's end alike.
    return re.sub(r"\r\n|\r|\n", "\r\n", text)


def _parse_message(error: BaseException) -> str:
    # The library's message quotes the input: say what failed without echoing it whole. An
    # OS error (a TZID looked up as a file name) says nothing of the client's data but ours.
    if isinstance(error, OSError):
        return "The body is not valid iCalendar data"
    first = str(error).split(":", 1)[0][:120]
    return f"The body is not valid iCalendar data ({first})"


def _check_shape(calendar: _Block) -> None:
    if calendar.lines("METHOD"):
        raise InvalidTodoObject("A stored calendar object has no METHOD (RFC 4791 4.1)")
    names = {block.name for block in calendar.blocks()}
    if names & _NOT_A_TODO or "VTODO" not in names:
        raise NotATodo()
    unknown = {n for n in names if n not in _ALLOWED_COMPONENTS and not n.startswith("X-")}
    if unknown:
        raise NotATodo(f"A task collection holds VTODO components only, not {min(unknown)}")
    todos = calendar.blocks("VTODO")
    uids = set()
    for todo in todos:
        lines = todo.lines("UID")
        if len(lines) != 1 or not vText.from_ical(lines[0].value).strip():
            raise InvalidTodoObject("Every VTODO has one UID")
        uids.add(str(vText.from_ical(lines[0].value)))
    if len(uids) > 1:
        raise InvalidTodoObject("The components of a calendar object share one UID")
    masters = [t for t in todos if not t.lines("RECURRENCE-ID")]
    if len(masters) != 1:
        raise InvalidTodoObject("A calendar object has one VTODO without RECURRENCE-ID")


def _read(calendar: _Block, master: Any, todos: Sequence[Any], zone: str) -> ParsedTodo:
    uid = str(master["UID"])
    stored_zone = zone if zone in _KNOWN_ZONES else DEFAULT_TIME_ZONE
    due, due_zone = _due(master, stored_zone)
    task_zone = due_zone or stored_zone
    fields: dict[str, Any] = {
        "title": _summary(master),
        "description": _description(master),
        "completed": _completed(master),
        "priority": _priority(master).value,
        "due_date": due,
        "tags": _tags(master),
        "recurrence": _recurring(_recurrence(master, task_zone, due), task_zone, due),
        "reminders": _reminders(master, due, task_zone),
    }
    if due_zone is not None:
        fields["time_zone"] = due_zone
    _validate(fields)
    overrides = tuple(_override(todo, task_zone) for todo in todos if todo is not master)
    completed_at = master.get("COMPLETED")
    return ParsedTodo(
        uid=uid,
        fields=fields,
        parent_uid=_parent_uid(master),
        sort_order=_sort_order(master),
        completed_at=_as_utc(completed_at.dt, task_zone) if completed_at is not None else None,
        overrides=overrides,
        keep=_without_alarms(calendar).encode(),
    )


_PROPERTY_OF = {
    "title": "SUMMARY",
    "description": "DESCRIPTION",
    "completed": "STATUS",
    "priority": "PRIORITY",
    "due_date": "DUE",
    "tags": "CATEGORIES",
    "recurrence": "RRULE",
    "reminders": "VALARM",
    "time_zone": "DUE",
}


def _validate(fields: dict[str, Any]) -> None:
    """The REST rules, by the REST model: a value it refuses is refused here too."""
    try:
        TaskUpdate.model_validate(fields)
    except ValidationError as error:
        details = []
        for problem in error.errors():
            where = str(problem["loc"][0]) if problem["loc"] else "body"
            details.append(
                {
                    "field": _PROPERTY_OF.get(where, where),
                    "message": problem["msg"],
                    "type": "error",
                }
            )
        first = details[0]
        raise FieldRefused(f"{first['field']}: {first['message']}", details=details) from None


def _summary(todo: Any) -> str:
    value = todo.get("SUMMARY")
    return "" if value is None else str(value)


def _description(todo: Any) -> str | None:
    value = todo.get("DESCRIPTION")
    text = None if value is None else str(value)
    return text or None


def _completed(todo: Any) -> bool:
    """STATUS decides when present (a reopened task that still carries COMPLETED is open);
    CANCELLED is closed too. Without STATUS, a COMPLETED time or 100 percent."""
    status = todo.get("STATUS")
    if status is not None:
        return str(status).upper() in ("COMPLETED", "CANCELLED")
    percent = todo.get("PERCENT-COMPLETE")
    return todo.get("COMPLETED") is not None or (percent is not None and int(percent) >= 100)


def _priority(todo: Any) -> Priority:
    """RFC 5545 3.8.1.9: 1-4 high, 5 medium, 6-9 low, 0 or absent none."""
    value = todo.get("PRIORITY")
    if value is None:
        return Priority.none
    number = int(value)
    if not 0 <= number <= 9:
        raise MalformedCalendar("PRIORITY is 0-9 (RFC 5545 3.8.1.9)")
    if number == 0:
        return Priority.none
    if number <= 4:
        return Priority.high
    return Priority.medium if number == 5 else Priority.low


def _zone_name(moment: datetime) -> str | None:
    """The IANA name of an aware value's zone; None for UTC or a zone we do not know by name
    (a client's own VTIMEZONE, such as Outlook's `W. Europe Standard Time`)."""
    key = getattr(moment.tzinfo, "key", None)
    if key in _KNOWN_ZONES and key not in ("UTC", "Etc/UTC"):
        return str(key)
    return None


def _as_utc(value: date | datetime, zone: str) -> datetime:
    """A DATE (its midnight), a floating DATE-TIME (on `zone`'s clock) or an aware one, in UTC."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=time_zone(zone))
    return value.astimezone(UTC)


def _due(todo: Any, zone: str) -> tuple[datetime | None, str | None]:
    """DUE in UTC, and its zone's name when it has a TZID we know. Without DUE, DTSTART +
    DURATION is the due date (RFC 5545 3.8.2.5: a VTODO has one of DUE and DURATION)."""
    prop = todo.get("DUE")
    if prop is None:
        prop = _start_plus_duration(todo)
        if prop is None:
            return None, None
    value = prop.dt
    if isinstance(value, datetime) and value.tzinfo is not None:
        named = _zone_name(value)
        return _as_utc(value, zone), named
    return _as_utc(value, zone), None


class _Moment:
    """A computed DUE (`_start_plus_duration`), read as a property's `.dt` is."""

    def __init__(self, dt: date | datetime) -> None:
        self.dt = dt


def _start_plus_duration(todo: Any) -> _Moment | None:
    """DTSTART + DURATION, when a VTODO states its due date so (no DUE); a date DTSTART with
    a duration of whole days stays a date."""
    start, duration = todo.get("DTSTART"), todo.get("DURATION")
    if start is None or duration is None or not isinstance(duration.dt, timedelta):
        return None
    return _Moment(start.dt + duration.dt)


def _has_duration(master: _Block) -> bool:
    """Whether the master states its due date as DTSTART + DURATION (no DUE line)."""
    return bool(master.lines("DURATION") and master.lines("DTSTART") and not master.lines("DUE"))


def _tags(todo: Any) -> list[str]:
    """Every CATEGORIES value (several lines, several per line) in order, once each, as a
    tag is stored (trimmed, lower-cased, NFC); blank ones dropped."""
    tags: list[str] = []
    for prop in _category_props(todo):
        for cat in prop.cats:
            # icalendar splits on the unescaped commas but leaves each item escaped (`\\,`).
            text = str(vText.from_ical(str(cat)))
            tag = unicodedata.normalize("NFC", text.strip().lower())
            if tag and tag not in tags:
                tags.append(tag)
    return tags


def _category_props(todo: Any) -> list[Any]:
    props = todo.get("CATEGORIES")
    if props is None:
        return []
    return props if isinstance(props, list) else [props]


def _recurrence(todo: Any, zone: str, due: datetime | None) -> str | None:
    rules = todo.get("RRULE")
    if rules is None:
        return None
    if isinstance(rules, list):
        raise UnsupportedRecurrence("A task has one RRULE")
    text = rules.to_ical().decode()
    # A floating UNTIL (no Z) is read on the series' clock and written in UTC.
    match = _FLOATING_UNTIL.search(text)
    if match is not None:
        local = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=time_zone(zone))
        text = text.replace(match.group(0), f"UNTIL={local.astimezone(UTC):%Y%m%dT%H%M%SZ}")
    if due is None:
        raise UnsupportedRecurrence(
            "A recurring task needs a DUE, or DTSTART and DURATION (its first occurrence)"
        )
    try:
        return normalize_rule(text)
    except RuleError as error:
        raise UnsupportedRecurrence(f"RRULE {error}") from None


def _recurring(rule: str | None, zone: str, due: datetime | None) -> str | None:
    """`rule`, unless it is a series of one occurrence (COUNT=1, an UNTIL at the DUE: the
    `caldav` library counts COUNT down as it completes occurrences): then the task does not
    recur here (a rule with no next occurrence is no rule to the task model), and the
    client's RRULE stays in its object (`render` serves it as sent)."""
    if rule is None or due is None or _single(rule, zone, due):
        return None
    return rule


def _single(rule: str, zone: str, due: datetime) -> bool:
    return Schedule.of(rule, zone, due).next_after(due) is None


def _parent_uid(todo: Any) -> str | None:
    """The first RELATED-TO whose RELTYPE is PARENT (or absent, which means PARENT)."""
    props = todo.get("RELATED-TO")
    for prop in props if isinstance(props, list) else [props] if props is not None else []:
        reltype = _params(prop.params).get("RELTYPE", "PARENT")
        if reltype.upper() == "PARENT" and str(prop).strip():
            return str(prop)
    return None


def _sort_order(todo: Any) -> int | None:
    value = todo.get("X-APPLE-SORT-ORDER")
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _reminders(todo: Any, due: datetime | None, zone: str) -> list[dict[str, Any]]:
    """The master's DISPLAY and AUDIO alarms as reminders: relative to the due date (RELATED=
    END, or START without a DTSTART) up to four weeks before it -> `minutes_before_due`;
    any other time -> `at`. At most `REMINDERS_MAX_COUNT` (the first ones)."""
    start = todo.get("DTSTART")
    reminders: list[dict[str, Any]] = []
    for alarm in todo.walk("VALARM"):
        action = str(alarm.get("ACTION", "DISPLAY")).upper()
        trigger = alarm.get("TRIGGER")
        if action not in ("DISPLAY", "AUDIO") or trigger is None:
            continue
        reminder = _reminder(trigger, due, start.dt if start is not None else None, zone)
        if reminder is not None and reminder not in reminders:
            reminders.append(reminder)
    return reminders[:REMINDERS_MAX_COUNT]


def _reminder(
    trigger: Any, due: datetime | None, start: date | datetime | None, zone: str
) -> dict[str, Any] | None:
    value = trigger.dt
    if isinstance(value, date):  # an absolute trigger (a datetime is a date too)
        return {"at": _as_utc(value, zone)}
    offset: timedelta = value
    related_end = _params(trigger.params).get("RELATED", "START").upper() == "END"
    if not related_end and start is not None:
        return {"at": _as_utc(start, zone) + offset}
    if due is None:
        return None
    before = -offset
    if timedelta(0) <= before <= timedelta(minutes=MINUTES_BEFORE_DUE_MAX) and not (
        before.total_seconds() % 60
    ):
        return {"minutes_before_due": int(before.total_seconds() // 60)}
    return {"at": due + offset}


def _override(todo: Any, zone: str) -> Override:
    due, _ = _due(todo, zone)
    return Override(
        recurrence_id=_as_utc(todo["RECURRENCE-ID"].dt, zone),
        completed=_completed(todo),
        due_date=due,
    )


def _without_alarms(calendar: _Block) -> str:
    def strip(block: _Block) -> _Block:
        items: list[_Line | _Block] = [
            item if isinstance(item, _Line) else strip(item)
            for item in block.items
            if not (isinstance(item, _Block) and item.name == "VALARM")
        ]
        return _Block(block.name, block.begin, items, block.end)

    return strip(calendar).text()


# ---------------------------------------------------------------------------------------------
# Rendering: the kept object with our fields merged in.


def derived_uid(task_id: int) -> str:
    """The UID of a task no client named (the calendar feeds' too: one task, one UID)."""
    return f"task-{task_id}@{UID_DOMAIN}"


def etag(body: bytes) -> str:
    """The strong ETag of the exact bytes a reader gets (RFC 4791 5.3.4)."""
    return f'"{hashlib.sha256(body).hexdigest()[:40]}"'


def object_tag(
    task: Any,
    kept: bytes | None,
    reader_reminders: Sequence[dict[str, Any]],
    *,
    parent_uid: str | None = None,
) -> str:
    """The strong ETag of the body `render` makes from the same values, without making it (a
    listing of 1,000 tasks would otherwise render 1,000 objects, ~2 ms each): a hash of
    everything the body is made of. `render` is deterministic, so one set of values is one
    body, and two bodies that differ come from values that differ. The DAV layer uses one
    of the two tags everywhere (GET, PROPFIND, REPORT), never both."""
    digest = hashlib.sha256(repr((RENDER_FORMAT, task.id, task.version)).encode())
    digest.update(repr((task.updated_at.isoformat(), task.position, parent_uid)).encode())
    digest.update(repr([sorted(r.items()) for r in reader_reminders]).encode())  # in order
    digest.update(hashlib.sha256(kept or b"").digest())
    return f'"o{digest.hexdigest()[:39]}"'


def render(
    task: Any,
    kept: bytes | None,
    reader_reminders: Sequence[dict[str, Any]],
    *,
    parent_uid: str | None = None,
) -> bytes:
    """The object one reader GETs: `task` (a `TaskRow`) merged into `kept` (the client's object
    as `ParsedTodo.keep` stored it; None for a task no client wrote), with the reader's own
    reminders as VALARMs. `parent_uid`: the UID the parent task is served with, if any."""
    calendar = _tree(kept.decode()) if kept is not None else _skeleton(task)
    master = _master(calendar)
    zone = task.time_zone
    old = _kept_values(master, zone)
    ours = _our_values(task, parent_uid)
    last = ours["recurrence"] is None or task.next_due_date is None
    if last and (old["single"] or (task.completed and old["completion"])):
        # No occurrence after this one, in the client's rule and ours: a series of one
        # (`_recurring`), or a completed master (a series completed as a whole; a completed
        # task shows no rule of ours, `_rule_shown`). The client's RRULE is served as sent.
        ours["recurrence"] = old["recurrence"]
    due_changed = old["due"] != ours["due"]
    items: list[_Line | _Block] = []
    written: set[str] = set()
    present = {group for group in _GROUPS if _has_group(master, group)}
    duration = _has_duration(master)
    if duration:
        # DUE and DURATION are exclusive (RFC 5545 3.6.2): the client's DTSTART + DURATION
        # state our due date, a changed one by moving DTSTART (`_moved_start`); none, by
        # dropping DURATION.
        present.add("due")
    for item in master.items:
        if isinstance(item, _Block):
            if item.name != "VALARM":  # the kept object's alarms are nobody's now
                items.append(item)
            continue
        if item.name == "DURATION" and duration and task.due_date is None:
            continue
        group = _GROUP_OF.get(item.name)
        if item.name == "RELATED-TO" and not _is_parent_line(item):
            group = None  # CHILD and SIBLING relations are the client's
        if item.name == "DTSTART" and due_changed:
            items.extend(_moved_start(item, master, task))
            continue
        if group is None or (old[group] == ours[group] and group != "stamps"):
            items.append(item)
            continue
        if group not in written:
            items.extend(_our_lines(group, task, parent_uid))
            written.add(group)
    for group in _ORDER:
        if group in written or group in present:
            continue
        if group == "order" and kept is not None:
            # A client that sent no sort order keeps none: added, its object would differ
            # from what it wrote, and vdirsyncer (which compares content when a PUT returns
            # no ETag) took its next local edit for a change on both sides.
            continue
        items.extend(_our_lines(group, task, parent_uid))
    items.extend(_Line(text, "", {}, "") for text in _alarm_lines(task, reader_reminders))
    master.items = items
    _drop_absorbed_overrides(calendar, master, task)
    _add_zone(calendar, task, (due_changed and not duration) or kept is None)
    return calendar.text().encode()


def _is_parent_line(line: _Line) -> bool:
    return line.params.get("RELTYPE", "PARENT").upper() == "PARENT"


def _has_group(master: _Block, group: str) -> bool:
    return any(
        isinstance(item, _Line)
        and _GROUP_OF.get(item.name) == group
        and (item.name != "RELATED-TO" or _is_parent_line(item))
        for item in master.items
    )


def _skeleton(task: Any) -> _Block:
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    todo = Todo()
    todo.add("uid", derived_uid(task.id))
    todo.add("created", task.created_at.astimezone(UTC))
    calendar.add_component(todo)
    return _tree(calendar.to_ical().decode())


def _todo_of(master: _Block) -> Any:
    """The master's own lines (no sub-components) read by icalendar."""
    lines = "".join(item.raw for item in master.items if isinstance(item, _Line))
    text = f"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\n{lines}END:VTODO\r\nEND:VCALENDAR\r\n"
    return Calendar.from_ical(text).walk("VTODO")[0]


def _kept_values(master: _Block, zone: str) -> dict[str, Any]:
    todo = _todo_of(master)
    due, due_zone = _due(todo, zone)
    try:
        rule = _recurrence(todo, due_zone or zone, due) if todo.get("RRULE") else None
    except CalendarObjectRefused:
        rule = "?"
    single = rule not in (None, "?") and due is not None and _single(rule, due_zone or zone, due)
    return {
        "single": single,  # a series of one: the task holds no rule (`_recurring`)
        "title": _summary(todo),
        "description": _description(todo),
        "completion": _completed(todo),
        "priority": _priority(todo),
        "due": (due, due_zone in (None, zone)),
        "tags": _tags(todo),
        "parent": _parent_uid(todo),
        "recurrence": rule_key(rule),
        "order": _sort_order(todo),
        "stamps": None,
    }


def _our_values(task: Any, parent_uid: str | None) -> dict[str, Any]:
    return {
        "title": task.title,
        "description": task.description or None,
        "completion": task.completed,
        "priority": Priority(task.priority),
        "due": (task.due_date, True),
        "tags": list(task.tags),
        "parent": parent_uid,
        "recurrence": rule_key(_rule_shown(task)),
        "order": task.position,
        "stamps": None,
    }


def rule_key(rule: str | None) -> frozenset[str] | None:
    """A rule's parts, in no order: two spellings of one rule compare equal."""
    return None if rule is None else frozenset(rule.split(";"))


def _rule_shown(task: Any) -> str | None:
    """An open recurring task carries its rule; a completed occurrence is a task of its own."""
    if task.recurrence is None or task.completed or task.due_date is None:
        return None
    if task.series_start is None or task.series_start == task.due_date:
        return str(task.recurrence)
    return normalize_rule(calendar_rule(task.recurrence, task.time_zone, task.series_start))


def _due_value(task: Any, date_only: bool) -> date | datetime:
    local: datetime = task.due_date.astimezone(time_zone(task.time_zone))
    return local.date() if date_only else local


def _is_midnight(task: Any) -> bool:
    local: datetime = task.due_date.astimezone(time_zone(task.time_zone))
    return local.time() == time(0)


def _our_lines(group: str, task: Any, parent_uid: str | None) -> list[_Line]:
    """Our content lines for one group, written by icalendar (escaping, folding)."""
    todo = Todo()
    if group == "title":
        todo.add("summary", _Text(task.title))
    elif group == "description" and task.description:
        todo.add("description", _Text(task.description))
    elif group == "completion":
        if task.completed:
            todo.add("status", "COMPLETED")
            if task.completed_at is not None:
                todo.add("completed", task.completed_at.astimezone(UTC))
            todo.add("percent-complete", 100)
        else:
            todo.add("status", "NEEDS-ACTION")
    elif group == "priority" and task.priority != Priority.none:
        todo.add("priority", {"high": 1, "medium": 5, "low": 9}[str(task.priority)])
    elif group == "due" and task.due_date is not None:
        # A due date at midnight on its zone's clock is a date (RFC 5545 VALUE=DATE): the
        # same instant comes back from it (`_as_utc`), and date-only clients show it all-day.
        todo.add("due", _due_value(task, _is_midnight(task)))
    elif group == "tags" and task.tags:
        todo.add("categories", _Categories(list(task.tags)))
    elif group == "parent" and parent_uid is not None:
        todo.add("related-to", _Text(parent_uid), parameters={"RELTYPE": "PARENT"})
    elif group == "recurrence":
        rule = _rule_shown(task)
        if rule is not None:
            todo.add("rrule", vRecur.from_ical(rule))
    elif group == "order":
        todo.add("x-apple-sort-order", task.position)
    elif group == "stamps":
        todo.add("dtstamp", task.updated_at.astimezone(UTC))
        todo.add("last-modified", task.updated_at.astimezone(UTC))
    return _inner(todo)


def _inner(component: Any) -> list[_Line]:
    """A component's property lines (folded, CRLF), without its BEGIN and END."""
    text = component.to_ical().decode()
    return [_Line(raw, "", {}, "") for raw in list(_logical_lines(text))[1:-1]]


def _moved_start(line: _Line, master: _Block, task: Any) -> list[_Line]:
    """DTSTART moves with DUE (the client's distance between them kept), so a client never
    sees a start after the due date or a recurring series anchored at a past occurrence."""
    todo = _todo_of(master)
    start = todo["DTSTART"].dt
    if task.due_date is None:
        return [line]
    old_due, _ = _due(todo, task.time_zone)  # DUE, or DTSTART + DURATION
    if old_due is None:
        return [line] if _as_utc(start, task.time_zone) <= task.due_date else []
    delta = task.due_date - old_due
    moved: date | datetime
    if not isinstance(start, datetime):
        moved = start + timedelta(days=delta.days)
    elif start.tzinfo is None:
        moved = start + delta
    else:
        moved = (start.astimezone(UTC) + delta).astimezone(start.tzinfo)
    fresh = Todo()
    fresh.add("dtstart", moved)
    lines = _inner(fresh)
    tzid = line.params.get("TZID")
    if tzid is not None and isinstance(moved, datetime) and moved.tzinfo is not None:
        # The client's own TZID (its VTIMEZONE names it), not the name icalendar gives.
        value = moved.strftime("%Y%m%dT%H%M%S")
        lines = [_Line(f"DTSTART;TZID={tzid}:{value}\r\n", "DTSTART", {}, "")]
    return lines


def _alarm_lines(task: Any, reminders: Sequence[dict[str, Any]]) -> list[str]:
    """The reader's reminders as VALARMs (DISPLAY; relative to DUE, or at an instant)."""
    lines: list[str] = []
    for reminder in reminders:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", _Text(task.title))
        if "minutes_before_due" in reminder:
            alarm.add(
                "trigger",
                timedelta(minutes=-int(reminder["minutes_before_due"])),
                parameters={"RELATED": "END"},
            )
        else:
            at = reminder["at"]
            at = datetime.fromisoformat(at) if isinstance(at, str) else at
            alarm.add("trigger", at.astimezone(UTC))
        lines.append(alarm.to_ical().decode())
    return lines


def _drop_absorbed_overrides(calendar: _Block, master: _Block, task: Any) -> None:
    """Overrides of occurrences that are tasks of their own now (completed ones, and any
    before the open occurrence) leave the object; later ones stay the client's."""
    keep_from = task.due_date if _rule_shown(task) is not None else None
    items: list[_Line | _Block] = []
    for item in calendar.items:
        if isinstance(item, _Block) and item.name == "VTODO" and item is not master:
            override = _override(_todo_of(item), task.time_zone)
            if keep_from is None or override.completed or override.recurrence_id <= keep_from:
                continue
        items.append(item)
    calendar.items = items


def _add_zone(calendar: _Block, task: Any, ours: bool) -> None:
    """The VTIMEZONE of the zone our DUE names, when the object has none for it."""
    if task.due_date is None or not ours or task.time_zone in ("UTC", "Etc/UTC"):
        return
    named = {
        str(vText.from_ical(line.value))
        for block in calendar.blocks("VTIMEZONE")
        for line in block.lines("TZID")
    }
    if task.time_zone in named:
        return
    zone_calendar = Calendar()
    todo = Todo()
    todo.add("due", task.due_date.astimezone(time_zone(task.time_zone)))
    zone_calendar.add_component(todo)
    year = task.due_date.year
    zone_calendar.add_missing_timezones(
        first_date=date(max(year - 1, 1900), 1, 1), last_date=date(min(year + 6, 9998), 1, 1)
    )
    for component in zone_calendar.walk("VTIMEZONE"):
        block = _tree(
            "BEGIN:VCALENDAR\r\n" + component.to_ical().decode() + "END:VCALENDAR\r\n"
        ).blocks("VTIMEZONE")[0]
        first_todo = next(i for i, b in enumerate(calendar.items) if isinstance(b, _Block))
        calendar.items.insert(first_todo, block)


__all__ = [
    "CALDAV_NS",
    "MAX_OBJECT_BYTES",
    "CalendarObjectRefused",
    "FieldRefused",
    "InvalidTodoObject",
    "MalformedCalendar",
    "NotATodo",
    "ObjectTooLarge",
    "Override",
    "ParsedTodo",
    "UnsupportedRecurrence",
    "derived_uid",
    "etag",
    "object_tag",
    "parse",
    "render",
    "rule_key",
]
