"""undo: one change of a task from the activity, undone."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictInt

from backend.contracts.tasks import TASK_ID_MAX, TASK_ID_MIN
from backend.mcp.tools.common import Arguments, TaskChange, Tool, change
from backend.models import TaskEvent
from backend.models.references import Action, Reference
from backend.services.tasks.undo import UndoService
from backend.services.unit_of_work import UnitOfWork

TaskUndone = change("TaskUndone", "undone", TaskChange)


class UndoArguments(Arguments):
    activity_id: (
        Annotated[
            StrictInt,
            Field(ge=TASK_ID_MIN, le=TASK_ID_MAX, examples=[1042]),
            Reference(TaskEvent.__tablename__, Action.TASK_WRITE),
        ]
        | None
    ) = Field(
        default=None,
        description="The activity entry to undo (`id` in GET /api/activity). Omitted: your own "
        "newest change of a task.",
    )


def _undo(work: UnitOfWork, arguments: UndoArguments) -> TaskChange:
    undoing: UndoService = work.service(UndoService)
    task = undoing.undo(arguments.activity_id)
    return TaskUndone(task_id=task.id, title=task.title)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="undo",
        title="Undo a change",
        description='Undo one change of a task from the activity ("undo that"): its fields '
        "back to their old values, a completion back to open, a reopening back to completed, "
        "a move back, a deleted task restored from the trash. Without activity_id, your own "
        "newest change (a deletion included; a list's deletion is refused, naming the trash). "
        "Refused (409, nothing changed) when a "
        "later change touched the same fields; another member's change only as the list's "
        'admin or owner. Returns its task_id, "status": "undone" and its title.',
        arguments=UndoArguments,
        result=TaskUndone,
        run=_undo,
        destructive=True,
    ),
)
