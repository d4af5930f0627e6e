"""The activity log: what happened in the caller's space and in every list shared with it, newest
first, from `task_events` through the access relation, which also hides in the same statement what
the caller may not read now (an id reads null, an unknown assignee is left out; a stranger's list is
404)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    Text,
    bindparam,
    case,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by

from backend.db.scope import OWNER, Scoped
from backend.errors import NotFound
from backend.models import ListMember, Task, TaskEvent
from backend.models.activity import ACTIVITY_TYPES
from backend.models.references import LISTS, TASKS
from backend.models.task_list import TaskList
from backend.services.history.changes import CHILD_EVENT, of_types
from backend.services.statements.access import Action, may, may_shared

_E = TaskEvent.__table__.c  # type: ignore[attr-defined]
_T = TaskEvent.__table__  # type: ignore[attr-defined]
_L = TaskList.__table__  # type: ignore[attr-defined]

_BEFORE = bindparam("before", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)
_LIST = bindparam("list_id", type_=BigInteger)
# The rows an update's `changes` name by id, as `[old, new]`: each field and its row's table.
_NAMED = {"list_id": LISTS, "parent_id": TASKS}
_TABLES = {
    LISTS: TaskList.__table__.alias("named_list"),  # type: ignore[attr-defined]
    TASKS: Task.__table__.alias("named_task"),  # type: ignore[attr-defined]
}
_NULL: Any = literal_column("'null'::jsonb")
# The users an update's `changes` name: a member reads only those it may know now (`_known_users`).
ASSIGNEES = "assignees"
_MEMBERS = ListMember.__table__.alias("named_member")  # type: ignore[attr-defined]


def _key(field: str) -> Any:
    return literal_column(f"'{field}'")  # our own constants: one plan, no value bound


def _readable(changes: Any, field: str, side: int) -> Any:
    """`changes -> field -> side` while the caller may read that row now, else JSON null."""
    table = _TABLES[_NAMED[field]]
    pair = changes.op("->", return_type=JSONB)(_key(field))
    ref = pair.op("->>", return_type=Text)(literal_column(str(side))).cast(BigInteger)
    seen = exists().where(table.c.id == ref, may(table, Action.LIST_READ))
    return case((seen, pair.op("->", return_type=JSONB)(literal_column(str(side)))), else_=_NULL)


def _known_users(changes: Any, side: int) -> Any:
    """`changes -> 'assignees' -> side` with only the users the caller may know now, in order."""
    ids = changes.op("->", return_type=JSONB)(_key(ASSIGNEES)).op("->", return_type=JSONB)(
        literal_column(str(side))
    )
    each = (
        func.jsonb_array_elements(ids)
        .table_valued(column("value", JSONB), with_ordinality="position")
        .render_derived(name="assignee")
    )
    user = each.c.value.op("#>>", return_type=Text)(literal_column("'{}'"))
    member = exists().where(_MEMBERS.c.member_id == user, may(_MEMBERS, Action.LIST_READ))
    known = (
        select(
            func.coalesce(
                func.jsonb_agg(aggregate_order_by(each.c.value, each.c.position)),
                literal_column("'[]'::jsonb"),
            )
        )
        .select_from(each)
        .where(or_(user == _E.user_id, member))
        .scalar_subquery()
    )
    return case((func.jsonb_typeof(ids) == literal_column("'array'"), known), else_=ids)


def _as_readable(changes: Any) -> Any:
    """An update's `changes` as one not the space's owner reads them: no owner's reminders,
    unreadable ids null, unknown assignees left out (unchanged fields stay out)."""
    pairs = []
    for field in _NAMED:
        changed = changes.op("?", return_type=Boolean)(_key(field))
        pair = func.jsonb_build_array(_readable(changes, field, 0), _readable(changes, field, 1))
        pairs += [_key(field), case((changed, pair))]
    assigned = changes.op("?", return_type=Boolean)(_key(ASSIGNEES))
    known = func.jsonb_build_array(_known_users(changes, 0), _known_users(changes, 1))
    pairs += [_key(ASSIGNEES), case((assigned, known))]
    kept = changes.op("-", return_type=JSONB)(_key("reminders"))
    return kept.op("||", return_type=JSONB)(func.jsonb_strip_nulls(func.jsonb_build_object(*pairs)))


def _columns(changes: Any) -> tuple[Any, ...]:
    return (
        _E.id,
        _E.occurred_at,
        _E.actor_id,
        _E.type,
        _E.task_id,
        _E.list_id,
        changes.label("changes"),
        # A membership's member, a comment's or invitation's id: not the row (nor a comment's body).
        func.coalesce(_E.object["member_id"].astext, _E.object["id"].astext).label("object_id"),
    )


# A change in the caller's space reads whole; one in another's as `_as_readable` says.
_OWN = _columns(_E.changes)
_SHARED = _columns(_as_readable(_E.changes))
_EITHER = _columns(
    case((_E.user_id == bindparam(OWNER), _E.changes), else_=_as_readable(_E.changes))
)
_SHOWN = or_(of_types(ACTIVITY_TYPES), CHILD_EVENT)
_OLDER = _E.id < func.coalesce(_BEFORE, 9223372036854775807)


def _newest(columns: tuple[Any, ...], *where: Any) -> Any:
    return select(*columns).where(*where).order_by(_E.id.desc()).limit(_LIMIT)


# Two arms, each on its own index (an OR is one bitmap, sorted whole), merged newest first.
_ARMS = union_all(
    _newest(_OWN, _E.user_id == bindparam(OWNER), _SHOWN, _OLDER),
    _newest(_SHARED, may_shared(_T, Action.LIST_READ), _SHOWN, _OLDER),
).subquery("arms")
_PAGE = select(*_ARMS.c).order_by(_ARMS.c.id.desc()).limit(_LIMIT)
_NEWER_FIRST = _newest(_EITHER, may(_T, Action.LIST_READ), _SHOWN, _OLDER)
# A list's: whether the caller may see it, and the page, outer-joined so an empty page has a row.
_SEEN = (
    select(func.count().label("seen"))
    .select_from(_L)
    .where(_L.c.id == _LIST, may(_L, Action.LIST_READ))
    .subquery("seen")
)
_LIST_ROWS = _NEWER_FIRST.where(_E.list_id == _LIST).lateral("page")
_LIST_PAGE = (
    select(_SEEN.c.seen, *_LIST_ROWS.c)
    .select_from(_SEEN.outerjoin(_LIST_ROWS, true()))
    .order_by(_LIST_ROWS.c.id.desc())
)


class ActivityService(Scoped):
    def page(self, before: int | None, limit: int) -> tuple[Sequence[Any], bool]:
        """Up to `limit` events older than `before` (newest without one), and whether more."""
        rows = self._read(_PAGE, before=before, limit=limit + 1).all()
        return rows[:limit], len(rows) > limit

    def list_page(self, list_id: int, before: int | None, limit: int) -> tuple[Sequence[Any], bool]:
        """The same, of one list the caller may read; else `NotFound` (as for no such list)."""
        rows = self._read(_LIST_PAGE, list_id=list_id, before=before, limit=limit + 1).all()
        if not rows[0].seen:
            raise NotFound("List not found")
        found = [row for row in rows if row.id is not None]
        return cast(Sequence[Any], found[:limit]), len(found) > limit
