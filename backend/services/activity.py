"""The activity log (issue 39): what happened in the caller's space and in every list shared
with it, newest first, read from `task_events`, the record the change feed and the worker
read (migration 0030 adds the actor and an update's old and new values).

Every statement reaches the events through the access relation (`may(table,
Action.LIST_READ)`, backend/services/access.py: the caller's own space, or a list it is a
member of, viewer or above), as it reaches the tasks. A list's
activity reads whether the caller may see the list in the same statement as the page: a
stranger's answer is the 404 of a missing list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    bindparam,
    case,
    func,
    literal_column,
    select,
    true,
    union_all,
)

from backend.db.scope import OWNER, Scoped
from backend.errors import NotFound
from backend.models import TaskEvent
from backend.models.activity import ACTIVITY_TYPES
from backend.models.task_list import TaskList
from backend.services.access import Action, may, may_shared
from backend.services.changes import of_types

_E = TaskEvent.__table__.c  # type: ignore[attr-defined]
_T = TaskEvent.__table__  # type: ignore[attr-defined]
_L = TaskList.__table__  # type: ignore[attr-defined]

_BEFORE = bindparam("before", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)
_LIST = bindparam("list_id", type_=BigInteger)
_COLUMNS = (
    _E.id,
    _E.occurred_at,
    _E.actor_id,
    _E.type,
    _E.task_id,
    _E.list_id,
    # A change recorded in another space (a list shared with the caller) shows no reminders:
    # they are its owner's own (migration 0034).
    case(
        (_E.user_id == bindparam(OWNER), _E.changes),
        else_=_E.changes.op("-")(literal_column("'reminders'")),
    ).label("changes"),
    # A membership's member, a comment's or an invitation's id: not the stored row (a
    # comment's body is not the log's).
    func.coalesce(_E.object["member_id"].astext, _E.object["id"].astext).label("object_id"),
)
_SHOWN = of_types(ACTIVITY_TYPES)
_OLDER = _E.id < func.coalesce(_BEFORE, 9223372036854775807)


def _newest(*where: Any) -> Any:
    return select(*_COLUMNS).where(*where).order_by(_E.id.desc()).limit(_LIMIT)


# Two arms, each on its own index (an OR of them is one bitmap, sorted whole): the caller's
# space newest first on `ix_task_events_user_id_id`, the lists shared with it on
# `ix_task_events_user_id_list_id_id`; merged, newest first.
_ARMS = union_all(
    _newest(_E.user_id == bindparam(OWNER), _SHOWN, _OLDER),
    _newest(may_shared(_T, Action.LIST_READ), _SHOWN, _OLDER),
).subquery("arms")
_PAGE = select(*_ARMS.c).order_by(_ARMS.c.id.desc()).limit(_LIMIT)
_NEWER_FIRST = _newest(may(_T, Action.LIST_READ), _SHOWN, _OLDER)
# A list's: whether the caller may see the list (1, else 0: missing or not a member), and
# the page, outer-joined so an empty page still has a row.
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
        """Up to `limit` events older than `before` (the newest without one), and whether
        there are more."""
        rows = self._read(_PAGE, before=before, limit=limit + 1).all()
        return rows[:limit], len(rows) > limit

    def list_page(self, list_id: int, before: int | None, limit: int) -> tuple[Sequence[Any], bool]:
        """The same, of one list the caller may read; `NotFound` when it may not (or there is
        no such list): the same answer."""
        rows = self._read(_LIST_PAGE, list_id=list_id, before=before, limit=limit + 1).all()
        if not rows[0].seen:
            raise NotFound("List not found")
        found = [row for row in rows if row.id is not None]
        return cast(Sequence[Any], found[:limit]), len(found) > limit
