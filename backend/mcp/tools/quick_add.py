"""quick_add_task: a task from a line as a person types it, read as POST /api/tasks/quick
reads it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from backend.mcp.tools.common import Arguments, TaskChange, Tool
from backend.mcp.tools.tasks import TaskCreated
from backend.models.quick_add import QuickAddRequest
from backend.models.references import Action
from backend.models.types import TimeZoneName
from backend.services.tasks.quick_add import QuickAddService
from backend.services.tasks.service import TaskService
from backend.services.unit_of_work import UnitOfWork


class QuickAddArguments(Arguments, QuickAddRequest):
    """REST's quick-add body, the zone a plain name (the tools' `TimeZoneName`)."""

    time_zone: TimeZoneName | None = Field(
        default=None,
        description="IANA zone the text's dates and times are read in (Europe/Berlin); "
        "default the user's notification settings' zone, else UTC.",
    )


def _quick_add_task(work: UnitOfWork, arguments: QuickAddArguments) -> TaskChange:
    tasks: TaskService = work.service(TaskService)
    quick_add: QuickAddService = work.service(QuickAddService)
    sent = arguments.model_dump(exclude={"user_id"}, exclude_unset=True)
    body = QuickAddRequest.model_validate({**sent, "text": arguments.sent})
    task = tasks.create(quick_add.read(body).task)
    return TaskCreated(task_id=task.id, title=task.title)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="quick_add_task",
        action=Action.TASK_WRITE,
        title="Add a task from a line of text",
        description="Create a task from a line as a person types it, read by the server as "
        "POST /api/tasks/quick reads it: 'Buy milk tomorrow 5pm #Home @errands !high', "
        "'Water plants every other monday'. #list, @tag, !high|!medium|!low, +member, dates, "
        "times and 'every ...'; double-quoted text is kept as typed. Pass the user's words "
        "as they wrote them. Returns its task_id and title.",
        arguments=QuickAddArguments,
        result=TaskCreated,
        run=_quick_add_task,
    ),
)
