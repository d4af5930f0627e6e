"""One decoder for reads and writes (issue 37): every column of `tasks` arrives with the same
Python type and value from a GET and from each write that stored it: a create and a PATCH
(a write that commits in its own message), a toggle (the written-or-stored statement), a
write inside a transaction of ours, and a bulk step (its row sent as JSON)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Engine

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.models import TaskCreate, TaskUpdate
from backend.models.task_ops import BulkOperation
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_statements import TASK_VIEW
from backend.services.unit_of_work import UnitOfWork

_FULL = {
    "title": "every column",
    "description": "set",
    "priority": "high",
    "tags": ["a", "b"],
    "due_date": "2030-01-01T09:30:00Z",
    "recurrence": "weekly",
    "time_zone": "Europe/Paris",
    "reminders": [{"minutes_before_due": 10}],
}
_OPS = TypeAdapter(list[BulkOperation])


def _columns(row: Any) -> dict[str, tuple[type, Any]]:
    """Each column the task answers with: its value's type and the value."""
    values = row._mapping if hasattr(row, "_mapping") else vars(row)
    return {c.name: (type(values[c.name]), values[c.name]) for c in TASK_VIEW}


def _work(engine: Engine, settings: Settings, *, write: bool) -> UnitOfWork:
    claims = TokenClaims(subject="decoded", local=False)
    return UnitOfWork(engine, settings, claims=claims, counts_write=write)


def test_every_column_arrives_alike_from_a_read_and_each_write(
    db_engine: Engine, settings: Settings
) -> None:
    with _work(db_engine, settings, write=True) as work:
        created = work.service(TaskService).create(TaskCreate.model_validate(_FULL))
    task_id = created.id

    def stored() -> dict[str, tuple[type, Any]]:
        with _work(db_engine, settings, write=False) as work:
            return _columns(work.service(TaskService).get(task_id))

    assert _columns(created) == stored()
    with _work(db_engine, settings, write=True) as work:
        patched = work.service(TaskService).update(task_id, TaskUpdate(title="patched"))
    assert _columns(patched) == stored()
    with _work(db_engine, settings, write=True) as work:
        work.hold_commit()  # written inside a transaction of ours, committed on leaving
        held = work.service(TaskService).update(task_id, TaskUpdate(description="held"))
    assert _columns(held) == stored()
    with _work(db_engine, settings, write=True) as work:
        operations = _OPS.validate_python([{"op": "add_tag", "id": task_id, "tag": "c"}])
        [stepped] = work.service(TaskService).apply(operations)
    assert stepped is not None and _columns(stepped) == stored()
    with _work(db_engine, settings, write=True) as work:
        toggled = work.service(TaskService).set_completed(
            task_id, None
        )  # completes the series: 2 messages
    assert _columns(toggled) == stored() and toggled.completed
    with _work(db_engine, settings, write=True) as work:
        reopened = work.service(TaskService).set_completed(task_id, False)
    assert _columns(reopened) == stored()
    # Every type a task column has is among those compared (an enum, instants, JSON, arrays).
    kinds = {kind.__name__ for kind, _ in stored().values()}
    assert {"datetime", "Priority", "list", "str", "int", "bool"} <= kinds, kinds
