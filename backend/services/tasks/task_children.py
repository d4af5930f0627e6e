"""Each task child's service, a named class per child with routes or tools: its statements
built from the declaration (`child_rows.ChildRows`), its methods `TaskChildService`'s; taken as
any service, and found by `child_service` for what is made for every child."""

from __future__ import annotations

from backend.models.attachment import TASK_ATTACHMENTS
from backend.models.sharing import TASK_COMMENTS
from backend.models.task_children import TaskChild
from backend.services.tasks.child_rows import SERVICES, ChildRows, TaskChildService


class TaskCommentService(TaskChildService):
    rows = ChildRows(TASK_COMMENTS)


class TaskAttachmentService(TaskChildService):
    """An attachment's row (its bytes: backend/services/tasks/attachments.py)."""

    rows = ChildRows(TASK_ATTACHMENTS)


def child_service(child: TaskChild) -> type[TaskChildService]:
    """`child`'s named service class (declared above)."""
    if child.name not in SERVICES:
        raise LookupError(f"{child.name}: declare its service in {__name__}")
    return SERVICES[child.name]
