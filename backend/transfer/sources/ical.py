"""iCalendar: a VCALENDAR of VTODOs (Apple Reminders, Thunderbird, Nextcloud Tasks, our own
`tasks.ics`), read as CalDAV reads one object: the file is cut into one calendar object per
UID (its VTODO, the RECURRENCE-ID overrides beside it and the VTIMEZONEs they name) and each
is read by `backend.ical.vtodo.parse`, the mapping CalDAV uses (`models.task_calendar.MAPPING`).
`X-WR-CALNAME` (else the file's name) is the list."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from backend.ical import vtodo
from backend.models.task_calendar import CalendarObjectRefused
from backend.transfer.plan import NotThisSource, Plan, PlannedList, PlannedTask
from backend.transfer.sources.common import arrange, head_text, text_of

# A content line and its folded continuations (RFC 5545 3.1), line ends kept.
_LOGICAL = re.compile(r"[^\r\n]*(?:\r\n|\n|\r|$)(?:[ \t][^\r\n]*(?:\r\n|\n|\r|$))*")
_FOLD = re.compile(r"(?:\r\n|\n|\r)[ \t]")
_TZID = re.compile(r';TZID=(?:"([^"]*)"|([^;:]*))', re.IGNORECASE)
_VTODO = re.compile(rb"^BEGIN:VTODO\s*$", re.IGNORECASE | re.MULTILINE)
_NOT_TASKS = ("VEVENT", "VJOURNAL", "VFREEBUSY")

LOST_EVENTS = "Calendar events (VEVENT, VJOURNAL): only tasks are imported"
LOST_OVERRIDES = "Changed occurrences of a recurring task (RECURRENCE-ID)"


def looks_like(data: bytes, file_name: str) -> bool:
    head = head_text(data, 1024).upper()
    return head.lstrip().startswith("BEGIN:VCALENDAR") and _VTODO.search(data) is not None


@dataclass
class _Component:
    name: str
    lines: list[str] = field(default_factory=list)  # raw, folds and ends as received
    uid: str | None = None
    tzids: set[str] = field(default_factory=set)

    def text(self) -> str:
        return "".join(
            line if line.endswith(("\n", "\r")) else line + "\r\n" for line in self.lines
        )


@dataclass
class _Calendar:
    name: str | None = None
    components: list[_Component] = field(default_factory=list)


def read(data: bytes, file_name: str, zone: str) -> Plan:
    text = text_of(data)
    calendars = _calendars(text)
    todos = [c for cal in calendars for c in cal.components if c.name == "VTODO"]
    if not todos:
        raise NotThisSource("file", "No VTODO in the calendar: no tasks to import")
    plan = Plan(source="ical")
    stem = file_name.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    tasks: list[PlannedTask] = []
    for calendar in calendars:
        name = (calendar.name or stem).strip()
        list_key = name or None
        if list_key is not None and all(existing.key != list_key for existing in plan.lists):
            plan.lists.append(PlannedList(key=list_key, name=name))
        zones = {c.uid: c for c in calendar.components if c.name == "VTIMEZONE" and c.uid}
        objects: dict[str, list[_Component]] = {}
        for number, component in enumerate(calendar.components):
            if component.name in _NOT_TASKS:
                plan.lose(LOST_EVENTS, component.name)
            elif component.name == "VTODO":
                if not component.uid:
                    item = f"VTODO {number + 1}"
                    plan.warn(item, "UID", "no_uid", "A VTODO with no UID: not imported")
                    plan.skipped += 1
                    continue
                objects.setdefault(component.uid, []).append(component)
        for uid, parts in objects.items():
            task = _task(plan, uid, parts, zones, list_key, zone)
            if task is not None:
                tasks.append(task)
    arrange(plan, tasks)
    return plan


def _task(
    plan: Plan,
    uid: str,
    parts: list[_Component],
    zones: dict[str, _Component],
    list_key: str | None,
    zone: str,
) -> PlannedTask | None:
    named = sorted({tzid for part in parts for tzid in part.tzids})
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Task API//Import//EN\r\n"
        + "".join(zones[tzid].text() for tzid in named if tzid in zones)
        + "".join(part.text() for part in parts)
        + "END:VCALENDAR\r\n"
    )
    try:
        parsed = vtodo.parse(body.encode(), zone)
    except CalendarObjectRefused as error:
        plan.warn(uid, None, "refused", f"Not imported: {error}")
        plan.skipped += 1
        return None
    fields = parsed.create_fields()
    fields.setdefault("time_zone", zone)
    for _ in parsed.overrides:
        plan.lose(LOST_OVERRIDES, uid)
    return PlannedTask(
        key=parsed.uid,  # as the mapping reads it, as it reads a RELATED-TO naming it
        item=uid,
        fields=fields,
        list_key=list_key,
        parent_key=parsed.parent_uid,
        order=float(parsed.sort_order) if parsed.sort_order is not None else None,
        completed_at=parsed.completed_at,
    )


def _calendars(text: str) -> list[_Calendar]:
    """Each VCALENDAR of `text` with its name and its components as received."""
    calendars: list[_Calendar] = []
    current: _Calendar | None = None
    component: _Component | None = None
    depth = 0  # inside the component: 1 its own lines, more a nested one (a VALARM)
    for number, raw in enumerate(_LOGICAL.findall(text), start=1):
        if not raw:
            continue
        line = _FOLD.sub("", raw).rstrip("\r\n")
        if not line.strip():
            continue
        head, _, value = line.partition(":")
        name = head.split(";", 1)[0].strip().upper()
        if current is None:
            if name == "BEGIN" and value.strip().upper() == "VCALENDAR":
                current = _Calendar()
                continue
            raise NotThisSource(f"line {number}", "Not an iCalendar file (no BEGIN:VCALENDAR)")
        if component is None:
            if name == "BEGIN":
                component = _Component(value.strip().upper(), [raw])
                depth = 1
            elif name == "END":
                calendars.append(current)
                current = None
            elif name == "X-WR-CALNAME":
                current.name = _unescape(value)
            continue
        component.lines.append(raw)
        for found in _TZID.finditer(head):
            component.tzids.add(found[1] if found[1] is not None else found[2])
        if name == "BEGIN":
            depth += 1
        elif name == "END":
            depth -= 1
            if depth == 0:
                current.components.append(component)
                component = None
        elif depth == 1 and name in ("UID", "TZID") and component.uid is None:
            component.uid = _unescape(value).strip()
    if current is not None:
        raise NotThisSource("file", "The calendar does not end (no END:VCALENDAR)")
    if not calendars:
        raise NotThisSource("file", "Not an iCalendar file (no BEGIN:VCALENDAR)")
    return calendars


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m[1] in "nN" else m[1], value)
