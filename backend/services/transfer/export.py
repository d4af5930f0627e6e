"""What an export reads (specs/import-export.md, "Export"): the caller's OWN rows only (`owned`:
`<table>.user_id = :owner`, never a shared list's rows through `may`), in keyset pages so each
page is one short statement in a unit of work of its own (`backend/transfer/exporter.py`).

Tasks come level by level, a level in pages by id: first the tasks with no parent, then those
whose parent has none, and so on (a subtask is in its parent's space: the same owner). Every
parent is so written before its subtasks whatever their ids (a task moved under a newer one),
with no recursive walk per page and no OFFSET: each level is one pass over the owner's rows on
its `(user_id, id)` key, each row's parents found on the same key."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, cast

from sqlalchemy import BigInteger, Integer, bindparam, select

from backend.db.scope import Scoped, owned
from backend.models import Task
from backend.models.task import TaskRow
from backend.models.task_list import ListRow, TaskList
from backend.services.sharing.lists import LIST_VIEW
from backend.services.tasks.child_rows import ChildRows
from backend.services.tasks.task_children import TaskAttachmentService, TaskCommentService
from backend.services.tasks.task_statements import TASK_VIEW

_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
_L = TaskList.__table__.c  # type: ignore[attr-defined]
_AFTER = bindparam("after", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)

# The caller's own lists in their order (at most LISTS_PER_USER): a shared list is its owner's.
_LISTS = owned(select(*LIST_VIEW), _L.user_id).order_by(_L.position, _L.name_key, _L.id)


def _parent_of(task_id: Any, level: int) -> Any:
    """The parent id of the caller's task `task_id`: a subquery run once per row on the
    `(user_id, id)` key. Not a join: with the statistics of a table an import just filled, the
    planner priced a join's inner side as one row and scanned the owner's tasks once per task
    (14.6 s for a page of 10,000 tasks' subtasks)."""
    parent = _TASKS.alias(f"parent_{level}")
    found = select(parent.c.parent_id).where(parent.c.id == task_id).correlate_except(parent)
    return owned(found, parent.c.user_id).scalar_subquery()


@cache
def _tasks_at(depth: int) -> Any:
    """A page of the caller's tasks `depth` parents below the top (0: no parent), by id."""
    above: Any = _T.parent_id
    held = []
    for level in range(depth):
        held.append(above.is_not(None))
        above = _parent_of(above, level)
    statement = owned(select(*TASK_VIEW), _T.user_id)
    return statement.where(*held, above.is_(None), _T.id > _AFTER).order_by(_T.id).limit(_LIMIT)


def _children(rows: ChildRows) -> Any:
    """A page of a task child's rows on the caller's own live tasks, by id: the child's own
    view (`storage_key` too, for an attachment's bytes), whoever wrote the row. Its task is
    found per row on its key (`EXISTS`), for the reason `_parent_of` gives."""
    table: Any = rows.child.table.__table__  # type: ignore[attr-defined]
    c = table.c
    task = _TASKS.alias("task")
    live = owned(select(task.c.id).where(task.c.id == c.task_id), task.c.user_id).exists()
    statement = owned(select(*rows.view).where(live), c.user_id)
    return statement.where(c.id > _AFTER).order_by(c.id).limit(_LIMIT)


_COMMENTS = _children(TaskCommentService.rows)
_ATTACHMENTS = _children(TaskAttachmentService.rows)


class ExportService(Scoped):
    """The caller's own rows, a page at a time (`after`: the last id of the page before)."""

    def lists(self) -> Sequence[ListRow]:
        return cast(Sequence[ListRow], self._read(_LISTS).all())

    def tasks(self, depth: int, after: int, limit: int) -> Sequence[TaskRow]:
        """Tasks `depth` parents below the top with ids above `after`, by id."""
        return cast(Sequence[TaskRow], self._read(_tasks_at(depth), after=after, limit=limit).all())

    def comments(self, after: int, limit: int) -> Sequence[Any]:
        """Comments on the caller's tasks (anyone's) with ids above `after`, by id."""
        return self._read(_COMMENTS, after=after, limit=limit).all()

    def attachments(self, after: int, limit: int) -> Sequence[Any]:
        """Attachments of the caller's tasks with ids above `after`, by id."""
        return self._read(_ATTACHMENTS, after=after, limit=limit).all()
