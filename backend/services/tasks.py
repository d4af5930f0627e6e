"""Tasks, always scoped to one user.

Every statement goes through `TaskService._owned`, which adds `user_id = :caller`. A task that
belongs to someone else is therefore indistinguishable from one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Delete, Select, Update, case, delete, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from backend.errors import NotFound
from backend.models import (
    SortOrder,
    Task,
    TaskCreate,
    TaskReplace,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)

Stmt = TypeVar("Stmt", Select[Any], Update, Delete)

# Default direction per sort key: newest first; titles A to Z.
DEFAULT_ORDER = {TaskSort.created: SortOrder.desc, TaskSort.title: SortOrder.asc}


def _completion(completed: ColumnElement[bool] | bool) -> dict[str, Any]:
    """Values that set `completed` and keep `completed_at` consistent with it.

    `completed` is a value, or an expression over the stored row (a toggle). An
    already-completed task keeps its original completion time.
    """
    stamp = func.coalesce(col(Task.completed_at), func.now())
    if isinstance(completed, bool):
        completed_at: Any = stamp if completed else None
    else:
        completed_at = case((completed, stamp), else_=None)
    return {"completed": completed, "completed_at": completed_at}


class TaskService:
    def __init__(self, session: Session, user_id: str) -> None:
        self.session = session
        self.user_id = user_id

    def _owned(self, statement: Stmt) -> Stmt:
        """The single place that scopes a statement to the caller's tasks."""
        return statement.where(col(Task.user_id) == self.user_id)

    def list(
        self,
        *,
        status: TaskStatus = TaskStatus.all,
        sort: TaskSort = TaskSort.created,
        order: SortOrder | None = None,
        limit: int = 100,
    ) -> tuple[Sequence[Task], bool]:
        """Up to `limit` tasks and whether more matched."""
        statement = self._owned(select(Task))
        if status is not TaskStatus.all:
            statement = statement.where(col(Task.completed).is_(status is TaskStatus.completed))
        key = col(Task.created_at) if sort is TaskSort.created else func.lower(Task.title)
        direction = order or DEFAULT_ORDER[sort]
        columns = (key, col(Task.id))
        statement = statement.order_by(
            *(c.desc() if direction is SortOrder.desc else c.asc() for c in columns)
        ).limit(limit + 1)
        rows = self.session.scalars(statement).all()
        return rows[:limit], len(rows) > limit

    def get(self, task_id: int) -> Task:
        statement = self._owned(select(Task).where(col(Task.id) == task_id))
        task: Task | None = self.session.scalars(statement).first()
        if task is None:
            raise NotFound("Task not found")
        return task

    def create(self, data: TaskCreate) -> Task:
        values: dict[str, Any] = {
            "user_id": self.user_id,
            "title": data.title,
            "description": data.description,
            "completed": data.completed,
            "completed_at": func.now() if data.completed else None,
        }
        return self.session.scalars(insert(Task).values(**values).returning(Task)).one()

    def replace(self, task_id: int, data: TaskReplace) -> Task:
        return self._update(
            task_id,
            {"title": data.title, "description": data.description, **_completion(data.completed)},
        )

    def update(self, task_id: int, data: TaskUpdate) -> Task:
        changes = data.model_dump(exclude_unset=True)
        values: dict[str, Any] = {k: v for k, v in changes.items() if k != "completed"}
        if "completed" in changes:
            values.update(_completion(changes["completed"]))
        return self._update(task_id, values)

    def set_completed(self, task_id: int, completed: bool | None) -> Task:
        """Set the completion state, or toggle it when `completed` is None.

        One UPDATE computes the new state from the stored one, so concurrent toggles
        never lose an update.
        """
        target: ColumnElement[bool] | bool = (
            ~col(Task.completed) if completed is None else completed
        )
        return self._update(task_id, _completion(target))

    def delete(self, task_id: int) -> None:
        deleted = self.session.execute(
            self._owned(delete(Task).where(col(Task.id) == task_id)).returning(col(Task.id))
        ).first()
        if deleted is None:
            raise NotFound("Task not found")

    def _update(self, task_id: int, values: dict[str, Any]) -> Task:
        statement = (
            self._owned(update(Task).where(col(Task.id) == task_id))
            .values(**values, updated_at=func.now())
            .returning(Task)
            # Refresh a Task already in this session from the returned row, not the stale copy.
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        task = self.session.scalars(statement).one_or_none()
        if task is None:
            raise NotFound("Task not found")
        return task
