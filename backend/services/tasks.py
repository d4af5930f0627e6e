"""Tasks, always scoped to one user.

Every statement is built with `_owned`, which adds `tasks.user_id = :owner`, and run with
`Scoped._run`, which binds `owner` to the service's caller (backend/services/scope.py). A
task that belongs to someone else is therefore indistinguishable from one that does not
exist. The connection is private: nothing outside this class runs a statement on `tasks`.
The statements of the hot routes (get, create, toggle, delete) are built once, at import:
only their values change.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    Integer,
    Select,
    any_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.dialects.postgresql import array as postgresql_array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.elements import ColumnElement

from backend.errors import (
    AppError,
    Conflict,
    InvalidRequest,
    LimitReached,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
)
from backend.models import Priority, Task, TaskCreate, TaskReplace, TaskRow, TaskUpdate
from backend.models.task import TAGS_MAX_COUNT, reminders_json
from backend.models.task_fields import COPIED_TO_SUCCESSOR, WRITABLE
from backend.models.task_list import (
    MAX_DEPTH,
    SUBTASKS_PER_TASK,
    TASKS_PER_LIST,
    TaskList,
    name_key,
)
from backend.models.task_ops import (
    AddTagOp,
    BulkOperation,
    CompleteOp,
    DeleteOp,
    MoveOp,
    RemoveTagOp,
    ReopenOp,
    SetPriorityOp,
)
from backend.recurrence import HORIZON_YEARS, Schedule, shift_reminder
from backend.services.changes import latest_position
from backend.services.lists import LIST_NAMES, unknown_list
from backend.services.scope import (
    OWNER,
    Scoped,
    Step,
    StepRefused,
    Stmt,
    decoded,
    owned,
)
from backend.services.task_listing import (
    Keyset,
    TaskListQuery,
    after_keyset,
    filter_conditions,
    order_by,
    sort_key,
)
from backend.services.task_tree import (
    Anchor,
    Placement,
    Refusal,
    Sent,
    create_statement,
    move_statement,
)

# The versions an If-Match accepts; None: no condition. Checked in the write's own WHERE.
Expected = frozenset[int] | None


# Every column of `tasks`: statements return plain rows (`TaskRow`), never ORM entities.
TASK_COLUMNS = tuple(Task.__table__.columns)  # type: ignore[attr-defined]
_T = Task.__table__.c  # type: ignore[attr-defined]
_L = TaskList.__table__.c  # type: ignore[attr-defined]
_CHILD = Task.__table__.alias("child")  # type: ignore[attr-defined]


def _subtask_counts() -> tuple[Any, Any]:
    """A task's subtask counts, computed with the row wherever one is read or written (the
    parent-key index). A completed task has no open subtask (completing one completes its
    subtasks, migration 0018), which also holds in the RETURNING of the statement that
    completes it, whose subqueries still see the subtasks as they were."""
    children = owned(select(func.count()), _CHILD.c.user_id).where(_CHILD.c.parent_id == _T.id)
    total = children.correlate(Task.__table__).scalar_subquery()  # type: ignore[attr-defined]
    pending = children.where(_CHILD.c.completed == false())
    open_ = pending.correlate(Task.__table__).scalar_subquery()  # type: ignore[attr-defined]
    return (
        total.label("subtask_count"),
        case((_T.completed == true(), 0), else_=open_).label("open_subtask_count"),
    )


# What every statement that hands a task to the API returns: its columns and its counts.
TASK_VIEW = (*TASK_COLUMNS, *_subtask_counts())
# A task just created has no subtasks.
_CREATED_VIEW = (
    *TASK_COLUMNS,
    literal(0).label("subtask_count"),
    literal(0).label("open_subtask_count"),
)


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
class ListCounts:
    """One list's share of the caller's tasks (`list_id` None: the tasks in no list)."""

    list_id: int | None
    name: str | None
    total: int
    pending: int
    completed: int


@dataclass(frozen=True)
class TaskStats:
    total: int
    pending: int
    completed: int
    overdue: int
    by_priority: dict[str, int]
    by_list: list[ListCounts]


def _version_in(expected: Expected) -> tuple[ColumnElement[bool], ...]:
    # `= ANY(array)`, not IN: one parameter whatever the count (statements are rendered).
    versions = literal(sorted(expected), ARRAY(BigInteger)) if expected is not None else None
    return () if versions is None else (_T.version == any_(versions),)


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
        *TASK_VIEW
    )


_TASK_ID: BindParameter[int] = bindparam("task_id", type_=Integer)
_GET = _owned(select(*TASK_VIEW).where(_T.id == _TASK_ID))
_TOGGLE = _changing(_owned(update(Task).where(_T.id == _TASK_ID)), _completion(~_T.completed))
_DELETE = _owned(delete(Task).where(_T.id == _TASK_ID)).returning(_T.id, _T.title)
_COMPLETED = bindparam("completed", type_=Boolean)
# The columns `_plan` writes: the schedule fields and what the server derives from them.
_PLANNED = ("recurrence", "time_zone", "reminders", "series_id", "series_start", "next_due_date")
# Where the task is: written by the placement statements (backend/services/task_tree.py).
_PLACED = ("list_id", "parent_id")
# The writable fields written as sent (`completed` also sets `completed_at`; the schedule
# fields go through `_plan`, the placement through `_placed`).
_AS_SENT = set(WRITABLE) - {"completed", *_PLANNED, *_PLACED}
# What a create writes (but `user_id` and the placement): one bound value per column.
_CREATE_VALUES: dict[str, Any] = {
    "completed": _COMPLETED,
    "completed_at": case((_COMPLETED, func.now()), else_=None),
    **{
        name: bindparam(name, type_=_T[name].type)
        for name in (*(f for f in WRITABLE if f in _AS_SENT), *_PLANNED)
    },
}
_CREATE = insert(Task).values(user_id=bindparam(OWNER), **_CREATE_VALUES).returning(*_CREATED_VIEW)
# The next occurrence of a recurring task completed in this transaction: a copy of it, due at
# its `next_due_date`, pending. `completed_at = now()` holds only when this transaction
# completed it (an already-completed task keeps its completion time, `_completion`), and
# `previous_task_id` is unique: a second completion (a replay, a race, reopen and complete
# again) inserts nothing. Built once; the copied columns are read from the stored row.
_SUCCESSOR_OF = bindparam("previous_id", type_=Integer)
# Moved by the schedule rather than copied: the due date becomes the stored next one.
_MOVED = ("due_date", "next_due_date", "reminders", "previous_task_id")
_SUCCESSOR = (
    pg_insert(Task)
    .from_select(
        ["user_id", *COPIED_TO_SUCCESSOR, *_MOVED],
        _owned(
            select(
                bindparam(OWNER),
                *(_T[name] for name in COPIED_TO_SUCCESSOR),
                _T.next_due_date,
                sql_cast(
                    bindparam("following_due_date", type_=_T.next_due_date.type),
                    _T.next_due_date.type,
                ),
                bindparam("reminders", type_=JSONB),  # sent as `%(reminders)s::JSONB`
                _T.id,
            ).where(
                _T.id == _SUCCESSOR_OF,
                _T.completed == true(),
                _T.completed_at == func.now(),
                _T.recurrence.is_not(None),
                _T.next_due_date.is_not(None),
            )
        ),
    )
    .on_conflict_do_nothing(index_elements=["previous_task_id"])
)
# The fields that make up a task's schedule: writing any of them re-plans it.
_SCHEDULE_FIELDS = {"recurrence", "time_zone", "due_date", "reminders"}


@dataclass(frozen=True)
class _Planned:
    """What a write of `values` (with `_plan`'s schedule columns) will leave of the stored
    task `id` due at `due_date`: what its next occurrence is computed from (`_succeed`)."""

    id: int
    due_date: datetime | None
    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        return self.values[name]


# Statistics in one statement: the counts, the tasks in no list, and every list's counts (in
# the order of the lists) as JSON.
_PER_LIST = (
    _owned(
        select(
            _T.list_id,
            func.count().label("total"),
            func.count().filter(_T.completed == true()).label("completed"),
        )
    )
    .where(_T.list_id.is_not(None))
    .group_by(_T.list_id)
    .subquery("per_list")
)
_LISTS_COUNTED = (
    owned(
        select(
            func.coalesce(
                func.json_agg(
                    aggregate_order_by(
                        func.json_build_object(
                            literal_column("'id'"),
                            _L.id,
                            literal_column("'name'"),
                            _L.name,
                            literal_column("'total'"),
                            func.coalesce(_PER_LIST.c.total, 0),
                            literal_column("'completed'"),
                            func.coalesce(_PER_LIST.c.completed, 0),
                        ),
                        _L.position,
                    )
                ),
                literal_column("'[]'::json"),
            )
        ).select_from(
            TaskList.__table__.outerjoin(_PER_LIST, _PER_LIST.c.list_id == _L.id)  # type: ignore[attr-defined]
        ),
        _L.user_id,
    )
    .correlate(None)
    .scalar_subquery()
)
_STATS = _owned(
    select(
        func.count(),
        func.count().filter(_T.completed == true()),
        func.count().filter(_T.completed == false(), _T.due_date < func.now()),
        *(func.count().filter(_T.priority == p) for p in Priority),
        func.count().filter(_T.list_id.is_(None)),
        func.count().filter(_T.list_id.is_(None), _T.completed == true()),
        _LISTS_COUNTED,
    ).select_from(Task)
)

# A task's subtree, depth-first in position order: the task, then each subtask followed by
# its own (ordered by the path of positions from the task). Bounded by MAX_DEPTH and
# SUBTASKS_PER_TASK: one statement, one page.
_SUBTREE_WALK: Any = _owned(
    select(_T.id, sql_cast(postgresql_array([], type_=BigInteger), ARRAY(BigInteger)).label("path"))
).where(_T.id == _TASK_ID)
_SUBTREE_WALK = _SUBTREE_WALK.cte("subtree", recursive=True)
_SUBTREE_WALK = _SUBTREE_WALK.union_all(
    _owned(select(_T.id, func.array_append(_SUBTREE_WALK.c.path, _T.position))).where(
        _T.parent_id == _SUBTREE_WALK.c.id,
        func.cardinality(_SUBTREE_WALK.c.path) < MAX_DEPTH,
    )
)
_SUBTREE = (
    _owned(select(*TASK_VIEW)).where(_T.id == _SUBTREE_WALK.c.id).order_by(_SUBTREE_WALK.c.path)
)

# Re-reads of an empty page that filled up meanwhile, before giving up (503).
_EMPTY_PAGE_ATTEMPTS = 5


class TaskService(Scoped):
    def list_statement(self, query: TaskListQuery, *extra: Any) -> Select[Any]:
        """The page query: the task's columns and counts, its sort key (read back to build the
        next cursor), then any `extra` columns."""
        columns = (*TASK_VIEW, sort_key(query.sort).label("sort_key"), *extra)
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
        row: Sequence[Any] = self._run(_STATS).one()
        total, done, overdue, *by_priority, without_list, without_list_done, lists = row
        by_list = [
            ListCounts(
                list_id=entry["id"],
                name=entry["name"],
                total=entry["total"],
                pending=entry["total"] - entry["completed"],
                completed=entry["completed"],
            )
            for entry in lists
        ]
        by_list.append(
            ListCounts(
                list_id=None,
                name=None,
                total=without_list,
                pending=without_list - without_list_done,
                completed=without_list_done,
            )
        )
        return TaskStats(
            total=total,
            pending=total - done,
            completed=done,
            overdue=overdue,
            by_priority=dict(zip((p.value for p in Priority), by_priority, strict=True)),
            by_list=by_list,
        )

    def get(self, task_id: int) -> TaskRow:
        task = self._run(_GET, task_id=task_id).first()
        if task is None:
            raise NotFound("Task not found")
        return cast(TaskRow, task)

    def titles(self) -> set[str]:
        """The titles of the caller's tasks (the seed command skips demo tasks it has)."""
        return set(self._run(_owned(select(_T.title))).scalars())

    def create(self, data: TaskCreate, *, list_name: str | None = None) -> TaskRow:
        """A new task; a recurring one starts its series at its due date. Created completed,
        it is not a completion: no next occurrence is created. In a list or under a parent
        (`list_name`: a list named as an agent would), checked and written in one statement;
        the database gives it its place (first at the top level, last under a parent)."""
        schedule = _plan(
            data.recurrence, str(data.time_zone), data.due_date, reminders_json(data.reminders)
        )
        values = {**data.model_dump(include=_AS_SENT), "completed": data.completed, **schedule}
        placement = _placement(data, list_name)
        # Nothing follows an insert (created completed is no completion): it commits the
        # request itself, one round trip; a placement refused reads why afterwards.
        if placement is None:
            [row] = self._run_last(_CREATE, **values)
            return cast(TaskRow, row)
        if data.recurrence is not None and placement.parent is Sent.id:
            raise _not_recurring()
        statement, refusal = _create_statements(placement.shape)
        rows = self._run_last(statement, **values, **placement.values())
        if not rows:
            self._refuse(refusal, placement, placement.values())
        return cast(TaskRow, rows[0])

    def replace(
        self,
        task_id: int,
        data: TaskReplace,
        expected: Expected = None,
        *,
        list_name: str | None = None,
    ) -> TaskRow:
        values = {
            **data.model_dump(include=_AS_SENT),
            **_completion(data.completed),
        }
        plan = (data.recurrence, str(data.time_zone), data.due_date, reminders_json(data.reminders))
        placement = _placement(data, list_name, stay=True)
        if data.recurrence is None:
            # Not recurring (any more): nothing to read first and no next occurrence to add,
            # so the write commits the request itself.
            values = {**values, **_plan(*plan)}
            if placement is not None:
                return self._move(task_id, placement, expected, values, last=True)
            return self._update(task_id, values, expected, last=True)
        if placement is not None and placement.parent is Sent.id:
            raise _not_recurring()
        # A rule kept as it was keeps its series: read the stored one first.
        return self._replan(task_id, values, plan, expected, placement=placement)

    def update(
        self,
        task_id: int,
        data: TaskUpdate,
        expected: Expected = None,
        *,
        list_name: str | None = None,
    ) -> TaskRow:
        changes = data.model_dump(exclude_unset=True, exclude={*_SCHEDULE_FIELDS, *_PLACED})
        values: dict[str, Any] = {k: v for k, v in changes.items() if k != "completed"}
        if "completed" in changes:
            values.update(_completion(changes["completed"]))
        sent = data.model_fields_set & _SCHEDULE_FIELDS
        placement = _placement(data, list_name, stay=True)
        if (
            placement is not None
            and "recurrence" in sent
            and data.recurrence is not None
            and placement.parent is Sent.id
        ):
            raise _not_recurring()
        if not sent:
            # Only a completion can add a statement (a recurring task's next occurrence).
            last = changes.get("completed") is not True
            if placement is not None:
                moved = self._move(task_id, placement, expected, values, last=last)
                return self._completing(moved)
            return self._completing(self._update(task_id, values, expected, last=last))
        # The schedule is the stored one with the sent fields over it: read it first (with
        # the caller's entry, in the first message), then write it last (with the COMMIT).
        current = self._current(task_id, expected)
        plan = (
            data.recurrence if "recurrence" in sent else current.recurrence,
            str(data.time_zone) if "time_zone" in sent else current.time_zone,
            data.due_date if "due_date" in sent else current.due_date,
            reminders_json(data.reminders or []) if "reminders" in sent else current.reminders,
        )
        if "due_date" in sent:
            values["due_date"] = data.due_date
        return self._replan(task_id, values, plan, current=current, placement=placement)

    def move(self, task_id: int, placement: Placement, expected: Expected = None) -> TaskRow:
        """Move a task, with its subtree, to the place `placement` names (one statement)."""
        if task_id == placement.anchor_id:
            raise _invalid(_anchor_field(placement), "A task cannot be placed next to itself")
        return self._move(task_id, placement, expected, {}, last=True)

    def _move(
        self,
        task_id: int,
        placement: Placement,
        expected: Expected,
        values: dict[str, Any],
        *,
        last: bool = False,
    ) -> TaskRow:
        """The placement statement: the task (with `values` written on it too), its subtree
        and any respaced siblings; the moved task's row. `last`: nothing follows it, so it
        may commit the request itself (`_run_last`)."""
        if task_id == placement.parent_id:
            raise _invalid("body.parent_id", "A task cannot be its own subtask")
        checked = expected is not None
        if values:
            statement, refusal = move_statement(
                placement.shape, checked=checked, values=values, returning=TASK_VIEW
            )
        else:
            statement, refusal = _move_statements(placement.shape, checked)
        binds = {"task_id": task_id, **placement.values()}
        if expected is not None:
            binds["versions"] = sorted(expected)
        rows = self._run_last(statement, **binds) if last else self._run(statement, **binds).all()
        moved = next((row for row in rows if row.id == task_id), None)
        if moved is None:
            self._refuse(refusal, placement, binds)
        return cast(TaskRow, moved)

    def subtree(self, task_id: int) -> list[TaskRow]:
        """The task and every task under it, depth-first in position order (one statement:
        at most 1 + SUBTASKS_PER_TASK rows)."""
        rows = cast(list[TaskRow], self._run(_SUBTREE, task_id=task_id).all())
        if not rows:
            raise NotFound("Task not found")
        return rows

    def _refuse(self, refusal: Any, placement: Placement, binds: dict[str, Any]) -> NoReturn:
        """A placement wrote nothing: read why (the failure path's own round trip) and say it."""
        reason = self._run(refusal, **binds).scalar()
        if reason is None:  # pragma: no cover - the write and the read share the lock
            raise Conflict("The task changed while it was being written; retry")
        raise self._refusal(Refusal(reason), placement)

    def _refusal(self, reason: Refusal, placement: Placement) -> AppError:
        list_field = "body.list" if placement.list is Sent.name else "body.list_id"
        match reason:
            case Refusal.task:
                return NotFound("Task not found")
            case Refusal.stale:
                return PreconditionFailed()
            case Refusal.list:
                if placement.list is Sent.name:
                    return self.unknown_list(placement.list_name or "", field=list_field)
                return _not_found(list_field, "List not found")
            case Refusal.parent:
                return _not_found("body.parent_id", "Task not found")
            case Refusal.anchor:
                return _not_found(_anchor_field(placement), "Task not found")
            case Refusal.list_mismatch:
                return _invalid(
                    list_field,
                    "A subtask is in its parent's list: omit the list (or send the parent's)",
                )
            case Refusal.anchor_group:
                return _invalid(
                    _anchor_field(placement),
                    "That task is not in the list, or not under the parent, that was sent",
                )
            case Refusal.cycle:
                return _invalid(
                    "body.parent_id", "A task cannot be moved under itself or one of its subtasks"
                )
            case Refusal.recurring:
                return _not_recurring()
            case Refusal.depth:
                return _invalid(
                    "body.parent_id",
                    f"Subtasks nest at most {MAX_DEPTH} levels deep (a task and its subtasks "
                    "would be deeper there)",
                )
            case Refusal.tree_full:
                return _limit(
                    "body.parent_id",
                    f"A top-level task has at most {SUBTASKS_PER_TASK} subtasks, at every depth",
                )
            case Refusal.list_full:
                return _limit(list_field, f"A list holds at most {TASKS_PER_LIST} tasks")
        raise AssertionError(reason)  # pragma: no cover

    def unknown_list(self, name: str, *, field: str = "body.list") -> NotFound:
        """The error for a list named by a name the caller has no list by (it names theirs)."""
        return unknown_list(name, list(self._run(LIST_NAMES).scalars()), field=field)

    def occurrences(self, task_id: int, count: int) -> tuple[TaskRow, list[datetime]]:
        """The task and the next `count` due dates of its series after its own (fewer when
        the series ends; none when it does not recur)."""
        task = self.get(task_id)
        if task.recurrence is None or task.due_date is None or task.series_start is None:
            return task, []
        schedule = Schedule.of(task.recurrence, task.time_zone, task.series_start)
        return task, schedule.after(task.due_date, count)

    def _replan(
        self,
        task_id: int,
        values: dict[str, Any],
        plan: tuple[str | None, str, datetime | None, list[dict[str, Any]]],
        expected: Expected = None,
        *,
        current: TaskRow | None = None,
        placement: Placement | None = None,
    ) -> TaskRow:
        """Write `values` and the schedule `plan` over the stored task, read first (in a write
        the caller's change lock is held, so nothing else changes it in between; the write
        names the version read all the same), and move it to `placement` in the same
        statement. Nothing follows the write: it commits the request itself."""
        if current is None:
            current = self._current(task_id, expected)
        parent = current.parent_id is not None
        if placement is not None and placement.parent is not Sent.nothing:
            parent = placement.parent is Sent.id
        if plan[0] is not None and parent:
            raise _not_recurring()
        values = {**values, **_plan(*plan, current=current)}
        if values.get("completed") is True:
            # The write may complete the task: its next occurrence, computed from the row the
            # write will leave (known here), rides with the COMMIT, so the write can be last.
            self._succeed(_Planned(task_id, plan[2], values))
        if placement is not None:
            return self._move(task_id, placement, frozenset({current.version}), values, last=True)
        task = self._update_where(task_id, values, _T.version == current.version, last=True)
        if task is None:
            raise Conflict("The task changed while it was being written; retry")
        return task

    def _current(self, task_id: int, expected: Expected) -> TaskRow:
        """The stored task, read to be changed: 404 for none, 412 if If-Match names none of
        its versions."""
        task = self.get(task_id)
        if expected is not None and task.version not in expected:
            raise PreconditionFailed()
        return task

    def _completing(self, task: TaskRow) -> TaskRow:
        """After any write that may complete `task`: when this transaction completed a
        recurring task whose series goes on, insert its next occurrence. Decided from the
        returned row alone (`completed_at` equals `updated_at`, both this transaction's
        `now()`, only when it completed it here), so other writes cost nothing more."""
        if task.completed and task.completed_at == task.updated_at:
            self._succeed(task)
        return task

    def _succeed(self, task: TaskRow | _Planned) -> None:
        """Insert the next occurrence of `task` (its stored row, or the one a write will
        leave) if it is recurring, its series goes on, and this transaction completed it
        (checked by the statement itself). Nobody reads its result: it rides with the
        COMMIT (specs/statements.md). Its subtasks come with it (migration 0018)."""
        if (
            task.recurrence is not None
            and task.next_due_date is not None
            and task.series_start is not None
            and task.due_date is not None
        ):
            schedule = Schedule.of(task.recurrence, task.time_zone, task.series_start)
            reminders = _moved_reminders(task.reminders, task.due_date, task.next_due_date)
            self._run_at_commit(
                _SUCCESSOR,
                previous_id=task.id,
                following_due_date=schedule.next_after(task.next_due_date),
                reminders=reminders,
            )

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
            return self._completing(cast(TaskRow, task))
        target: ColumnElement[bool] | bool = ~_T.completed if completed is None else completed
        # Reopening adds nothing after the write; completing may (a next occurrence).
        last = completed is False
        return self._completing(self._update(task_id, _completion(target), expected, last=last))

    def delete(self, task_id: int, expected: Expected = None) -> str:
        """Delete the task (its subtree with it); return the title it had."""
        statement = _DELETE if expected is None else _DELETE.where(*_version_in(expected))
        deleted = self._run_last(statement, task_id=task_id)
        if not deleted:
            self._missing_or_stale(task_id, expected)
        return cast(str, deleted[0].title)

    def apply(self, operations: Sequence[BulkOperation]) -> list[TaskRow | None]:
        """Apply operations in order, all in one message (`Scoped._run_steps`); the first
        failure aborts the batch (the request's transaction rolls back, so nothing is
        changed) and names the failing operation. A recurring task a step completed gets
        its next occurrence, as from any completing write."""
        try:
            # Only a completion can add a statement (a recurring task's next occurrence).
            last = not any(isinstance(operation, CompleteOp) for operation in operations)
            rows = self._run_steps([_step(operation) for operation in operations], last=last)
        except StepRefused as refused:
            error = self._step_error(operations[refused.index], refused.reason)
            detail = {
                "field": f"body.operations.{refused.index}",
                "message": error.message,
                "type": error.code.lower(),
            }
            raise type(error)(error.message, details=[detail]) from None
        return [
            None if isinstance(operation, DeleteOp) else self._completing(_task_of(row))
            for operation, row in zip(operations, rows, strict=True)
        ]

    def _step_error(self, operation: BulkOperation, reason: str | None) -> AppError:
        """Why a bulk operation wrote nothing (`_step`'s reasons)."""
        if reason is None:
            return NotFound("Task not found")
        if reason == _TOO_MANY_TAGS:
            return InvalidRequest(f"A task has at most {TAGS_MAX_COUNT} tags")
        if not isinstance(operation, MoveOp):  # pragma: no cover - only moves give reasons
            raise AssertionError(reason)
        return self._refusal(Refusal(reason), _bulk_placement(operation))

    def delete_completed(self) -> int:
        """Delete the caller's completed tasks (with their subtrees); return how many."""
        completed = _owned(delete(Task).where(_T.completed == true())).returning(_T.id)
        return len(self._run_last(completed))

    def _update(
        self, task_id: int, values: dict[str, Any], expected: Expected = None, *, last: bool = False
    ) -> TaskRow:
        task = self._update_where(task_id, values, *_version_in(expected), last=last)
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
        self,
        task_id: int,
        values: dict[str, Any],
        *conditions: ColumnElement[bool],
        last: bool = False,
    ) -> TaskRow | None:
        """One UPDATE ... RETURNING of the caller's task; None when no row matched. `last`:
        nothing follows it in the transaction, so it may commit it (`_run_last`)."""
        statement = _updating(values, *conditions)
        if last:
            rows = self._run_last(statement, task_id=task_id)
            return cast(TaskRow, rows[0]) if rows else None
        return cast(TaskRow | None, self._run(statement, task_id=task_id).one_or_none())


def _updating(values: dict[str, Any], *conditions: ColumnElement[bool]) -> Any:
    """The UPDATE ... RETURNING of the caller's task `:task_id` (when `conditions` hold)."""
    return _changing(_owned(update(Task).where(_T.id == _TASK_ID, *conditions)), values)


# Whether the caller's task `:task_id` exists, as a step's reason: its tags are full.
_TOO_MANY_TAGS = "tags"
_TAGS_FULL = _owned(select(literal(_TOO_MANY_TAGS)).where(_T.id == _TASK_ID))


def _step(operation: BulkOperation) -> Step:
    """A bulk operation as one statement on its task (`Scoped._run_steps`)."""
    at = {"task_id": operation.id}
    match operation:
        case CompleteOp():
            return Step(_updating(_completion(True)), at, operation.id)
        case ReopenOp():
            return Step(_updating(_completion(False)), at, operation.id)
        case DeleteOp():
            return Step(_DELETE, at, operation.id)
        case SetPriorityOp(priority=priority):
            return Step(_updating({"priority": priority}), at, operation.id)
        case AddTagOp(tag=tag):
            tags = _T.tags
            has_tag = literal(tag).op("=")(func.any(tags))
            # The count bound is part of the statement: a concurrent add cannot exceed it.
            adding = _updating(
                {"tags": case((has_tag, tags), else_=func.array_append(tags, tag))},
                or_(has_tag, func.cardinality(tags) < TAGS_MAX_COUNT),
            )
            return Step(adding, at, operation.id, reason=_TAGS_FULL)
        case RemoveTagOp(tag=tag):
            return Step(_updating({"tags": func.array_remove(_T.tags, tag)}), at, operation.id)
        case MoveOp():
            # To the top level of the list (or of no list), last; a task already there stays
            # where it is. The placement's own refusal says why it wrote nothing.
            placement = _bulk_placement(operation)
            statement, refusal = _move_statements(placement.shape, False)
            binds = {**at, **placement.values()}
            return Step(statement, binds, operation.id, reason=refusal)
    raise AssertionError(f"unhandled operation {operation!r}")  # pragma: no cover


def _bulk_placement(operation: MoveOp) -> Placement:
    choice = Sent.none if operation.list_id is None else Sent.id
    return Placement(list=choice, parent=Sent.none, stay=True, list_id=operation.list_id)


def _task_of(row: dict[str, Any]) -> TaskRow:
    """A task row that a step returned as JSON (`to_jsonb`), typed as the driver types it."""
    return cast(TaskRow, decoded(TASK_VIEW, row))


def _plan(
    recurrence: str | None,
    time_zone: str,
    due_date: datetime | None,
    reminders: list[dict[str, Any]],
    *,
    current: TaskRow | None = None,
) -> dict[str, Any]:
    """The schedule columns of a task with these fields (`current`: as stored before, if it
    exists). A new rule or time zone (re)starts the series at the due date, and must give an
    occurrence after it; the same rule keeps the series' start and id, and a due date moved
    only changes which occurrence comes next. Raises `InvalidRequest` for a combination the
    fields' own validation cannot see."""
    if due_date is None and any("minutes_before_due" in r for r in reminders):
        raise _invalid("body.reminders", "A minutes_before_due reminder needs a due_date")
    values: dict[str, Any] = dict.fromkeys(_PLANNED)
    values.update(recurrence=recurrence, time_zone=time_zone, reminders=reminders)
    if recurrence is None:
        return values
    if due_date is None:
        raise _invalid("body.due_date", "A recurring task needs a due_date: its first occurrence")
    if (
        current is not None
        and current.series_start is not None
        and current.recurrence == recurrence
        and current.time_zone == time_zone
    ):
        start, restart = current.series_start, False
    else:
        start, restart = due_date, True
    next_due = Schedule.of(recurrence, time_zone, start).next_after(due_date)
    if restart and next_due is None:
        raise _invalid(
            "body.recurrence",
            "The rule gives no occurrence after the due date (none within "
            f"{HORIZON_YEARS} years, or COUNT/UNTIL end the series at once)",
        )
    series_id = current.series_id if current is not None else None
    values.update(
        series_id=series_id or str(uuid.uuid4()),
        series_start=start,
        next_due_date=next_due,
    )
    return values


def _moved_reminders(
    reminders: list[dict[str, Any]], old_due: datetime, new_due: datetime
) -> list[dict[str, Any]]:
    """A successor's reminders: the same, an `at` moved as far as the due date moved (dropped
    if that leaves the years an instant may have)."""
    moved: list[dict[str, Any]] = []
    for reminder in reminders:
        if "at" in reminder:
            at = shift_reminder(datetime.fromisoformat(reminder["at"]), old_due, new_due)
            if at is None:
                continue
            reminder = {"at": _instant_text(at)}
        moved.append(reminder)
    return moved


_INSTANT = TypeAdapter(datetime)


def _instant_text(instant: datetime) -> str:
    """An instant as `reminders_json` stores it (pydantic's JSON form of a UTC datetime)."""
    return cast(str, _INSTANT.dump_python(instant, mode="json"))


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        message, details=[{"field": field, "message": message, "type": "value_error"}]
    )


def _limit(field: str, message: str) -> LimitReached:
    return LimitReached(
        message, details=[{"field": field, "message": message, "type": "limit_reached"}]
    )


def _not_found(field: str, message: str) -> NotFound:
    return NotFound(message, details=[{"field": field, "message": message, "type": "not_found"}])


def _not_recurring() -> InvalidRequest:
    return _invalid(
        "body.recurrence",
        "A subtask does not recur: only top-level tasks have a recurrence (a recurring "
        "task's subtasks come back with each occurrence)",
    )


def _anchor_field(placement: Placement) -> str:
    return "body.before_id" if placement.anchor is Anchor.before else "body.after_id"


def _placement(
    data: TaskCreate | TaskUpdate, list_name: str | None, *, stay: bool = False
) -> Placement | None:
    """Where a create, PUT or PATCH puts the task (None: it says nothing about it)."""
    sent = data.model_fields_set
    list_sent = list_name is not None or "list_id" in sent
    if not list_sent and "parent_id" not in sent:
        return None
    if list_name is not None:
        list_choice = Sent.name
    elif not list_sent:
        list_choice = Sent.nothing
    else:
        list_choice = Sent.none if data.list_id is None else Sent.id
    if "parent_id" not in sent:
        parent_choice = Sent.nothing
    else:
        parent_choice = Sent.none if data.parent_id is None else Sent.id
    return Placement(
        list=list_choice,
        parent=parent_choice,
        stay=stay,
        list_id=data.list_id if list_choice is Sent.id else None,
        list_key=name_key(list_name) if list_name is not None else None,
        list_name=list_name,
        parent_id=data.parent_id if parent_choice is Sent.id else None,
    )


@lru_cache(maxsize=64)
def _create_statements(shape: tuple[Sent, Sent, Anchor, bool]) -> tuple[Any, Any]:
    return create_statement(shape, _CREATE_VALUES, _CREATED_VIEW)


@lru_cache(maxsize=128)
def _move_statements(shape: tuple[Sent, Sent, Anchor, bool], checked: bool) -> tuple[Any, Any]:
    return move_statement(shape, checked=checked, values={}, returning=TASK_VIEW)
