"""The typed encoder of task pages: rows straight to the JSON bytes `TaskListEnvelope` would
print, without validating a hundred pydantic models first; `TaskPublic`'s fields and rules,
printed by pydantic-core (tests/api/test_encoding.py compares the bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from fastapi import Response
from pydantic_core import to_json

from backend.models import ListMeta, TaskPublic, TaskRow
from backend.models.task import due_value, is_overdue
from backend.services.tasks.task_statements import TASK_VIEW

_FIELDS = tuple(name for name in TaskPublic.model_fields if name != "is_overdue")
# A page's rows start with TASK_VIEW's columns: read by position (a Row's attribute access is
# several times slower, a third of a 100-task page).
_VALUES = itemgetter(*(tuple(column.name for column in TASK_VIEW).index(f) for f in _FIELDS))


class TaskPageJSON(Response):
    """A page of tasks, encoded: the body of `TaskListEnvelope`."""

    media_type = "application/json"

    def __init__(self, items: Sequence[TaskRow], meta: ListMeta) -> None:
        super().__init__(encode_task_page(items, meta))


def encode_task_page(items: Sequence[TaskRow], meta: ListMeta) -> bytes:
    now = datetime.now(UTC)
    return to_json({"data": [_task(row, now) for row in items], "meta": meta}, by_alias=True)


def _task(row: TaskRow, now: datetime) -> dict[str, Any]:
    task = dict(zip(_FIELDS, _VALUES(row), strict=True))
    if row.all_day:
        task["due_date"] = due_value(row.due_date, True, row.time_zone)
    task["is_overdue"] = is_overdue(row.completed, task["due_date"], now, row.time_zone)
    return task
