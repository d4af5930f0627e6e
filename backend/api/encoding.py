"""The typed encoder of task pages: rows straight to the JSON bytes `ListEnvelope[TaskPublic]`
would print, without building and validating a hundred pydantic models first.

The fields are `TaskPublic`'s (read from the model, so the schema has one source), the
computed `is_overdue` uses the model's own rule, and pydantic-core prints the values exactly
as it does for the model (tests/api/test_encoding.py compares the bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import Response
from pydantic_core import to_json

from backend.models import ListMeta, TaskPublic, TaskRow
from backend.models.task import is_overdue

_FIELDS = tuple(TaskPublic.model_fields)


class TaskPageJSON(Response):
    """A page of tasks, encoded: the body of `ListEnvelope[TaskPublic]`."""

    media_type = "application/json"

    def __init__(self, items: Sequence[TaskRow], meta: ListMeta) -> None:
        super().__init__(encode_task_page(items, meta))


def encode_task_page(items: Sequence[TaskRow], meta: ListMeta) -> bytes:
    now = datetime.now(UTC)
    return to_json({"data": [_task(row, now) for row in items], "meta": meta}, by_alias=True)


def _task(row: TaskRow, now: datetime) -> dict[str, Any]:
    task = {name: getattr(row, name) for name in _FIELDS}
    task["is_overdue"] = is_overdue(row.completed, row.due_date, now)
    return task
