"""Tasks, always scoped to one user.

Every statement is built with `_owned`, which adds `tasks.user_id = :owner`, and run with
`Scoped._run`, which binds `owner` to the service's caller (backend/services/scope.py). A
task that belongs to someone else is therefore indistinguishable from one that does not
exist. The connection is private: nothing outside this class runs a statement on `tasks`.
The statements of the hot routes (get, create, toggle, delete) are built once, at import:
only their values change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from sqlalchemy import (
    BindParameter,
    Boolean,
    Integer,
    Select,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from backend.errors import InvalidRequest, NotFound, PreconditionFailed, ServiceUnavailable
from backend.models import Priority, Task, TaskCreate, TaskReplace, TaskRow, TaskUpdate
from backend.models.task import TAGS_MAX_COUNT
from backend.models.task_ops import (
    AddTagOp,
    BulkOperation,
    CompleteOp,
    DeleteOp,
    RemoveTagOp,
    ReopenOp,
    SetPriorityOp,
)
from backend.services.changes import latest_position
from backend.services.scope import OWNER, Scoped, Stmt, owned
from backend.services.task_listing import (
    Keyset,
    TaskListQuery,
    after_keyset,
    filter_conditions,
    order_by,
    sort_key,
)

# The versions an If-Match accepts; None: no condition. Checked in the write's own WHERE.
Expected = frozenset[int] | None


# Every column of `tasks`: statements return plain rows (`TaskRow`), never ORM entities.
TASK_COLUMNS = tuple(Task.__table__.columns)  # type: ignore[attr-defined]
_T = Task.__table__.c  # type: ignore[attr-defined]


def _owned(statement: Stmt) -> Stmt:
    """A statement on `tasks`, scoped to the caller's rows."""
    return owned(statement, _T.user_id)


@dataclass(frozen=True)
class TaskPage:
    items: Sequence[TaskRow]
    next: Keyset | None
    total: int | None
    # The caller's latest change id in the same snapshot as `items` (when asked for).
    feed_position: int | None = None


@dataclass(frozen=True)
class TaskStats:
    total: int
    pending: int
    completed: int
    overdue: int
    by_priority: dict[str, int]


def _version_in(expected: Expected) -> tuple[ColumnElement[bool], ...]:
    return () if expected is None else (_T.version.in_(sorted(expected)),)


def _completion(completed: ColumnElement[bool] | bool) -> dict[str, Any]:
    """Values that set `completed` and keep `completed_at` consistent with it.

    `completed` is a value, or an expression over the stored row (a toggle). An
    already-completed task keeps its original completion time.
    """
    stamp = func.coalesce(_T.completed_at, func.now())
    if isinstance(completed, bool):
        completed_at: Any = stamp if completed else None
    else:
        completed_at = case((completed, stamp), else_=None)
    return {"completed": completed, "completed_at": completed_at}


def _changing(statement: Any, values: dict[str, Any]) -> Any:
    """An UPDATE of one task: every change bumps `version` in the same statement, so the
    ETag changes with it and concurrent writers each see (and bump) the other's version."""
    return statement.values(**values, updated_at=func.now(), version=_T.version + 1).returning(
        *TASK_COLUMNS
    )


_TASK_ID: BindParameter[int] = bindparam("task_id", type_=Integer)
_GET = _owned(select(*TASK_COLUMNS).where(_T.id == _TASK_ID))
_TOGGLE = _changing(_owned(update(Task).where(_T.id == _TASK_ID)), _completion(~_T.completed))
_DELETE = _owned(delete(Task).where(_T.id == _TASK_ID)).returning(_T.id)
_COMPLETED = bindparam("completed", type_=Boolean)
_CREATE = (
    insert(Task)
    .values(
        user_id=bindparam(OWNER),
        title=bindparam("title", type_=_T.title.type),
        description=bindparam("description", type_=_T.description.type),
        completed=_COMPLETED,
        completed_at=case((_COMPLETED, func.now()), else_=None),
        priority=bindparam("priority", type_=_T.priority.type),
        due_date=bindparam("due_date", type_=_T.due_date.type),
        tags=bindparam("tags", type_=_T.tags.type),
    )
    .returning(*TASK_COLUMNS)
)


# Re-reads of an empty page that filled up meanwhile, before giving up (503).
_EMPTY_PAGE_ATTEMPTS = 5


class TaskService(Scoped):
    def list_statement(self, query: TaskListQuery, *extra: Any) -> Select[Any]:
        """The page query: the task's columns, its sort key (read back to build the next
        cursor), then any `extra` columns."""
        columns = (*TASK_COLUMNS, sort_key(query.sort).label("sort_key"), *extra)
        statement = _owned(select(*columns)).where(*filter_conditions(query.filters))
        if query.after is not None:
            statement = statement.where(after_keyset(query.sort, query.direction, query.after))
        return statement.order_by(*order_by(query.sort, query.direction)).limit(query.limit + 1)

    def list_page(self, query: TaskListQuery, *, feed_position: bool = False) -> TaskPage:
        """One page; with `feed_position`, also the caller's change-feed position as of the
        very snapshot the page was read in."""
        extra = (latest_position().label("feed_position"),) if feed_position else ()
        rows = cast(Sequence[TaskRow], self._run(self.list_statement(query, *extra)).all())
        position = None
        if feed_position:
            rows, position = self._with_position(query, rows)
        page = rows[: query.limit]
        next_keyset = None
        if len(rows) > query.limit:
            last = page[-1]
            next_keyset = Keyset(key=last.sort_key, id=int(last.id))  # type: ignore[attr-defined]
        total = None
        if query.include_total:
            count = _owned(select(func.count()).select_from(Task))
            total = self._run(count.where(*filter_conditions(query.filters))).scalar()
        return TaskPage(items=page, next=next_keyset, total=total, feed_position=position)

    def _with_position(
        self, query: TaskListQuery, rows: Sequence[TaskRow]
    ) -> tuple[Sequence[TaskRow], int]:
        """The feed position read with `rows`. An empty page carries none, so the position
        is read with the proof that the page is still empty (one snapshot); a task that
        appeared in between means reading the page again."""
        for _ in range(_EMPTY_PAGE_ATTEMPTS):
            if rows:
                return rows, int(rows[0].feed_position)  # type: ignore[attr-defined]
            check = select(latest_position(), exists(self.list_statement(query)))
            position, appeared = cast(tuple[int, bool], self._run(check).one())
            if not appeared:
                return rows, int(position)
            extra = latest_position().label("feed_position")
            rows = cast(Sequence[TaskRow], self._run(self.list_statement(query, extra)).all())
        raise ServiceUnavailable("The task list kept changing while it was read; retry")

    def stats(self) -> TaskStats:
        completed, due, priority = _T.completed, _T.due_date, _T.priority
        counts = [
            func.count(),
            func.count().filter(completed == true()),
            func.count().filter(completed == false(), due < func.now()),
            *(func.count().filter(priority == p) for p in Priority),
        ]
        row: Sequence[int] = self._run(_owned(select(*counts).select_from(Task))).one()
        total, done, overdue, *by_priority = row
        return TaskStats(
            total=total,
            pending=total - done,
            completed=done,
            overdue=overdue,
            by_priority=dict(zip((p.value for p in Priority), by_priority, strict=True)),
        )

    def get(self, task_id: int) -> TaskRow:
        task = self._run(_GET, task_id=task_id).first()
        if task is None:
            raise NotFound("Task not found")
        return cast(TaskRow, task)

    def titles(self) -> set[str]:
        """The titles of the caller's tasks (the seed command skips demo tasks it has)."""
        return set(self._run(_owned(select(_T.title))).scalars())

    def create(self, data: TaskCreate) -> TaskRow:
        row = self._run(
            _CREATE,
            title=data.title,
            description=data.description,
            completed=data.completed,
            priority=data.priority,
            due_date=data.due_date,
            tags=data.tags,
        ).one()
        return cast(TaskRow, row)

    def replace(self, task_id: int, data: TaskReplace, expected: Expected = None) -> TaskRow:
        return self._update(
            task_id,
            {
                **data.model_dump(include={"title", "description", "priority", "due_date", "tags"}),
                **_completion(data.completed),
            },
            expected,
        )

    def update(self, task_id: int, data: TaskUpdate, expected: Expected = None) -> TaskRow:
        changes = data.model_dump(exclude_unset=True)
        values: dict[str, Any] = {k: v for k, v in changes.items() if k != "completed"}
        if "completed" in changes:
            values.update(_completion(changes["completed"]))
        return self._update(task_id, values, expected)

    def set_completed(
        self, task_id: int, completed: bool | None, expected: Expected = None
    ) -> TaskRow:
        """Set the completion state, or toggle it when `completed` is None.

        One UPDATE computes the new state from the stored one, so concurrent toggles
        never lose an update.
        """
        if completed is None and expected is None:
            task = self._run(_TOGGLE, task_id=task_id).one_or_none()
            if task is None:
                raise NotFound("Task not found")
            return cast(TaskRow, task)
        target: ColumnElement[bool] | bool = ~_T.completed if completed is None else completed
        return self._update(task_id, _completion(target), expected)

    def delete(self, task_id: int, expected: Expected = None) -> None:
        statement = _DELETE if expected is None else _DELETE.where(*_version_in(expected))
        deleted = self._run(statement, task_id=task_id).first()
        if deleted is None:
            self._missing_or_stale(task_id, expected)

    def set_priority(self, task_id: int, priority: Priority) -> TaskRow:
        return self._update(task_id, {"priority": priority})

    def add_tag(self, task_id: int, tag: str) -> TaskRow:
        """Add one (normalized) tag; adding a tag the task has changes nothing but updated_at."""
        tags = _T.tags
        has_tag = literal(tag).op("=")(func.any(tags))
        task = self._update_where(
            task_id,
            {"tags": case((has_tag, tags), else_=func.array_append(tags, tag))},
            # The count bound is part of the statement, so a concurrent add cannot exceed it.
            or_(has_tag, func.cardinality(tags) < TAGS_MAX_COUNT),
        )
        if task is None:
            self.get(task_id)  # 404 if it is not the caller's task
            raise InvalidRequest(f"A task has at most {TAGS_MAX_COUNT} tags")
        return task

    def remove_tag(self, task_id: int, tag: str) -> TaskRow:
        return self._update(task_id, {"tags": func.array_remove(_T.tags, tag)})

    def apply(self, operations: Sequence[BulkOperation]) -> list[TaskRow | None]:
        """Apply operations in order; the first failure aborts the batch (the request's
        transaction rolls back, so nothing is changed) and names the failing operation."""
        results: list[TaskRow | None] = []
        for index, operation in enumerate(operations):
            try:
                results.append(self._apply_one(operation))
            except (NotFound, InvalidRequest) as exc:
                detail = {
                    "field": f"body.operations.{index}",
                    "message": exc.message,
                    "type": exc.code.lower(),
                }
                raise type(exc)(exc.message, details=[detail]) from None
        return results

    def _apply_one(self, operation: BulkOperation) -> TaskRow | None:
        match operation:
            case CompleteOp(id=task_id):
                return self.set_completed(task_id, True)
            case ReopenOp(id=task_id):
                return self.set_completed(task_id, False)
            case DeleteOp(id=task_id):
                self.delete(task_id)
                return None
            case SetPriorityOp(id=task_id, priority=priority):
                return self.set_priority(task_id, priority)
            case AddTagOp(id=task_id, tag=tag):
                return self.add_tag(task_id, tag)
            case RemoveTagOp(id=task_id, tag=tag):
                return self.remove_tag(task_id, tag)
        raise AssertionError(f"unhandled operation {operation!r}")  # pragma: no cover

    def delete_completed(self) -> int:
        """Delete the caller's completed tasks; return how many."""
        result = self._run(_owned(delete(Task).where(_T.completed == true())).returning(_T.id))
        return len(result.all())

    def _update(self, task_id: int, values: dict[str, Any], expected: Expected = None) -> TaskRow:
        task = self._update_where(task_id, values, *_version_in(expected))
        if task is None:
            self._missing_or_stale(task_id, expected)
        return task

    def _missing_or_stale(self, task_id: int, expected: Expected) -> NoReturn:
        """A write matched no row: 404, or 412 if the task exists but If-Match named none of
        its versions. Only this failure path reads again; without If-Match it never does."""
        if expected is not None:
            self.get(task_id)  # NotFound for a missing task or another user's
            raise PreconditionFailed()
        raise NotFound("Task not found")

    def _update_where(
        self, task_id: int, values: dict[str, Any], *conditions: ColumnElement[bool]
    ) -> TaskRow | None:
        """One UPDATE ... RETURNING of the caller's task; None when no row matched."""
        statement = _changing(_owned(update(Task).where(_T.id == _TASK_ID, *conditions)), values)
        return cast(TaskRow | None, self._run(statement, task_id=task_id).one_or_none())
