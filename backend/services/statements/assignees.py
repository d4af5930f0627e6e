"""Who a task may be assigned to (migration 0031): its owner or a member of its list. Every write of
`assignees` carries `assignable` as a condition, so a removal racing it ends consistent: refused, or
written and taken away by the removal's trigger."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.sql.elements import ColumnElement

from backend.models.sharing import ListMember
from backend.services.statements.access import Action, may

_MEMBERS = ListMember.__table__  # type: ignore[attr-defined]
_M = _MEMBERS.c


def assignable(assignees: Any, space: Any, list_id: Any) -> ColumnElement[bool]:
    """Every id of `assignees` is the task's owner (`space`) or a member of its list (`list_id`)."""
    assignee = func.unnest(assignees).table_valued("id").render_derived()
    member = select(_M.member_id).where(
        _M.list_id == list_id, _M.member_id == assignee.c.id, may(_MEMBERS, Action.LIST_READ)
    )
    # Correlated to the task written (whatever names it), never joined to a second copy.
    member = member.correlate_except(_MEMBERS)
    outsider = select(assignee.c.id).where(assignee.c.id != space, ~exists(member))
    outsider = outsider.correlate_except(assignee)
    condition: ColumnElement[bool] = ~exists(outsider)
    return condition
