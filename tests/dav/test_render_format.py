"""The format numbers of what CalDAV and the calendar feeds serve, held against the bytes.

An object's ETag (`services/calendar/dav_tags.py`: the database's, a PUT's too, `WRITTEN_TAG`) and a
feed's (`calendar_ics.tag`) are computed from
the values a body is made of and a format number (`RENDER_FORMAT`, `BODY_FORMAT`), never from
the body: a change of the rendered bytes for the same values must bump the number, or a client
holding the old tag keeps the old body. Here a fixed set of tasks is rendered both ways and
the bytes' SHA-256 compared with the one recorded for the current number: bytes that changed
under the same number fail. After a deliberate change, bump the number and record the new
digest beside it (the failure prints it); keep the old rows, they say what each number was.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from backend.ical.vtodo import parse, render
from backend.models import Priority
from backend.services.calendar import calendar_ics
from backend.services.calendar.dav_tags import RENDER_FORMAT

FIXTURES = Path(__file__).parent / "fixtures"
_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# The digest of `_rendered()` and of `_written()` for each `RENDER_FORMAT`, and of `_feeds()` for
# each `BODY_FORMAT`.
RENDERED = {5: "9003d598733eca285981b9691e2c91802c7f754da51d92403b52ff752c8f9123"}
# `_written()` held the Python copy of a PUT's tag too until issue 91 (5: 193d3f69...): now the
# database's, only the bytes.
WRITTEN = {5: "ad4f599018743157ac03b1bcba649cbd2ee86b3c0a61ea952ea936d6e788bfe7"}
FEEDS = {4: "874efb3832dcf8d9749ce21d93b7b514095f7cf04c623f8b89ba56e8401871c5"}


def _row(**values: Any) -> SimpleNamespace:
    """A task row's attributes (`TaskRow`), as the service returns them."""
    base: dict[str, Any] = {
        "id": 42,
        "title": "A task",
        "description": None,
        "completed": False,
        "completed_at": None,
        "priority": Priority.none,
        "due_date": None,
        "all_day": False,
        "tags": [],
        "recurrence": None,
        "time_zone": "UTC",
        "series_start": None,
        "next_due_date": None,
        "position": 65536,
        "parent_id": None,
        "reminders": [],
        "created_at": _AT,
        "updated_at": _AT,
        "version": 1,
    }
    return SimpleNamespace(**{**base, **values})


def _tasks() -> list[SimpleNamespace]:
    """Tasks that between them write every property either body has."""
    due = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    return [
        _row(),
        _row(
            id=43,
            title="Pay rent; then, call \\ Anna",
            description="Line one\nLine two, with a comma",
            priority=Priority.high,
            due_date=due,
            tags=["home", "money"],
            time_zone="Europe/Berlin",
            reminders=[{"minutes_before_due": 15}],
            version=3,
        ),
        _row(
            id=44,
            title="Water the plants",
            due_date=datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
            all_day=True,
            time_zone="Europe/Berlin",
            recurrence="FREQ=WEEKLY;BYDAY=TU",
            series_start=datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
            next_due_date=datetime(2026, 12, 8, 23, 0, tzinfo=UTC),
            position=131072,
        ),
        _row(
            id=45,
            title="Done already",
            completed=True,
            completed_at=_AT,
            parent_id=43,
            priority=Priority.low,
            version=7,
        ),
    ]


def _rendered() -> bytes:
    """Every task as CalDAV serves it: ours, and one over a client's kept object."""
    tasks = _tasks()
    bodies = [render(task, None, task.reminders) for task in tasks[:3]]
    bodies.append(render(tasks[3], None, [], parent_uid="task-43@task-api"))
    kept = parse((FIXTURES / "apple_reminders.ics").read_bytes())
    bodies.append(render(tasks[1], kept.keep, tasks[1].reminders))
    return b"\0".join(bodies)


def _written() -> bytes:
    """A client's object as a PUT that stored it answers it: rendered fresh (its own stamps)
    on tasks a PUT answers the tag of (the tag is the database's, `dav_tags.WRITTEN_TAG`: held
    against a GET's by tests/dav/test_put_etag.py)."""
    kept = parse((FIXTURES / "todoman.ics").read_bytes()).keep
    rows = [_row(reminders=None), _row(id=46, version=2, position=3, time_zone="Europe/Berlin")]
    rows[1].updated_at = datetime(2026, 11, 25, 12, 0, 0, 1234, tzinfo=UTC)
    parts = []
    for row in rows:
        parts.append(render(row, kept, [], fresh=True))
    return b"\0".join(parts)


def _feeds() -> bytes:
    """The tasks as a calendar feed's body, of both kinds."""
    tasks = _tasks()
    return b"\0".join(calendar_ics.body(kind, "Feed", _AT, tasks) for kind in ("todos", "events"))


def _held(name: str, number: int, recorded: dict[int, str], body: bytes) -> None:
    digest = hashlib.sha256(body).hexdigest()
    assert recorded.get(number) == digest, (
        f"the rendered bytes differ from those recorded for {name} = {number}: bump {name} "
        f"(a client's held tag must change with the bytes) and record {{{number + 1}: "
        f'"{digest}"}} in this test (or record this number\'s digest if none is yet)'
    )


def test_rendered_objects_are_the_render_formats() -> None:
    _held("RENDER_FORMAT", RENDER_FORMAT, RENDERED, _rendered())


def test_a_written_object_is_the_render_formats() -> None:
    _held("RENDER_FORMAT", RENDER_FORMAT, WRITTEN, _written())


def test_feed_bodies_are_the_body_formats() -> None:
    _held("BODY_FORMAT", calendar_ics.BODY_FORMAT, FEEDS, _feeds())
