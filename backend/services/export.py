"""What an export reads (specs/import-export.md, "Export"): the caller's OWN rows only (`owned`:
`<table>.user_id = :owner`, never a shared list's rows through `may`), in keyset pages so each
page is one short statement in a unit of work of its own (`backend/transfer/exporter.py`).

Tasks come level by level, a level in pages by id: first the tasks with no parent, then those
whose parent has none, and so on (a subtask is in its parent's space: the same owner). Every
parent is so written before its subtasks whatever their ids (a task moved under a newer one),
with no recursive walk per page and no OFFSET: each level is one pass over the owner's rows on
its `(user_id, id)` key."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, cast

from sqlalchemy import BigInteger, Integer, and_, bindparam, select

from backend.db.scope import Scoped, owned
from backend.models import Task
from backend.models.task import TaskRow
from backend.models.task_list import ListRow, TaskList
from backend.services.child_rows import ChildRows
from backend.services.lists import LIST_VIEW
from backend.services.task_children import TaskAttachmentService, TaskCommentService
from backend.services.task_statements import TASK_VIEW

_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
_L = TaskList.__table__.c  # type: ignore[attr-defined]
_AFTER = bindparam("after", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)

# The caller's own lists in their order (at most LISTS_PER_USER): a shared list is its owner's.
_LISTS = owned(select(*LIST_VIEW), _L.user_id).order_by(_L.position, _L.name_key, _L.id)


@cache
def _tasks_at(depth: int) -> Any:
    """A page of the caller's tasks `depth` parents below the top (0: no parent), by id."""
    statement = owned(select(*TASK_VIEW), _T.user_id)
    child: Any = _TASKS
    for level in range(depth):
        parent = _TASKS.alias(f"parent_{level}")
        statement = owned(
            statement.join_from(
                child,
                parent,
                and_(parent.c.user_id == child.c.user_id, parent.c.id == child.c.parent_id),
            ),
            parent.c.user_id,
        )
        child = parent
    return (
        statement.where(child.c.parent_id.is_(None), _T.id > _AFTER).order_by(_T.id).limit(_LIMIT)
    )


def _children(rows: ChildRows) -> Any:
    """A page of a task child's rows on the caller's own tasks, by id: the child's own view
    (`storage_key` too, for an attachment's bytes), whoever wrote the row."""
    table: Any = rows.child.table.__table__  # type: ignore[attr-defined]
    c = table.c
    statement = owned(
        owned(
            select(*rows.view).join_from(
                table, _TASKS, and_(_T.user_id == c.user_id, _T.id == c.task_id)
            ),
            c.user_id,
        ),
        _T.user_id,
    )
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
