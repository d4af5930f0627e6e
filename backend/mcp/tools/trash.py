"""The trash's tools: list the deleted tasks the caller may restore, restore one."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictInt

from backend.mcp.tools.common import Arguments, TaskChange, TaskId, Tool, change
from backend.models.references import SUBJECT, Action
from backend.models.trash import TrashedTaskPublic
from backend.services.history.trash import TRASH_NOT_FOUND, TrashService
from backend.services.unit_of_work import UnitOfWork

TRASH_PAGE_MAX = 100


class ListTrashArguments(Arguments):
    limit: Annotated[StrictInt, Field(ge=1, le=TRASH_PAGE_MAX)] = Field(
        default=50, description=f"At most this many deleted tasks (1-{TRASH_PAGE_MAX})."
    )


class TrashPage(BaseModel):
    """The deleted tasks the caller may restore, most recently deleted first: list_trash's
    result."""

    tasks: list[TrashedTaskPublic]
    has_more: bool = Field(description="Older deleted tasks follow (GET /api/trash pages them).")


class RestoreTaskArguments(Arguments):
    trash_id: Annotated[TaskId, SUBJECT] = Field(
        description="The deleted task's id (its id before the delete; list_trash gives it)."
    )


TaskRestored = change("TaskRestored", "restored", TaskChange)


def _list_trash(work: UnitOfWork, arguments: ListTrashArguments) -> TrashPage:
    trash: TrashService = work.service(TrashService)
    rows, more = trash.page(None, arguments.limit)
    return TrashPage(tasks=[TrashedTaskPublic.model_validate(row) for row in rows], has_more=more)


def _restore_task(work: UnitOfWork, arguments: RestoreTaskArguments) -> TaskChange:
    trash: TrashService = work.service(TrashService)
    task = trash.restore(arguments.trash_id)
    return TaskRestored(task_id=task.id, title=task.title)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="list_trash",
        title="List deleted tasks",
        description="The deleted tasks the user may restore, most recently deleted first: "
        "its own, and those of lists shared with it as editor or more, each kept 30 days "
        "(purge_at) with its subtasks and comments. restore_task brings one back.",
        arguments=ListTrashArguments,
        result=TrashPage,
        run=_list_trash,
        read_only=True,
    ),
    Tool(
        name="restore_task",
        action=Action.TASK_WRITE,
        not_found=TRASH_NOT_FOUND,
        title="Restore a deleted task",
        description="Bring a deleted task back from the trash (trash_id: its id, from "
        "list_trash) with its subtasks, comments, the assignees still allowed and its "
        "reminders: to its list and parent if they still exist and the user may still edit "
        'there, else to the top level. Returns its task_id, "status": "restored" and its '
        "title.",
        arguments=RestoreTaskArguments,
        result=TaskRestored,
        run=_restore_task,
    ),
)
