"""A calendar feed's body (specs/api-contract.md, "Calendar feeds"), made by `icalendar` from
`task_calendar.MAPPING` as CalDAV renders it. `DTSTAMP` is the task's last change, so one state of
the tasks is one body, byte for byte: what lets `tag` be the feed's ETag without making the body."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from icalendar import Calendar, Event, Todo

from backend.models.task_calendar import Target, Text, add_zones, write

PRODUCT = "-//Task API//Calendar feed//EN"
# The body's format version, part of every ETag (`tag`): bump it whenever `body()`'s output changes
# for the same values, or a client keeps its old copy (304).
BODY_FORMAT = 4


def tag(feed_id: int, kind: str, name: str, year: int, rows: Sequence[Any]) -> str:
    """The strong ETag of the body `body` would make: from its format (`BODY_FORMAT`), the tasks'
    versions, the reader's reminders, the feed's kind and name and the zones' year."""
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
    calendar.add("x-wr-calname", Text(name))
    for row in rows:
        component = Todo() if kind == "todos" else Event()
        write(component, row, Target("todo" if kind == "todos" else "event", row.reminders or ()))
        component.add("sequence", row.version)
        if kind != "todos":
            component.add("transp", "TRANSPARENT")  # a due date is not a meeting: no time blocked
        calendar.add_component(component)
    # Zones around the fetch's year, not the tasks': the body changes with the tasks only.
    add_zones(calendar, now.year)
    return bytes(calendar.to_ical())
