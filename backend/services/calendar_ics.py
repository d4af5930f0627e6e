"""A calendar feed's body (issue 52; specs/api-contract.md, "Calendar feeds"): the tasks a
fetch read, as RFC 5545 text made by `icalendar` (folding at 75 octets without splitting a
character, VTIMEZONE from the zone database; TEXT escaped by `_Text`, below), never by hand.

Each task is one component: a VEVENT (`events`) or a VTODO (`todos`) with a stable `UID`, its
`SEQUENCE` and `LAST-MODIFIED` from its version, `DTSTAMP` its last change (so one state of the
tasks is one body, byte for byte: the ETag's promise), `DTSTART` in its own time zone, an open
recurring task's rule as `RRULE` from its open occurrence (`recurrence.calendar_rule`; each
completed occurrence is a task of its own, shown once) and the reader's own reminders as
VALARMs. `tag` is the feed's ETag, from what the body is made of, without making it.

Every text we write (the feed's name, a title, a description, a tag) is TEXT escaped as
RFC 5545 section 3.3.11 says, by `_Text`: icalendar's own `vText` reads a literal `\\N` as a
line break before it escapes backslashes (issue 61: `C:\\New` came out as `C:` and `ew`), so
its escaping is replaced, not its parser: a real parser reads back exactly the stored text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from icalendar import Alarm, Calendar, Event, Todo, vCategory, vRecur, vText

from backend.recurrence import calendar_rule, time_zone

PRODUCT = "-//Task API//Calendar feed//EN"
UID_DOMAIN = "task-api"
# The years each VTIMEZONE covers, around the year of the fetch (a year's, so the body
# changes with the tasks only, within a year).
_ZONE_YEARS_BACK = 1
_ZONE_YEARS_AHEAD = 6
# The version of the body's format, part of every ETag (`tag`): the same values rendered by
# another `body` are another body. Bump it whenever `body()`'s output changes for the same
# values (escaping, a property added or written differently, another `icalendar` rendering),
# or a client holding the old ETag keeps the old rendering (304). 2: TEXT escaped backslash
# first (issue 61, item 5).
BODY_FORMAT = 2


class _Text(vText):
    """A TEXT value: each backslash escaped first, then `;` `,` and each line break (CRLF,
    CR or LF) as `\\n`; nothing else is a sequence (RFC 5545, 3.3.11)."""

    def to_ical(self) -> bytes:
        escaped = (
            str(self)
            .replace("\\", "\\\\")
            .replace(";", "\\;")
            .replace(",", "\\,")
            .replace("\r\n", "\\n")
            .replace("\r", "\\n")
            .replace("\n", "\\n")
        )
        return escaped.encode()  # UTF-8, as the whole body


class _Categories(vCategory):
    """CATEGORIES: each tag a `_Text`, joined by the commas that separate them."""

    def to_ical(self) -> bytes:
        return b",".join(_Text(str(tag)).to_ical() for tag in self.cats)


def tag(feed_id: int, kind: str, name: str, year: int, rows: Sequence[Any]) -> str:
    """The strong ETag of the body `body` would make from the same values: the body's format
    (`BODY_FORMAT`), the tasks' versions and the reader's own reminders (a member's change no
    version counts), the feed's kind and name, the year its zones are written for."""
    digest = hashlib.sha256(repr((BODY_FORMAT, feed_id, kind, name, year)).encode())
    for row in rows:
        digest.update(repr((row.id, row.version, row.reminders)).encode())
    return f'"{digest.hexdigest()[:32]}"'


def body(kind: str, name: str, now: datetime, rows: Sequence[Any]) -> bytes:
    """The feed as `text/calendar` bytes (UTF-8, CRLF)."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", _Text(name))
    todos = kind == "todos"
    for row in rows:
        calendar.add_component(_todo(row) if todos else _event(row))
    calendar.add_missing_timezones(
        first_date=date(now.year - _ZONE_YEARS_BACK, 1, 1),
        last_date=date(now.year + _ZONE_YEARS_AHEAD, 1, 1),
    )
    return bytes(calendar.to_ical())


def _common(component: Any, row: Any, start_as: str) -> None:
    """What both kinds hold; the due date as `start_as` (an event's DTSTART, a todo's DUE:
    a todo has no start, and RFC 5545 wants its DUE after any DTSTART)."""
    component.add("uid", f"task-{row.id}@{UID_DOMAIN}")
    component.add("dtstamp", row.updated_at.astimezone(UTC))
    component.add("last-modified", row.updated_at.astimezone(UTC))
    component.add("sequence", row.version)
    component.add("summary", _Text(row.title))
    if row.description:
        component.add("description", _Text(row.description))
    if row.tags:
        component.add("categories", _Categories(list(row.tags)))
    component.add(start_as, row.due_date.astimezone(time_zone(row.time_zone)))
    if row.recurrence and not row.completed:
        start_of_series = row.series_start or row.due_date
        rule = calendar_rule(row.recurrence, row.time_zone, start_of_series)
        component.add("rrule", vRecur.from_ical(rule))
    for reminder in row.reminders or ():
        component.add_component(_alarm(reminder, row.title))


def _event(row: Any) -> Event:
    event = Event()
    _common(event, row, "dtstart")
    event.add("transp", "TRANSPARENT")  # a due date is not a meeting: it blocks no time
    return event


def _todo(row: Any) -> Todo:
    todo = Todo()
    _common(todo, row, "due")
    if row.completed:
        todo.add("status", "COMPLETED")
        if row.completed_at is not None:
            todo.add("completed", row.completed_at.astimezone(UTC))
    else:
        todo.add("status", "NEEDS-ACTION")
    return todo


def _alarm(reminder: dict[str, Any], title: str) -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", _Text(title))
    if "minutes_before_due" in reminder:
        alarm.add("trigger", timedelta(minutes=-int(reminder["minutes_before_due"])))
    else:
        at = datetime.fromisoformat(reminder["at"]).astimezone(UTC)
        alarm.add("trigger", at)
    return alarm
