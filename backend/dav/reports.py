"""A collection's REPORTs (RFC 4791 §7.8, §7.9; specs/caldav.md, "Objects"): `calendar-multiget`
and `calendar-query`, each reading the collection in one statement and rendering only the
objects whose `calendar-data` is asked for or whose properties a `prop-filter` tests past the
row's columns (`_FROM_COLUMN`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from backend.dav import objects
from backend.dav.objects import Served
from backend.dav.xml import (
    CALDAV,
    DAV,
    Found,
    PropfindRequest,
    ReportRequest,
    TextMatch,
    Value,
    clark,
    multistatus,
)
from backend.errors import InvalidRequest
from backend.ical.vtodo import first_todo
from backend.models.task_calendar import MAPPING, is_day
from backend.recurrence import Schedule, day_end
from backend.services.unit_of_work import UnitOfWork

CALENDAR_DATA = clark(CALDAV, "calendar-data")
GETETAG = clark(DAV, "getetag")
_BAD_TIME = "A time-range's start and end are UTC date-times (20261201T000000Z)"


def listed(served: Served, list_id: int | None, names: Iterable[str] = ()) -> Found:
    """An object in a listing: its href, ETag and content type (and its body when asked)."""
    properties: dict[str, Value] = {
        clark(DAV, "resourcetype"): None,
        GETETAG: served.tag,
        clark(DAV, "getcontenttype"): objects.CONTENT_TYPE,
    }
    if CALENDAR_DATA in names:
        properties[CALENDAR_DATA] = served.body().decode()
    return Found(served.href(list_id), properties)


def answer(work: UnitOfWork, list_id: int | None, asked: ReportRequest) -> bytes:
    """The 207 body of the REPORT `asked` on the collection (its rows read in one statement)."""
    _, every = objects.listed(work, list_id)  # a list the caller cannot read: the 404
    window = _window(asked.time_range)
    missing: list[str] = []
    chosen: list[Served] = []
    if asked.kind == "multiget":
        by_href = {served.href(list_id): served for served in every}
        seen: set[str] = set()
        for wanted in asked.hrefs:
            path = _path(wanted)
            if path in seen:
                continue
            seen.add(path)
            if path in by_href:
                chosen.append(by_href[path])
            else:
                missing.append(path)
    else:
        chosen = [served for served in every if _matches(served, asked, window)]
    found = [listed(served, list_id, asked.names) for served in chosen]
    return multistatus(found, PropfindRequest(allprop=False, names=asked.names), missing)


def _path(href: str) -> str:
    """A requested href as we write ours: its path, decoded and encoded our one way."""
    path = unquote(urlsplit(href).path)
    directory, _, name = path.rpartition("/")
    return f"{directory}/" + objects.quote_name(name) if directory else path


def _window(time_range: tuple[str | None, str | None] | None) -> tuple[Any, Any] | None:
    if time_range is None:
        return None
    return _instant(time_range[0]), _instant(time_range[1])


def _instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(_BAD_TIME) from None


# The properties a VTODO takes from one text column of its task alone (SUMMARY, DESCRIPTION): a
# `prop-filter` on one is decided on the row, so a query renders only the objects it returns.
_FROM_COLUMN = {m.name: m.fields[0] for m in MAPPING if m.column}


def _matches(served: Served, asked: ReportRequest, window: tuple[Any, Any] | None) -> bool:
    if asked.component not in (None, "VCALENDAR", "VTODO"):
        return False  # a VEVENT (VJOURNAL, ...) query: a task collection holds none
    if window is not None and not _in_window(served.row, *window):
        return False
    on_rows = [test for test in asked.prop_filters if test.prop in _FROM_COLUMN]
    if not all(_column_matches(served.row, test) for test in on_rows):
        return False
    rest = [test for test in asked.prop_filters if test.prop not in _FROM_COLUMN]
    if not rest:
        return True
    todo = first_todo(served.body())
    return all(_prop_matches(todo, test) for test in rest)


def _column_matches(row: Any, test: TextMatch) -> bool:
    """`_prop_matches` on the column the property is rendered from."""
    value = getattr(row, _FROM_COLUMN[test.prop]) or None
    return _tested(test, None if value is None else [str(value)])


def _in_window(row: Any, start: datetime | None, end: datetime | None) -> bool:
    """RFC 4791 §9.9 for what a task has: its DUE `(start < DUE) AND (end >= DUE)`, else its
    completion `(start <= COMPLETED) AND (end >= COMPLETED)`, else every range (a task
    with neither matches any range: clients would otherwise lose undated tasks)."""
    moment = row.due_date
    if moment is not None and is_day(row):
        return _day_in_window(row, start, end)
    if moment is not None:
        if start is not None and moment <= start and _recurs(row):
            # An open occurrence of a series stands for the later ones too (RFC 4791 9.9
            # expands a recurring component): the first one after `start` may be in range.
            later = _later_occurrence(row, start)
            return later is not None and (end is None or end >= later)
        return (start is None or start < moment) and (end is None or end >= moment)
    moment = getattr(row, "completed_at", None) if row.completed else None
    if moment is not None:
        return (start is None or start <= moment) and (end is None or end >= moment)
    return True


def _day_in_window(row: Any, start: datetime | None, end: datetime | None) -> bool:
    """A day is the time from its start to its end on the task's clock (a DATE's span, RFC
    5545 3.3.4): in range when they overlap, `(start < day's end) AND (end > day's start)`.
    An open occurrence of a series stands for its later days, as an instant's does."""
    first = row.due_date
    if start is not None and day_end(first, row.time_zone) <= start and _recurs(row):
        # The series' first day ending after `start` (days are at most a day and an hour).
        schedule_start = getattr(row, "series_start", None) or first
        try:
            schedule = Schedule.of(row.recurrence, row.time_zone, schedule_start)
            later = schedule.after(max(first, start - timedelta(hours=26)), 30)
        except ValueError:  # a stored rule is valid; a zone gone from tzdata is not ours to fix
            return False
        first = next((d for d in later if day_end(d, row.time_zone) > start), None)
        if first is None:
            return False
    ends = day_end(first, row.time_zone)
    return (start is None or start < ends) and (end is None or end > first)


def _recurs(row: Any) -> bool:
    return bool(getattr(row, "recurrence", None)) and not row.completed


def _later_occurrence(row: Any, after: datetime) -> datetime | None:
    """The series' first due date after `after` (its start anchors a COUNT)."""
    start = getattr(row, "series_start", None) or row.due_date
    try:
        return Schedule.of(row.recurrence, row.time_zone, start).next_after(after)
    except ValueError:  # a stored rule is valid; a zone gone from tzdata is not ours to fix
        return None


def _prop_matches(todo: Any, test: TextMatch) -> bool:
    values = todo.get(test.prop)
    items = values if isinstance(values, list) else [values]
    return _tested(test, None if values is None else [_text(item) for item in items])


def _tested(test: TextMatch, texts: list[str] | None) -> bool:
    """A `prop-filter`'s test on the property's texts (None: it is not defined)."""
    if test.is_not_defined or texts is None:
        return test.is_not_defined and texts is None
    if test.text is None:
        return True
    return any(test.text.casefold() in text.casefold() for text in texts) != test.negate


def _text(value: Any) -> str:
    if hasattr(value, "cats"):  # CATEGORIES: each tag
        return ",".join(str(c) for c in value.cats)
    return str(value)
