"""What each role may do with a shared list (`LEAST_ROLE`; specs/api-contract.md, "Shared lists"),
and the one way a service applies it: it names the action, never the predicate nor a role
(tests/sharing/test_access_only.py). A non-member gets the missing row's 404, byte for byte; a
member below the least role 403 `FORBIDDEN`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, literal_column, or_
from sqlalchemy.sql.elements import ColumnElement

from backend.db.scope import OWNER, access, caller_role, shared
from backend.errors import Forbidden, NotFound
from backend.models.references import Action
from backend.models.sharing import Role

__all__ = [
    "LEAST_ROLE",
    "Action",
    "allows",
    "denied",
    "least_role",
    "may",
    "may_manage",
    "may_shared",
    "members_may",
    "needed_for",
    "owns",
    "refuse",
    "require",
    "role_in",
    "role_may",
    "roles",
]


LEAST_ROLE: dict[Action, Role] = {
    Action.LIST_READ: Role.viewer,
    Action.COMMENT_READ: Role.viewer,
    Action.COMMENT_ADD: Role.commenter,
    Action.TASK_WRITE: Role.editor,
    Action.LIST_RENAME: Role.admin,
    Action.COMMENT_MODERATE: Role.admin,
    Action.MEMBER_MANAGE: Role.admin,
    Action.INVITE: Role.admin,
    # Undoing another member's change (one's own needs TASK_WRITE on the task).
    Action.UNDO_OTHERS: Role.admin,
    Action.ADMIN_MANAGE: Role.owner,
    Action.LIST_DELETE: Role.owner,
    Action.LIST_TRANSFER: Role.owner,
    Action.LIST_ORDER: Role.owner,
}


def least_role(action: Action) -> str:
    """The least role `action` needs, by name (a route's OpenAPI says it: api/actions.py)."""
    return LEAST_ROLE[action].value


def roles(action: Action) -> tuple[str, ...]:
    """The member roles that may `action` (the owner always may: its rows are in its space)."""
    return LEAST_ROLE[action].at_least()


def allows(role: Role | str | None, action: Action) -> bool:
    """Whether a caller holding `role` in a list (None: not a member) may perform `action`."""
    return role is not None and Role(role).rank >= LEAST_ROLE[action].rank


def permitted(role: Role | str | None, *actions: Action) -> frozenset[Action]:
    """Which of `actions` `role` may: what a client is told (DAV privileges), never a check."""
    return frozenset(action for action in actions if allows(role, action))


def refuse(role: Role | str | None, action: Action, missing: NotFound) -> Forbidden | NotFound:
    """A write that matched no row: `missing` for no member, else 403 below the role."""
    if role is None:
        return missing
    return Forbidden(
        f"Your role in this list ({Role(role).value}) does not allow this; "
        f"it needs {LEAST_ROLE[action].value}"
    )


# The relation services reach a shared table through: the table and the action, bound to `owner`.


def may(table: Any, action: Action) -> ColumnElement[bool]:
    """The rows of `table` the caller may `action`: its own space's, or a list's by its role."""
    return access(table, roles(action))


def may_shared(table: Any, action: Action) -> ColumnElement[bool]:
    """`may`'s member arm alone (a read taking the caller's own space in an arm of its own)."""
    return shared(table, roles(action))


def may_manage(table: Any, action: Action) -> ColumnElement[bool]:
    """The rows of `table` (a `role` column) the caller may `action`; one holding `admin` needs
    `Action.ADMIN_MANAGE` besides: only the list's owner acts on an admin."""
    return and_(
        may(table, action),
        or_(table.c.user_id == bindparam(OWNER), table.c.role != Role.admin.value),
    )


def role_in(table: Any) -> ColumnElement[str]:
    """The caller's role in the list of a row of `table` (`owner`, a member's, NULL: none)."""
    return caller_role(table)


def role_may(role: ColumnElement[str], action: Action) -> ColumnElement[bool]:
    """Whether a role read with `role_in` may `action`, the roles written in: one plan for all."""
    enough: list[Any] = [literal_column(f"'{each}'") for each in (Role.owner.value, *roles(action))]
    return role.in_(enough)


def members_may(action: Action) -> bool:
    """Whether some member role may `action` (else the list's owner alone: no member arm)."""
    return bool(roles(action))


def needed_for(role: Role | str | None, action: Action) -> Action:
    """What `action` needs on an admin's membership, invitation or role: the owner's."""
    return Action.ADMIN_MANAGE if role == Role.admin else action


def owns(role: Role | str | None) -> bool:
    """Whether `role` (read with `role_in`) is the list's owner's."""
    return role == Role.owner


def denied(
    role: Role | str | None, action: Action, missing: NotFound, *, forbidden: str = ""
) -> Forbidden | NotFound | None:
    """What a caller holding `role` (None: no member) meets asking to `action`: nothing when it may,
    `missing` when no member, 403 when its role is below the action's."""
    if allows(role, action):
        return None
    if forbidden and role is not None:
        return Forbidden(forbidden)
    return refuse(role, action, missing)


def require(
    role: Role | str | None, action: Action, missing: NotFound, *, forbidden: str = ""
) -> None:
    """Raise `denied`'s error, if any."""
    refused = denied(role, action, missing, forbidden=forbidden)
    if refused is not None:
        raise refused
