"""Each task child's service, a named class declared once per child with routes or tools
(backend/models/task_children.py): its statements built from the declaration
(backend/services/child_rows.py `ChildRows`), its methods `TaskChildService`'s. A route takes
it as any service (`comments: Annotated[TaskCommentService, uses(TaskCommentService)]`), a
tool, chat or the CLI binds it from its unit of work (`work.service(TaskCommentService)`);
what is made for every child (its routes, its tools) finds it by `child_service`."""

from __future__ import annotations

from backend.models.attachment import TASK_ATTACHMENTS
from backend.models.sharing import TASK_COMMENTS
from backend.models.task_children import TaskChild
from backend.services.child_rows import SERVICES, ChildRows, TaskChildService


class TaskCommentService(TaskChildService):
    rows = ChildRows(TASK_COMMENTS)


class TaskAttachmentService(TaskChildService):
    """An attachment's row (its bytes: backend/services/attachments.py)."""

    rows = ChildRows(TASK_ATTACHMENTS)


def child_service(child: TaskChild) -> type[TaskChildService]:
    """`child`'s named service class (declared above)."""
    if child.name not in SERVICES:
        raise LookupError(f"{child.name}: declare its service in {__name__}")
    return SERVICES[child.name]
