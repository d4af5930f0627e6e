"""The VTODO of a task no client wrote, many at a time (an export): CalDAV's mapping
(models/task_calendar.py `MAPPING`), written once per task, the same bytes as `vtodo.render`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from icalendar import Todo

from backend.models.task_calendar import BY_NAME, MAPPING, Target, derived_uid

_MERGED = tuple(m.name for m in MAPPING if m.merged)

_FOLD_AT = 75  # octets: icalendar folds a line of this length or more (RFC 5545 3.1)


def derived(
    task: Any, reader_reminders: Sequence[dict[str, Any]], *, parent_uid: str | None = None
) -> bytes:
    """The VTODO `render` serves for a task no client wrote (`kept` None), without its
    VCALENDAR: the skeleton's CREATED and UID, each merged group's lines in `MAPPING`'s order
    (a group's own properties sorted, as `_our_lines` writes them), then the reader's VALARMs.
    One component written once rather than a calendar parsed and merged line by line: for many
    tasks at once (an export), the same mapping, the same bytes (tests/transfer/test_export.py
    compares them with what CalDAV GET serves)."""
    todo = Todo()
    todo.add("created", task.created_at.astimezone(UTC))
    todo.add("uid", derived_uid(task.id))
    target = Target("todo", reader_reminders, parent_uid)
    for group in _MERGED:
        before = len(todo)
        BY_NAME[group].put(todo, task, target)
        if len(todo) - before > 1:  # a group of several properties: sorted, as `to_ical` sorts
            added = list(todo)[before:]
            if added != sorted(added):
                values = {name: todo.pop(name) for name in added}
                for name in sorted(added):
                    todo[name] = values[name]
    BY_NAME["VALARM"].put(todo, task, target)
    return _unfolded_fast(todo)


def _unfolded_fast(component: Any) -> bytes:
    """`component.to_ical(sorted=False)`, the same bytes: icalendar writes each line; its fold,
    a character at a time, runs only on a line long enough to fold (75 octets), a fourth of an
    export's CPU otherwise."""
    out = []
    for line in component.content_lines(sorted=False):
        raw = line.encode()
        if raw:
            out.append(raw if len(raw) < _FOLD_AT else line.to_ical())
    out.append(b"")
    return b"\r\n".join(out)
