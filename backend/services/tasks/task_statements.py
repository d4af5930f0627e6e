"""The statements on `tasks`: the column sets a task is read with, the values a write sets, and
the hot routes' statements, built once at import or once per shape (a PATCH's `updating`, a
placement's, a listing's). Every one is built with `owned_task`, which adds the access relation
for an action (`access.may`); `Scoped` binds `owner` to the caller.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    column,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    table,
    true,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.dialects.postgresql import array as postgresql_array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from backend.db.scope import OWNER, Bound, Stmt, if_member, members_only, owned, space_locked
from backend.models import Priority, SortOrder, Task, TaskMemberReminder, TaskSort
from backend.models.sharing import ListMember
from backend.models.task_fields import WRITABLE
from backend.models.task_list import MAX_DEPTH, TaskList
from backend.services.history.changes import latest_position
from backend.services.history.trash import trashing
from backend.services.statements.access import Action, may, may_shared, role_in
from backend.services.statements.assignees import assignable
from backend.services.statements.task_tree import Anchor, Sent, create_statement, move_statement
from backend.services.tasks.task_listing import (
    LIMIT,
    FilterShape,
    ListingShape,
    after_keyset,
    due_end,
    filter_conditions,
    filter_held,
    order_by,
    sort_key,
)
from backend.services.tasks.task_sending import Then

# Every column of `tasks`: statements return plain rows (`TaskRow`), never ORM entities.
TASK_COLUMNS = tuple(Task.__table__.columns)  # type: ignore[attr-defined]
_T = Task.__table__.c  # type: ignore[attr-defined]
_L = TaskList.__table__.c  # type: ignore[attr-defined]

# What every statement handing a task to the API returns: its columns, a completed task with no
# open subtask (also in the RETURNING that completes it, before its subtasks' completion runs),
# and the caller's own `reminders` (a member's row for a member, `[]` for none; the owner's path
# and a member of nothing read no other table).
_R = TaskMemberReminder.__table__.c  # type: ignore[attr-defined]
_MINE = _T.user_id == bindparam(OWNER)
_MEMBERS_OWN = if_member(
    func.coalesce(
        select(_R.reminders)
        .where(_R.user_id == _T.user_id, _R.task_id == _T.id, _R.member_id == bindparam(OWNER))
        .correlate(Task.__table__)  # type: ignore[attr-defined]
        .scalar_subquery(),
        literal_column("'[]'::jsonb"),
    )
)


def _viewed(c: Any, reminders: Any = _MEMBERS_OWN) -> Any:
    if c.name == "open_subtask_count":
        return case((_T.completed == true(), 0), else_=c).label(c.name)
    if c.name == "reminders":
        return case((_MINE, c), else_=reminders).label(c.name)
    return c


TASK_VIEW = tuple(_viewed(c) for c in TASK_COLUMNS)
# A listing's two arms know whose rows they read: no CASE, and the own arm plans no subquery.
_OWN_VIEW = tuple(
    _T.reminders.label(c.name) if c.name == "reminders" else _viewed(c) for c in TASK_COLUMNS
)
_MEMBER_VIEW = tuple(
    _MEMBERS_OWN.label(c.name) if c.name == "reminders" else _viewed(c) for c in TASK_COLUMNS
)


def written_view(reminders: Any) -> tuple[Any, ...]:
    """`TASK_VIEW` for a write that sets `reminders` (its value's expression): a member's go to
    its own row by a trigger the `RETURNING` cannot see yet, so it reads back what it sent."""
    return tuple(_viewed(c, reminders) for c in TASK_COLUMNS)


_TASKS = Task.__table__  # type: ignore[attr-defined]


# A member's own reminders on a task it moves: not in the move's SET (whose trigger would act
# on the subtree's rows too) but a statement after it, from its rows (`w`: only if the move wrote
# the task), or alone with the COMMIT. `[]` is no row.
_MOVED_ROWS = table("w", column("id", BigInteger))
_OWN = bindparam("own_reminders", type_=_R.reminders.type)
_OWN_TASK = bindparam("own_task_id", type_=BigInteger)


def _own_reminders(*gates: Any) -> Any:
    chosen = select(_T.user_id, _T.id, bindparam(OWNER), _OWN).where(
        _T.id == _OWN_TASK, may(_TASKS, Action.TASK_WRITE), *gates
    )
    written = pg_insert(TaskMemberReminder).from_select(
        ["user_id", "task_id", "member_id", "reminders"], chosen
    )
    return written.on_conflict_do_update(
        index_elements=["user_id", "task_id", "member_id"],
        set_={"reminders": written.excluded.reminders},
    )


def _no_own_reminders(*gates: Any) -> Any:
    return delete(TaskMemberReminder).where(
        _R.task_id == _OWN_TASK, _R.member_id == bindparam(OWNER), *gates
    )


_MOVED = exists(select(_MOVED_ROWS.c.id).where(_MOVED_ROWS.c.id == _OWN_TASK))
# (after the move's rows, alone at the COMMIT), for a member's reminders set and cleared.
OWN_REMINDERS = (_own_reminders(_MOVED), _own_reminders())
NO_OWN_REMINDERS = (_no_own_reminders(_MOVED), _no_own_reminders())


def own_reminders(task_id: int, reminders: list[Any]) -> Then:
    """The write of the caller's own `reminders` on `task_id`, after the move of it."""
    values: dict[str, Any] = {"own_task_id": task_id}
    if not reminders:
        return Then(Bound(NO_OWN_REMINDERS[0], values), Bound(NO_OWN_REMINDERS[1], values))
    values["own_reminders"] = reminders
    return Then(Bound(OWN_REMINDERS[0], values), Bound(OWN_REMINDERS[1], values))


_M = ListMember.__table__.c  # type: ignore[attr-defined]


def owned_task(statement: Stmt, action: Action = Action.LIST_READ) -> Stmt:
    """A statement on `tasks`, scoped to the rows the caller may `action` (reading, by
    default; `Action.TASK_WRITE` for a write, which takes the row's space's lock first)."""
    if action is Action.LIST_READ:
        return statement.where(may(_TASKS, action))
    return statement.where(may(_TASKS, action), space_locked(_TASKS))


# When a task was completed: an already-completed task keeps its original completion time.
_STAMP = func.coalesce(_T.completed_at, func.now())


def completion(completed: ColumnElement[bool] | bool) -> dict[str, Any]:
    """Values that set `completed` (a value, or an expression over the row: a toggle) and keep
    `completed_at` consistent with it (a completed task keeps its stored time)."""
    if isinstance(completed, bool):
        return {"completed": completed, "completed_at": _STAMP if completed else None}
    return {"completed": completed, "completed_at": case((completed, _STAMP), else_=None)}


def changing(statement: Any, values: dict[str, Any]) -> Any:
    """An UPDATE of one task: every change bumps `version` in the same statement, so the
    ETag changes with it and concurrent writers each see (and bump) the other's version."""
    view = TASK_VIEW
    if "reminders" in values:
        sent = values["reminders"]
        if not isinstance(sent, ClauseElement):
            sent = bindparam("sent_reminders", sent, type_=_T.reminders.type)
        view = written_view(sent)
    statement = statement.values(**values, updated_at=func.now(), version=_T.version + 1)
    return statement.returning(*view)


TASK_ID: BindParameter[int] = bindparam("task_id", type_=Integer)
GET = owned_task(select(*TASK_VIEW).where(_T.id == TASK_ID))
# The occurrence a recurring task's completion created (`previous_task_id` is unique).
NEXT_OCCURRENCE = owned_task(select(*TASK_VIEW).where(_T.previous_task_id == TASK_ID))
# The task as a writer reads it before its write (a series' completion, If-Match).
GET_WRITABLE = owned_task(select(*TASK_VIEW).where(_T.id == TASK_ID), Action.TASK_WRITE)
# Why a write matched no task: its version and the caller's role (no row: a missing task).
ACCESS = owned_task(select(_T.version, role_in(_TASKS)).where(_T.id == TASK_ID))
# A completion of a series that goes on adds its next occurrence from the stored schedule: it is
# written only once that row has been read (`TaskService._write_completing`).
COMPLETES_SERIES = and_(
    _T.completed == false(),
    _T.recurrence.is_not(None),
    _T.next_due_date.is_not(None),
    _T.series_start.is_not(None),
    _T.due_date.is_not(None),
)
_UNLESS_SERIES = ~COMPLETES_SERIES
_READ_VERSION = bindparam("read_version", type_=Integer)


def completing(values: dict[str, Any], *conditions: ColumnElement[bool]) -> tuple[Any, Any, Any]:
    """A write of `values` that may complete the task (`TaskService._write_completing`): the
    write unless it completes a series, the stored row read instead, and the series'
    completion at `:read_version`."""
    return (
        updating(values, *conditions, _UNLESS_SERIES),
        GET_WRITABLE.where(*conditions) if conditions else GET_WRITABLE,
        updating(values, _T.version == _READ_VERSION, COMPLETES_SERIES),
    )


# A delete puts the task in the trash in its own statement (backend/services/history/trash.py).
DELETING = owned_task(delete(Task).where(_T.id == TASK_ID), Action.TASK_WRITE)
_WRITABLE_READ = may(_TASKS, Action.TASK_WRITE)
DELETE = trashing(DELETING, _WRITABLE_READ)


def deleting(*conditions: ColumnElement[bool]) -> Any:
    """`DELETE` with more conditions (If-Match's versions), built for this request."""
    return trashing(DELETING.where(*conditions), _WRITABLE_READ)


# The caller's completed tasks (its own space only: a shared list's are deleted one by one).
DELETE_COMPLETED = trashing(
    owned(delete(Task).where(_T.completed == true()), _T.user_id),
    _T.user_id == bindparam(OWNER),
    counted=True,
)
# Tasks by their ids, those still there that the caller may delete as `DELETE /api/tasks/{id}`
# lets it (any space: a shared list's where it may write), each with its subtree (an import's
# undo: the tasks it created at the top of the file); returns the roots trashed.
DELETE_MANY = trashing(
    owned_task(
        delete(Task).where(_T.id == func.any(bindparam("task_ids", type_=ARRAY(BigInteger)))),
        Action.TASK_WRITE,
    ),
    _WRITABLE_READ,
    counted=True,
)
COMPLETED = bindparam("completed", type_=Boolean)
# The columns `plan_schedule` writes: the schedule fields and what the server derives from them.
PLANNED = (
    "due_date",
    "all_day",
    "recurrence",
    "time_zone",
    "reminders",
    "series_id",
    "series_start",
    "next_due_date",
)
# Where the task is: written by the placement statements (backend/services/statements/task_tree.py).
PLACED = ("list_id", "parent_id")
# The writable fields written as sent (not `completed`, the schedule nor the placement).
AS_SENT = set(WRITABLE) - {"completed", *PLANNED, *PLACED}
# What a create writes (but `user_id` and the placement): one bound value per column, and the
# completion time: created completed, now.
CREATE_VALUES: dict[str, Any] = {
    "completed": COMPLETED,
    "completed_at": case((COMPLETED, func.now()), else_=None),
    **{
        name: bindparam(name, type_=_T[name].type)
        for name in (*(f for f in WRITABLE if f in AS_SENT), *PLANNED)
    },
}


class Inserting:
    """A new task's INSERT of `values` (column -> expression: `CREATE_VALUES`, or another
    writer's with a column's value of its own), each form built once: in the caller's own
    space (`alone`: its reminders are the task's), and placed as a shape says (`placed`,
    with its refusal's read)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.alone = (
            insert(Task)
            .values(user_id=bindparam(OWNER), **values)
            .returning(*written_view(_T.reminders))
        )
        self._placed: dict[tuple[Sent, Sent, Anchor, bool], tuple[Any, Any]] = {}

    def placed(self, shape: tuple[Sent, Sent, Anchor, bool]) -> tuple[Any, Any]:
        built = self._placed.get(shape)
        if built is None:  # a few shapes (`Sent` x `Sent` x `Anchor` x stay)
            view = written_view(self.values["reminders"])
            built = self._placed[shape] = create_statement(shape, self.values, view)
        return built


INSERTING = Inserting(CREATE_VALUES)

# Statistics in one statement: the counts, the tasks in no list, every list's counts as JSON.
_PER_LIST = (
    owned_task(
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
    (
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
                        _L.user_id != bindparam(OWNER),
                        _L.position,
                        _L.name_key,
                    )
                ),
                literal_column("'[]'::json"),
            )
        )
        .select_from(
            TaskList.__table__.outerjoin(_PER_LIST, _PER_LIST.c.list_id == _L.id)  # type: ignore[attr-defined]
        )
        .where(may(TaskList.__table__, Action.LIST_READ))  # type: ignore[attr-defined]
    )
    .correlate(None)
    .scalar_subquery()
)
STATS = owned_task(
    select(
        func.count(),
        func.count().filter(_T.completed == true()),
        func.count().filter(_T.completed == false(), due_end() <= func.now()),
        *(func.count().filter(_T.priority == p) for p in Priority),
        func.count().filter(_T.list_id.is_(None)),
        func.count().filter(_T.list_id.is_(None), _T.completed == true()),
        _LISTS_COUNTED,
    ).select_from(Task)
)

# A task's subtree, depth-first in position order (the path of positions from the task),
# bounded by MAX_DEPTH and SUBTASKS_PER_TASK: one statement, one page.
_SUBTREE_WALK: Any = owned_task(
    select(
        _T.id,
        _T.user_id,
        sql_cast(postgresql_array([], type_=BigInteger), ARRAY(BigInteger)).label("path"),
    )
).where(_T.id == TASK_ID)
_SUBTREE_WALK = _SUBTREE_WALK.cte("subtree", recursive=True)
# A subtask is in its parent's space: each level is read on the `(user_id, parent_id)` index.
_SUBTREE_WALK = _SUBTREE_WALK.union_all(
    owned_task(
        select(_T.id, _T.user_id, func.array_append(_SUBTREE_WALK.c.path, _T.position))
    ).where(
        _T.parent_id == _SUBTREE_WALK.c.id,
        _T.user_id == _SUBTREE_WALK.c.user_id,
        func.cardinality(_SUBTREE_WALK.c.path) < MAX_DEPTH,
    )
)
SUBTREE = (
    owned_task(select(*TASK_VIEW)).where(_T.id == _SUBTREE_WALK.c.id).order_by(_SUBTREE_WALK.c.path)
)


def updating(values: dict[str, Any], *conditions: ColumnElement[bool]) -> Any:
    """The UPDATE ... RETURNING of the caller's task `:task_id` (when `conditions` hold): built
    once per shape, values bound (`Bound`), when there are no conditions and the values are
    plain or `_SHARED`; otherwise built for this call."""
    # How each value is part of the shape: bound, NULL, or a `_SHARED` expression's index.
    shape: list[tuple[str, str | int]] = []
    per_call = bool(conditions)
    for name, value in values.items():
        if not isinstance(value, ClauseElement):
            shape.append((name, _NULL if value is None else _BOUND))
            continue
        index = next((i for i, shared in enumerate(_SHARED) if shared is value), None)
        if index is None:  # an expression built for this call
            per_call = True
            break
        shape.append((name, index))
    if per_call:
        return updating_of(TASK_ID, values, *conditions)
    binds = {
        f"{_SET}{name}": value
        for name, value in values.items()
        if value is not None and not isinstance(value, ClauseElement)
    }
    return Bound(_updating_shape(tuple(sorted(shape))), binds)  # names are unique


# The expressions `updating` still builds once per shape: keyed by identity, so constants only.
_SHARED: tuple[Any, ...] = (_STAMP,)
# A value `updating` binds, and one it sets to NULL (a bound None would be JSON `null`).
_BOUND, _NULL = "bound", "null"
_SET = "set_"


def updating_of(task: Any, values: dict[str, Any], *conditions: ColumnElement[bool]) -> Any:
    """The UPDATE ... RETURNING of the caller's task `task` (an id or expression) where
    `conditions` hold, built for this call; an assignee only one it may assign."""
    statement = update(Task).where(_T.id == task, *conditions)
    if "assignees" in values:
        sent = values["assignees"]
        if not isinstance(sent, ClauseElement):
            sent = literal(sent, ARRAY(Text))
        statement = statement.where(assignable(sent, _T.user_id, _T.list_id))
    return changing(owned_task(statement, Action.TASK_WRITE), values)


@lru_cache(maxsize=256)
def _updating_shape(shape: tuple[tuple[str, Any], ...]) -> Any:
    values: dict[str, Any] = {}
    for name, kind in shape:
        if kind == _BOUND:
            values[name] = bindparam(f"{_SET}{name}", type_=_T[name].type)
        else:
            values[name] = None if kind == _NULL else _SHARED[kind]
    statement = update(Task).where(_T.id == TASK_ID)
    if "assignees" in values and values["assignees"] is not None:
        statement = statement.where(assignable(values["assignees"], _T.user_id, _T.list_id))
    return changing(owned_task(statement, Action.TASK_WRITE), values)


# A toggle and a completion without If-Match: built once (`completing`).
TOGGLING = completing(completion(~_T.completed))
COMPLETING = completing(completion(True))


@lru_cache(maxsize=128)
def move_statements(shape: tuple[Sent, Sent, Anchor, bool], checked: bool) -> tuple[Any, Any]:
    return move_statement(shape, checked=checked, values={}, returning=TASK_VIEW)


# A listing: built once per shape (`TaskListQuery.shape`), its values bound, so a page of a known
# shape compiles nothing and its scope check is looked up.
@lru_cache(maxsize=512)
def listing(shape: ListingShape) -> Any:
    """`listing_page`, with a saved filter whether it still holds the query applied (on every
    row; an empty page is one row of NULLs), so no second read tells it from a stale filter."""
    rows = listing_page(shape)
    if not shape.filters.saved:
        return rows
    found = rows.subquery("saved_page")
    held = select(filter_held().label("filter_held")).subquery("held")
    return (
        select(*found.c, held.c.filter_held)
        .select_from(held.outerjoin(found, true()))
        .order_by(*_in_order(found, shape))
    )


def _in_order(page: Any, shape: ListingShape) -> list[Any]:
    """The order of the rows of `page` (a subquery of a listing's page): its sort key, then id."""
    last, task_id = page.c.sort_key, page.c.id
    ordered = (
        [last.asc(), task_id.asc()]
        if shape.direction is SortOrder.asc
        else [last.desc(), task_id.desc()]
    )
    if shape.sort is TaskSort.due_date:
        ordered[0] = ordered[0].nulls_last()
    return ordered


def listing_page(shape: ListingShape) -> Any:
    """A page: the task's columns, its sort key (for the next cursor) and, when asked, the
    caller's feed position in the page's snapshot. Two arms, each a page on its own index (an OR
    would read every own task to sort them): the caller's tasks and the shared lists'
    (`members_only`: not planned for a member of nothing)."""
    key = sort_key(shape.sort).label("sort_key")

    def arm(view: tuple[Any, ...], scope: ColumnElement[bool]) -> Any:
        statement = select(*view, key).where(scope, *filter_conditions(shape.filters))
        if shape.after is not None:
            statement = statement.where(after_keyset(shape))
        return statement.order_by(*order_by(shape.sort, shape.direction)).limit(LIMIT)

    mine = _T.user_id == bindparam(OWNER)
    theirs = members_only(
        arm(_MEMBER_VIEW, and_(may_shared(_TASKS, Action.LIST_READ), ~mine)), "shared_page"
    )
    both = union_all(arm(_OWN_VIEW, mine), theirs).subquery("page")
    outer = [both.c[c.name] for c in (*TASK_COLUMNS, key)]
    if shape.feed_position:
        outer.append(latest_position().label("feed_position"))
    return select(*outer).order_by(*_in_order(both, shape)).limit(LIMIT)


@lru_cache(maxsize=128)
def listing_total(shape: FilterShape) -> Any:
    """How many tasks the filters match (`include_total`); binds `TaskFilters.values`."""
    return owned_task(select(func.count()).select_from(Task)).where(*filter_conditions(shape))


@lru_cache(maxsize=128)
def listing_still_empty(shape: ListingShape) -> Any:
    """The caller's feed position and whether page `shape` has a row now, in one snapshot (a
    saved filter no longer holding the query counts as a row: the page is read again)."""
    appeared: ColumnElement[bool] = exists(listing_page(replace(shape, feed_position=False)))
    if shape.filters.saved:
        appeared = or_(appeared, ~filter_held())
    return select(latest_position(), appeared)
