"""The ETag a PUT answers (specs/caldav.md, "Objects"): the stored object's, only where a GET
right after it returns the very bytes the client sent (RFC 4791 5.3.4), else none. Built from
the row the write returned, in its message (`dav_tags.WRITTEN_TAG`), and only for the
shape whose inputs the write knows exactly: no rule, no parent, no reminders for its reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.ical.vtodo import ParsedTodo, render


@dataclass(frozen=True)
class Stored:
    """What a PUT wrote: the task as the write returned it, and the body it kept."""

    row: Any
    parsed: ParsedTodo


def stored_tag(stored: Stored | None, body: bytes) -> str | None:
    """The ETag of the stored object where it is `body` byte for byte, else None."""
    if stored is None:
        return None
    row = stored.row
    if row.recurrence is not None or row.parent_id is not None or row.reminders:
        return None
    kept = stored.parsed.keep
    if kept != body:  # kept otherwise (its line ends, a VALARM left out)
        return None
    if render(row, kept, [], fresh=True, readings=stored.parsed.readings) != body:
        return None
    return getattr(row, "dav_tag", None)  # `DavObjectService.tag_written`
