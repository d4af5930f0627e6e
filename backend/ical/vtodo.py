"""A task as a CalDAV object (specs/caldav.md): `task_calendar.MAPPING` applied to a client's
object. `parse` reads a PUT body into `ParsedTodo` or refuses it (`CalendarObjectRefused`, never
another error); `render` merges our fields into the client's kept object, each mapped line
replaced only where its meaning differs from ours, every other line served byte for byte.
A VTIMEZONE of a client's own is read for its object only (`_OwnZones`), never from
icalendar's process-wide cache, where one user's zone would read another's DUE.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from icalendar import Calendar, Todo, vText
from icalendar.cal.component_factory import ComponentFactory
from icalendar.parser import Contentline
from icalendar.parser.ical.calendar import CalendarIcalParser
from icalendar.timezone import tzp
from pydantic import ValidationError

from backend.models.task import TaskUpdate
from backend.models.task_calendar import (
    BY_NAME,
    GROUP_OF,
    KNOWN_ZONES,
    MAPPING,
    PROPERTY_OF,
    SINGLE,
    CalendarObjectRefused,
    InvalidTodoObject,
    MalformedCalendar,
    Target,
    as_utc,
    completed,
    derived_uid,
    due,
    is_day,
    is_parent,
    params,
    rule,
    sent_rule,
    shown_rule,
    zone,
)
from backend.recurrence import DEFAULT_TIME_ZONE, day_of

PRODUCT = "-//Task API//CalDAV//EN"
# Bounds on what a PUT may hold (RFC 4791 `max-resource-size`): a task with a long description,
# its zones and a few hundred recurrence overrides fits many times over.
MAX_OBJECT_BYTES = 256 * 1024
MAX_LINES = 4000
MAX_COMPONENTS = 400
MAX_DEPTH = 4  # VCALENDAR > VTODO > VALARM > one more (an X- component inside)
# `render`'s output has a version, part of every object's tag: bump
# `services.dav_tags.RENDER_FORMAT` whenever the same values render differently.

_ALLOWED_COMPONENTS = frozenset({"VTODO", "VTIMEZONE"})
_NOT_A_TODO = frozenset({"VEVENT", "VJOURNAL", "VFREEBUSY", "VAVAILABILITY"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MERGED = tuple(m.name for m in MAPPING if m.merged)


class ObjectTooLarge(CalendarObjectRefused):
    message = f"A calendar object has at most {MAX_OBJECT_BYTES} bytes"
    precondition = "max-resource-size"


class NotATodo(CalendarObjectRefused):
    """A VEVENT (VJOURNAL, ...) in a task collection, or no VTODO at all."""

    message = "A task collection holds VTODO components only"
    precondition = "supported-calendar-component"


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

    def texts(self, name: str) -> list[str]:
        """The TEXT values of the `name` lines, unescaped."""
        return [str(vText.from_ical(line.value)) for line in self.lines(name)]

    def blocks(self, name: str | None = None) -> list[_Block]:
        return [b for b in self.items if isinstance(b, _Block) and name in (None, b.name)]

    def text(self, without: str = "") -> str:
        """The block as received, its `without` components (at any depth) left out."""
        kept = [item for item in self.items if not isinstance(item, _Block) or item.name != without]
        inner = (item.raw if isinstance(item, _Line) else item.text(without) for item in kept)
        return self.begin + "".join(inner) + self.end


# A content line and its continuation lines (RFC 5545 3.1), as received. Lines end at LF only
# (`str.splitlines` would also split inside a value at U+2028, U+0085, ...).
_LOGICAL = re.compile(r"(?:[^\n]*\n|[^\n]+$)(?:[ \t][^\n]*(?:\n|$))*")


def _tree(text: str) -> _Block:
    """The one VCALENDAR of `text` as blocks; `MalformedCalendar` if it is not one."""
    outside = _Block("", "")  # what holds the VCALENDAR: no property, one component
    stack = [outside]
    count = 0
    for number, raw in enumerate(_LOGICAL.findall(text)):
        if number >= MAX_LINES:
            raise ObjectTooLarge(f"A calendar object has at most {MAX_LINES} content lines")
        unfolded = re.sub(r"\r?\n[ \t]", "", raw).rstrip("\r\n")
        if not unfolded.strip():
            if len(stack) > 1:
                raise MalformedCalendar("An empty line inside a component")
            continue
        try:
            name, parameters, value = Contentline(unfolded).parts()  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, IndexError, TypeError):
            raise MalformedCalendar(f"Line {number + 1} is not an iCalendar content line") from None
        name = name.upper()
        if name == "BEGIN":
            count += 1
            if count > MAX_COMPONENTS or len(stack) > MAX_DEPTH:
                raise ObjectTooLarge("Too many or too deeply nested components")
            if stack[-1] is outside and outside.items:
                raise MalformedCalendar("A calendar object is one VCALENDAR")
            block = _Block(value.upper(), raw)
            stack[-1].items.append(block)
            stack.append(block)
        elif name == "END":
            if stack[-1] is outside or stack[-1].name != value.upper():
                raise MalformedCalendar(f"END:{value} does not close the open component")
            stack.pop().end = raw
        elif stack[-1] is outside:
            raise MalformedCalendar("A property outside BEGIN:VCALENDAR ... END:VCALENDAR")
        else:
            stack[-1].items.append(_Line(raw, name, params(parameters), value))
    if len(stack) > 1 or not outside.blocks("VCALENDAR"):
        raise MalformedCalendar("A calendar object is one complete VCALENDAR")
    top = outside.blocks()[0]
    if not top.end.endswith("\n"):
        top.end += "\r\n"
    return top


# ---------------------------------------------------------------------------------------------
# Reading with icalendar, the object's own zones only.


_COMPONENTS = ComponentFactory()


class _OwnZones(CalendarIcalParser):
    """icalendar's parser without its process-wide registry of custom zones (which reads every
    later object's unknown TZID with the first one's definition): such a TZID is read with
    `zones`, the object's own; an IANA (or Windows) name as the library resolves it."""

    def __init__(self, text: str, zones: dict[str, tzinfo]) -> None:
        super().__init__(text, _COMPONENTS, Calendar.types_factory)
        self._zones = zones

    def handle_end_component(self, vals: str) -> None:
        # The library caches a component it ends *by the name VTIMEZONE* process-wide
        # (`tzp.cache_timezone_component`); the component itself carries its own name.
        super().handle_end_component("" if vals.upper() == "VTIMEZONE" else vals)

    def prepare_components(self) -> None:
        """Nothing: the library re-reads a forward reference to a zone from its cache; ours
        (`_zones`) are read before any property."""

    def parse_and_add_property(
        self, name: str, params: Any, val: str, tzid: str | None, line: Any
    ) -> None:
        zone = self._zones.get(tzid) if tzid is not None and "T" in val.upper() else None
        super().parse_and_add_property(name, params, val, zone or tzid, line)  # type: ignore[arg-type]


def _ical(text: str, zones: dict[str, tzinfo]) -> Any:
    """`text` (one VCALENDAR) as icalendar's `Calendar`, TZIDs read with `zones`."""
    components = _OwnZones(text, zones).parse()
    if len(components) != 1 or not isinstance(components[0], Calendar):
        raise MalformedCalendar("A calendar object is one VCALENDAR")
    return components[0]


def _zones(calendar: _Block) -> dict[str, tzinfo]:
    """The object's VTIMEZONEs whose TZID the zone database does not know, by TZID."""
    zones: dict[str, tzinfo] = {}
    for block in calendar.blocks("VTIMEZONE"):
        tzid = next(iter(block.texts("TZID")), "")
        if tzid and tzid not in KNOWN_ZONES and tzid not in zones:
            text = f"BEGIN:VCALENDAR\r\n{block.text()}END:VCALENDAR\r\n"
            zones[tzid] = tzp.create_timezone(_ical(text, {}).walk("VTIMEZONE")[0])
    return zones


def _todos(calendar: _Block, readings: Sequence[Any] = ()) -> list[tuple[_Block, Any]]:
    """Each VTODO of the object with icalendar's reading of it (TZIDs by the object's zones);
    `readings`: those of a parse of the same text (`ParsedTodo.readings`)."""
    blocks = calendar.blocks("VTODO")
    if readings and len(readings) == len(blocks):
        return list(zip(blocks, readings, strict=True))
    text = "BEGIN:VCALENDAR\r\n" + "".join(b.text() for b in blocks) + "END:VCALENDAR\r\n"
    return list(zip(blocks, _ical(text, _zones(calendar)).subcomponents, strict=True))


def first_todo(body: bytes) -> Any:
    """The object's first VTODO as icalendar reads it, by the object's own zones only (never the
    library's process-wide registry: `_OwnZones`)."""
    return _todos(_tree(body.decode()))[0][1]


# ---------------------------------------------------------------------------------------------
# Parsing: a PUT body into what the task service takes.


@dataclass(frozen=True)
class Override:
    """A VTODO with RECURRENCE-ID: an occurrence as the client changed it (Thunderbird's way)."""

    recurrence_id: datetime  # UTC; a date means its midnight on the series' clock
    completed: bool
    due_date: datetime | None


@dataclass(frozen=True)
class ParsedTodo:
    """A PUT body, read. `fields`: every REST field we model (one left out clears it, as a
    whole-object PUT means); `keep`: the client's bytes minus its VALARMs (reminders are per
    reader: the writer's go to `fields["reminders"]`)."""

    uid: str
    fields: dict[str, Any]
    due_at: datetime | None  # the due date as an instant (a day's start on the task's clock)
    parent_uid: str | None
    sort_order: int | None
    completed_at: datetime | None  # the client's COMPLETED (ours is set by the service)
    overrides: tuple[Override, ...]
    keep: bytes
    # icalendar's reading of each VTODO, in order: `render` of `keep` need not parse it again.
    readings: tuple[Any, ...] = field(default=(), compare=False, repr=False)

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
    _check_shape(calendar)
    try:
        parsed = _ical(text, _zones(calendar))
        if any(getattr(component, "errors", None) for component in parsed.walk()):
            raise MalformedCalendar("A property's value is not valid iCalendar")
        return _read(calendar, parsed.walk("VTODO"), zone)
    except CalendarObjectRefused:
        raise
    except Exception as error:  # the library's own errors are many types, a value's too
        raise MalformedCalendar(_parse_message(error)) from None


def _decode(body: bytes) -> str:
    if len(body) > MAX_OBJECT_BYTES:
        raise ObjectTooLarge()
    if b"\x00" in body:
        raise MalformedCalendar("The body holds a NUL byte")
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise MalformedCalendar("The body is not UTF-8") from None
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
        uid = todo.texts("UID")
        if len(uid) != 1 or not uid[0].strip():
            raise InvalidTodoObject("Every VTODO has one UID")
        uids.add(uid[0])
        twice = sorted(n for n in SINGLE if len(todo.lines(n)) > 1)
        if twice:
            # Refused rather than one of them kept: which one the client means is its own.
            raise InvalidTodoObject(f"{twice[0]} occurs at most once in a VTODO (RFC 5545 3.6.2)")
    if len(uids) > 1:
        raise InvalidTodoObject("The components of a calendar object share one UID")
    masters = [t for t in todos if not t.lines("RECURRENCE-ID")]
    if len(masters) != 1:
        raise InvalidTodoObject("A calendar object has one VTODO without RECURRENCE-ID")


def _read(calendar: _Block, todos: Sequence[Any], zone: str) -> ParsedTodo:
    master = next(t for t in todos if t.get("RECURRENCE-ID") is None)
    stored_zone = zone if zone in KNOWN_ZONES else DEFAULT_TIME_ZONE
    read = {mapped.name: mapped.read(master, stored_zone) for mapped in MAPPING}
    fields: dict[str, Any] = {}
    for mapped in MAPPING:
        fields.update(mapped.values(read[mapped.name]))
    _validate(fields)
    task_zone = read["DUE"][1] or stored_zone
    stamp = master.get("COMPLETED")
    return ParsedTodo(
        uid=read["UID"],
        fields=fields,
        # A day (`fields["due_date"]`, a date) starts on the clock the service reads it on: the
        # zone sent (a TZID names none for a DATE), else the stored task's, `stored_zone`.
        due_at=due(master, stored_zone)[0],
        parent_uid=read["RELATED-TO"],
        sort_order=read["X-APPLE-SORT-ORDER"],
        completed_at=as_utc(stamp.dt, task_zone) if stamp is not None else None,
        overrides=tuple(_override(t, task_zone) for t in todos if t is not master),
        keep=calendar.text(without="VALARM").encode(),
        readings=tuple(todos),
    )


def _validate(fields: dict[str, Any]) -> None:
    """The REST rules, by the REST model: a value it refuses is refused here too."""
    try:
        TaskUpdate.model_validate(fields)
    except ValidationError as error:
        details = []
        for problem in error.errors():
            where = str(problem["loc"][0]) if problem["loc"] else "body"
            name = PROPERTY_OF.get(where, where)
            details.append({"field": name, "message": problem["msg"], "type": "error"})
        first = details[0]
        raise FieldRefused(f"{first['field']}: {first['message']}", details=details) from None


def _override(todo: Any, zone: str) -> Override:
    return Override(
        recurrence_id=as_utc(todo["RECURRENCE-ID"].dt, zone),
        completed=completed(todo, zone),
        due_date=due(todo, zone)[0],
    )


# ---------------------------------------------------------------------------------------------
# Rendering: the kept object with our fields merged in.


_UNREADABLE = object()  # a kept value we cannot read agrees with nothing


def render(
    task: Any,
    kept: bytes | None,
    reader_reminders: Sequence[dict[str, Any]],
    *,
    parent_uid: str | None = None,
    fresh: bool = False,
    readings: Sequence[Any] = (),
) -> bytes:
    """The object one reader GETs: `task` merged into `kept` (None: no client's), with the
    reader's own reminders as VALARMs. `fresh`: `kept` was stored by the task's last write,
    so its DTSTAMP and LAST-MODIFIED stand: a PUT's object reads back as sent (RFC 4791 5.3.4).
    `readings`: `kept`'s VTODOs as its PUT's parse read them."""
    calendar = _tree(kept.decode()) if kept is not None else _skeleton(task)
    todos = _todos(calendar, readings)
    master, todo = next((b, t) for b, t in todos if t.get("RECURRENCE-ID") is None)
    target = Target("todo", reader_reminders, parent_uid)
    agree = {name: _agrees(BY_NAME[name], todo, task, target) for name in _MERGED}
    agree["DTSTAMP"] = fresh and kept is not None
    if not agree["RRULE"] and (shown_rule(task) is None or task.next_due_date is None):
        # No occurrence after this one, in the client's rule and ours: a series of one
        # (`task_calendar.rule`), or a completed master (a series completed as a whole; a
        # completed task shows no rule of ours). The client's RRULE is served as sent.
        ended = task.completed and _attempt(completed, todo, task.time_zone) is True
        sent = _attempt(sent_rule, todo, task.time_zone) not in (None, _UNREADABLE)
        agree["RRULE"] = ended or (sent and rule(todo, task.time_zone) is None)
    items: list[_Line | _Block] = []
    written: set[str] = set()
    lines = [item for item in master.items if isinstance(item, _Line)]
    present = {_group(line) for line in lines}
    # DUE and DURATION are exclusive (RFC 5545 3.6.2): the client's DTSTART + DURATION state
    # our due date, a changed one by moving DTSTART (`_moved_start`); none, by dropping DURATION.
    names = {line.name for line in lines}
    duration = {"DTSTART", "DURATION"} <= names and "DUE" not in names
    if duration:
        present.add("DUE")
    for item in master.items:  # a kept object holds no VALARM (`ParsedTodo.keep`)
        group = _group(item) if isinstance(item, _Line) else None
        if item.name == "DURATION" and duration and task.due_date is None:
            continue
        if isinstance(item, _Line) and item.name == "DTSTART" and not agree["DUE"]:
            items.extend(_moved_start(item, todo, task))
        elif group is None or agree[group]:
            items.append(item)
        elif group not in written:
            items.extend(_our_lines(group, task, target, names))
            written.add(group)
    for group in _MERGED:
        if group in present:  # each group a line holds is written (or kept) in its place
            continue
        if group == "X-APPLE-SORT-ORDER" and kept is not None:
            # A client that sent no sort order keeps none: added, its object would differ
            # from what it wrote, its PUT answered with no ETag (`answer.stored_tag`), and
            # vdirsyncer took its next local edit for a change on both sides.
            continue
        items.extend(_our_lines(group, task, target, names))
    items.extend(_our_lines("VALARM", task, target))
    master.items = items
    _drop_absorbed_overrides(calendar, todos, task)
    _add_zone(calendar, task, (not agree["DUE"] and not duration) or kept is None)
    return calendar.text().encode()


def _attempt(read: Any, todo: Any, zone: str) -> Any:
    try:
        return read(todo, zone)
    except (CalendarObjectRefused, ValueError, TypeError):
        return _UNREADABLE


def _agrees(mapped: Any, todo: Any, task: Any, target: Target) -> bool:
    old = _attempt(mapped.read, todo, task.time_zone)
    return old is not _UNREADABLE and bool(mapped.same(old, mapped.shown(task, target), task))


def _group(line: _Line) -> str | None:
    if line.name == "RELATED-TO" and not is_parent(line):
        return None  # CHILD and SIBLING relations are the client's
    return GROUP_OF.get(line.name)


def _skeleton(task: Any) -> _Block:
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    todo = Todo()
    todo.add("uid", derived_uid(task.id))
    todo.add("created", task.created_at.astimezone(UTC))
    calendar.add_component(todo)
    return _tree(calendar.to_ical().decode())


def _our_lines(
    group: str, task: Any, target: Target, kept_names: Collection[str] = ()
) -> list[_Line]:
    """Our content lines for one group, written by icalendar (escaping, folding). A day
    series' `DTSTART` (written with its `DUE`) only where the client's object has none: its
    own moves with the due date (`_moved_start`)."""
    todo = Todo()
    BY_NAME[group].put(todo, task, target)
    if "DTSTART" in kept_names:
        todo.pop("DTSTART", None)
    return [] if todo.is_empty() else _inner(todo)  # nothing to write: no text


def _inner(component: Any) -> list[_Line]:
    """A component's property lines (folded, CRLF), without its BEGIN and END."""
    return [_Line(raw, "", {}, "") for raw in _LOGICAL.findall(component.to_ical().decode())[1:-1]]


def _moved_start(line: _Line, todo: Any, task: Any) -> list[_Line]:
    """DTSTART moves with DUE (the client's distance between them kept), so a client never
    sees a start after the due date or a recurring series anchored at a past occurrence."""
    start = todo["DTSTART"].dt
    if task.due_date is None:
        return [line]
    old_due, _ = due(todo, task.time_zone)  # DUE, or DTSTART + DURATION
    if old_due is None:
        return [line] if as_utc(start, task.time_zone) <= task.due_date else []
    delta = task.due_date - old_due
    moved: date | datetime
    if is_day(task):
        # A day's start is a DATE as its DUE is (RFC 5545 3.8.2.3), moved by as many days.
        zone = task.time_zone
        days = day_of(task.due_date, zone) - day_of(old_due, zone)
        moved = start if not isinstance(start, datetime) else day_of(as_utc(start, zone), zone)
        moved += days
    elif not isinstance(start, datetime):
        moved = start + timedelta(days=delta.days)
    elif start.tzinfo is None:
        moved = start + delta
    else:
        moved = (start.astimezone(UTC) + delta).astimezone(start.tzinfo)
    tzid = line.params.get("TZID")
    if tzid is not None and isinstance(moved, datetime) and moved.tzinfo is not None:
        # The client's own TZID (its VTIMEZONE names it), not the name icalendar gives.
        return [_Line(f"DTSTART;TZID={tzid}:{moved:%Y%m%dT%H%M%S}\r\n", "DTSTART", {}, "")]
    fresh = Todo()
    fresh.add("dtstart", moved)
    return _inner(fresh)


def _drop_absorbed_overrides(calendar: _Block, todos: list[tuple[_Block, Any]], task: Any) -> None:
    """Overrides of occurrences that are tasks of their own now (before the open occurrence,
    no completion) leave the object; later and completed ones stay the client's, as sent."""
    keep_from = task.due_date if shown_rule(task) is not None else None
    for block, todo in todos:
        if todo.get("RECURRENCE-ID") is not None:
            override = _override(todo, task.time_zone)
            if override.completed:
                continue
            if keep_from is None or override.recurrence_id <= keep_from:
                calendar.items.remove(block)


def _add_zone(calendar: _Block, task: Any, ours: bool) -> None:
    """The VTIMEZONE our DUE names, where the object has none, before its first component."""
    if task.due_date is None or not ours or task.time_zone in ("UTC", "Etc/UTC") or is_day(task):
        return  # a day is a DATE: no TZID names the zone
    if any(task.time_zone in block.texts("TZID") for block in calendar.blocks("VTIMEZONE")):
        return
    text = zone(task.time_zone, task.due_date.year).to_ical().decode()
    at = next(i for i, b in enumerate(calendar.items) if isinstance(b, _Block))
    calendar.items[at:at] = _tree(f"BEGIN:VCALENDAR\r\n{text}END:VCALENDAR\r\n").blocks()
