"""The ETag a PUT answers (issue 81; specs/caldav.md, "Objects"): the tag of the object it
stored, only where a GET right after it returns the very bytes the client sent (RFC 4791
5.3.4, RFC 9110 9.3.4); otherwise none, and the client reads the object back.

A client that keeps the tag a PUT answers (vdirsyncer) knows its own write when it next lists
the collection; one given none takes the next listing's tag for a change on the server.

The tag is the one the database computes with every read of the object, built from the row
the write returned with no statement more (`dav_tags.written_tag`, beside the SQL it copies):
the kept object is fresh (`vtodo.render` serves the client's own DTSTAMP and LAST-MODIFIED).
It is built only for the shape whose inputs the write knows exactly: a task with no rule and
no parent (no parent UID served) whose reader has no reminders (the body holds no VALARM of
ours). `tests/dav/test_put_etag.py` compares it with the listing's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.dav.vtodo import render
from backend.services.dav_tags import written_tag


@dataclass(frozen=True)
class Stored:
    """What a PUT wrote where the object served under its name is the one it kept: the task
    as the write returned it, and the kept object (`ParsedTodo.keep`)."""

    row: Any
    kept: str


def stored_tag(stored: Stored | None, body: bytes) -> str | None:
    """The ETag of the stored object where it is `body` byte for byte, else None."""
    if stored is None:
        return None
    row = stored.row
    if row.recurrence is not None or row.parent_id is not None or row.reminders:
        return None
    if stored.kept.encode() != body:  # kept otherwise (its line ends, a VALARM left out)
        return None
    if render(row, stored.kept.encode(), [], fresh=True) != body:
        return None
    return written_tag(row, stored.kept)
