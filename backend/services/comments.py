"""Comments on tasks (issue 39; specs/api-contract.md, "Shared lists"): `task_comments`,
migration 0029, a declared child of its task (backend/models/task_children.py): its
statements and refusals are `ChildRows`' (backend/services/child_rows.py), from the
declaration's actions, author and moderation."""

from __future__ import annotations

from backend.models.sharing import TaskComment
from backend.models.task_children import COMMENTS_PER_TASK, child_of
from backend.services.child_rows import ChildRows, TaskChildService

__all__ = ["COMMENTS_PER_TASK", "CommentService"]


class CommentService(TaskChildService):
    rows = ChildRows(child_of(TaskComment))
