"""The trash (specs/api-contract.md, "The trash"): a deleted task with its subtree, comments and
members' reminders, kept `TRASH_DAYS`. `trashing` trashes in the DELETE's own statement (one round
trip; `tasks` never holds a trashed row); a restore inserts the rows again with their ids, so their
triggers record them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Integer,
    any_,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from backend.db.scope import OWNER, Scoped, spaces_locked
from backend.errors import LimitReached, NotFound, PreconditionFailed
from backend.models import Task, TaskRow
from backend.models.task_list import SUBTASKS_PER_TASK, TASKS_PER_LIST, TaskList
from backend.models.trash import TRASH_DAYS, TaskTrash, TaskTrashStored
from backend.services.statements.access import Action, may, require, role_in
from backend.services.statements.versions import Expected

_TRASH = TaskTrash.__table__  # type: ignore[attr-defined]
_R = _TRASH.c
_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_L = _LISTS.c

TRASH_NOT_FOUND = "Deleted task not found in the trash"
_WRITTEN = ["id", "user_id", "list_id", "title", "deleted_by", "snapshot"]


def trashing(deleting: Any, *scoped: ColumnElement[bool], counted: bool = False) -> Any:
    """`deleting` (a scoped DELETE of tasks) as one statement also trashing each with its subtree;
    returns the trashed tasks' `id`, `title` (`counted`: and `deleted`)."""
    gone = deleting.returning(_T.id, _T.parent_id).cte("gone")
    roots = or_(gone.c.parent_id.is_(None), gone.c.parent_id.not_in(select(gone.c.id)))
    snapshots = _snapshots(select(gone.c.id).where(roots))
    kept = (
        select(*_kept(_T.list_id, snapshots))
        .select_from(_TASKS.join(gone, gone.c.id == _T.id).join(snapshots, _rooted(snapshots)))
        .where(*scoped, roots)
    )
    returned: list[Any] = [_R.id, _R.title]
    if counted:
        returned.append(select(func.count()).select_from(gone).scalar_subquery().label("deleted"))
    return insert(_TRASH).from_select(_WRITTEN, kept).returning(*returned).add_cte(gone)


def trashing_lists(deleted: Any) -> Any:
    """The CTE trashing the lists' `deleted` top-level tasks with their subtrees, in no list."""
    tops = (_T.user_id == bindparam(OWNER), _T.parent_id.is_(None), _T.list_id.in_(deleted))
    snapshots = _snapshots(select(_T.id).where(*tops))
    kept = (
        select(*_kept(null(), snapshots))
        .select_from(_TASKS.join(snapshots, _rooted(snapshots)))
        .where(*tops)
    )
    return insert(_TRASH).from_select(_WRITTEN, kept).cte("trashed_tasks")


def _snapshots(roots: Any) -> Any:
    """Each of the tasks `roots` with its subtree, in one pass (migration 0050)."""
    ids = select(func.array_agg(roots.subquery().c.id)).scalar_subquery()
    return func.task_trash_snapshots(ids).table_valued("root_id", "snapshot").alias("snapshots")


def _rooted(snapshots: Any) -> Any:
    return snapshots.c.root_id == _T.id


def _kept(list_id: Any, snapshots: Any) -> list[Any]:
    """A trash row's columns (`_WRITTEN`) for the task read, in `list_id`."""
    owner: Any = bindparam(OWNER).label("deleted_by")
    return [_T.id, _T.user_id, list_id, _T.title, owner, snapshots.c.snapshot]


_TRASH_ID = bindparam("trash_id", type_=BigInteger)
_BEFORE_AT = bindparam("before_at", type_=BigInteger)
_BEFORE_ID = bindparam("before_id", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)
# The cursor's time: microseconds since the epoch, exact both ways (`cursor_key`).
_BEFORE: Any = literal_column("'epoch'::timestamptz") + _BEFORE_AT * literal_column(
    "interval '1 microsecond'"
)
# A snapshot's comments: under `children` since migration 0052, before it under `comments`.
_COMMENTS_KEPT = func.coalesce(_R.snapshot["children"]["task_comments"], _R.snapshot["comments"])
_PURGE_AT = _R.deleted_at + literal_column(f"interval '{TRASH_DAYS} days'")
_MAY = may(_TRASH, Action.TASK_WRITE)

# Most recently deleted first, keyset-paged on the index (user_id, deleted_at, id).
_PAGE = (
    select(
        _R.id,
        _R.title,
        _R.list_id,
        _R.deleted_by,
        _R.deleted_at,
        _PURGE_AT.label("purge_at"),
        (func.jsonb_array_length(_R.snapshot["tasks"]) - 1).label("subtask_count"),
        func.jsonb_array_length(_COMMENTS_KEPT).label("comment_count"),
    )
    .where(
        _MAY, or_(_BEFORE_AT.is_(None), tuple_(_R.deleted_at, _R.id) < tuple_(_BEFORE, _BEFORE_ID))
    )
    .order_by(_R.deleted_at.desc(), _R.id.desc())
    .limit(_LIMIT)
)

# A restore's place: its list if still writable (else the top level), under its parent if still
# there. If-Match names the version it was deleted at.
_VERSION = _R.snapshot["tasks"][0]["version"].astext.cast(BigInteger)
_IF_MATCH = bindparam("if_match", type_=ARRAY(BigInteger))
_IF_MATCH_HELD = or_(_IF_MATCH.is_(None), any_(_IF_MATCH) == _VERSION)


def _placed(trash_id: Any, *conditions: ColumnElement[bool]) -> Any:
    """Where trashed task `trash_id` goes back to, if restorable: id, space, list, parent."""
    trashed = (
        select(
            _R.id,
            _R.user_id,
            _R.list_id,
            _R.snapshot["tasks"][0]["parent_id"].astext.cast(BigInteger).label("parent_id"),
        )
        .where(_R.id == trash_id, _MAY, *conditions)
        .cte("trashed")
    )
    listed = select(
        trashed.c.id,
        trashed.c.user_id,
        trashed.c.parent_id,
        select(_L.id)
        .where(
            _L.id == trashed.c.list_id,
            _L.user_id == trashed.c.user_id,
            may(_LISTS, Action.TASK_WRITE),
        )
        .scalar_subquery()
        .label("list_id"),
    ).cte("listed")
    return (
        select(
            listed.c.id,
            listed.c.user_id,
            listed.c.list_id,
            select(_T.id)
            .where(
                _T.id == listed.c.parent_id,
                _T.user_id == listed.c.user_id,
                _T.list_id.is_not_distinct_from(listed.c.list_id),
                may(_TASKS, Action.TASK_WRITE),
            )
            .scalar_subquery()
            .label("parent_id"),
        )
        .where(or_(listed.c.user_id == bindparam(OWNER), listed.c.list_id.is_not(None)))
        .cte("placed")
    )


def restoring(trash_id: Any, *conditions: ColumnElement[bool]) -> Any:
    """The restore's statement for trashed task `trash_id`, under `conditions`."""
    placed = _placed(trash_id, *conditions)
    restored = func.task_trash_restore(
        placed.c.id,
        placed.c.user_id,
        placed.c.list_id,
        placed.c.parent_id,
        bindparam(OWNER),
        TASKS_PER_LIST,
        SUBTASKS_PER_TASK,
    ).table_valued(*(column(c.name, c.type) for c in _TASKS.columns), name="restored")
    return select(*restored.c).select_from(placed).join(restored, true())


def tagged(tags: Any) -> ColumnElement[bool]:
    """The trashed task's ETag when it was deleted (`<id>-<version>`) is one of `tags`."""
    return func.concat(_R.id, literal_column("'-'"), _VERSION) == any_(tags)


RESTORE = restoring(_TRASH_ID, _IF_MATCH_HELD)
_PLACED = _placed(_TRASH_ID, _IF_MATCH_HELD)
_P = _PLACED.c
# Why a restore wrote nothing: no placed row, or the limit `task_trash_fit` names.
_FIT = func.task_trash_fit(
    _P.id, _P.user_id, _P.list_id, _P.parent_id, TASKS_PER_LIST, SUBTASKS_PER_TASK
).table_valued("parent_id", "refusal", name="fit")
_WHY = select(_FIT.c.refusal).select_from(_PLACED).join(_FIT, true())
# The caller's role in a trashed task's list where it may read it (a viewer: 403), and its version.
_ROLE = select(role_in(_TRASH), _VERSION).where(_R.id == _TRASH_ID, may(_TRASH, Action.LIST_READ))
# The trashed task whose entry holds `trash_id`: a scan, an undo's failure path only.
_HELD = func.jsonb_build_array(func.jsonb_build_object("id", _TRASH_ID))
_HOLDING = (
    select(_R.id)
    .where(
        _MAY,
        _R.snapshot["tasks"].op("@>")(_HELD),
        _R.deleted_at <= bindparam("at", type_=DateTime(timezone=True)),
    )
    .order_by(_R.deleted_at.desc(), _R.id)
    .limit(1)
)
_LOCK = spaces_locked(select(_R.user_id).where(_R.id == _TRASH_ID, _MAY).scalar_subquery())
# The storage keys a purged snapshot names (read before the cascade), deleted once it commits.
_K = TaskTrashStored.__table__.c  # type: ignore[attr-defined]
_STORED = func.array(select(_K.storage_key).where(_K.trash_id == _R.id).scalar_subquery())
_PURGE = delete(_TRASH).where(_R.id == _TRASH_ID, _MAY).returning(_R.id, _STORED.label("stored"))
_EXPIRED = (
    delete(_TRASH)
    .where(
        _R.id.in_(
            select(_R.id)
            .where(
                _R.deleted_at
                < func.now() - func.make_interval(0, 0, 0, bindparam("days", type_=Integer))
            )
            .order_by(_R.deleted_at)
            .limit(bindparam("batch", type_=Integer))
        )
    )
    .returning(_R.id, _STORED.label("stored"))
)
_LIMITS = {
    "list_full": f"A list holds at most {TASKS_PER_LIST} tasks",
    "tree_full": f"A top-level task has at most {SUBTASKS_PER_TASK} subtasks, at every depth",
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor_key(deleted_at: datetime) -> int:
    """A cursor key: integer microseconds since the epoch (a float would skip a row)."""
    return (deleted_at - _EPOCH) // timedelta(microseconds=1)


class TrashService(Scoped):
    def page(self, before: tuple[int, int] | None, limit: int) -> tuple[list[Any], bool]:
        """Up to `limit` restorable trashed tasks before `before`, newest first; more?"""
        at, task_id = before if before is not None else (None, None)
        rows = self._read(_PAGE, before_at=at, before_id=task_id, limit=limit + 1).all()
        return list(rows[:limit]), len(rows) > limit

    def restore(self, task_id: int, expected: Expected = None) -> TaskRow:
        """Bring trashed task `task_id` back whole where still writable (else the top level)."""
        if_match = None if expected is None else sorted(expected)
        self._lock_spaces(_LOCK, first=False, trash_id=task_id)
        rows = self._write(RESTORE, trash_id=task_id, if_match=if_match, last=True)
        if rows:
            return cast(TaskRow, rows[0])
        version = self._refuse(task_id)
        if expected is not None and version not in expected:
            raise PreconditionFailed()
        found = self._read(_WHY, trash_id=task_id, if_match=if_match).first()
        if found is not None and found.refusal in _LIMITS:
            raise LimitReached(_LIMITS[found.refusal])
        raise NotFound(TRASH_NOT_FOUND)

    def holding(self, task_id: int, at: datetime) -> int | None:
        """The restorable trashed task holding task `task_id`, deleted at `at`, or None."""
        root = self._read(_HOLDING, trash_id=task_id, at=at).scalar()
        return None if root is None else int(root)

    def purge(self, task_id: int) -> list[str]:
        """Remove trashed task `task_id`; its storage keys, deleted after the commit."""
        rows = self._write(_PURGE, trash_id=task_id, last=True)
        if not rows:
            self._refuse(task_id)
            raise NotFound(TRASH_NOT_FOUND)
        return stored_keys(rows)

    def _refuse(self, task_id: int) -> int:
        """404 for a trashed task unseen, 403 for a member below editor; else its version."""
        found = self._read(_ROLE, trash_id=task_id).first()
        if found is None:
            raise NotFound(TRASH_NOT_FOUND)
        role, version = tuple(found)
        require(role, Action.TASK_WRITE, NotFound(TRASH_NOT_FOUND))
        return int(version)


def stored_keys(rows: Any) -> list[str]:
    """The storage keys in purged rows' `stored`."""
    return [str(key) for row in rows for key in row.stored or ()]


def purge_expired(
    engine: Engine, batch: int = 1000, *, drop: Callable[[list[str]], None] | None = None
) -> int:
    """Remove trashed tasks past `TRASH_DAYS` in batches; `drop` their bytes after each."""
    total = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(_EXPIRED, {"days": TRASH_DAYS, "batch": batch}).all()
        deleted = len(rows)
        if drop is not None:
            drop(stored_keys(rows))
        total += deleted
        if deleted < batch:
            return total
