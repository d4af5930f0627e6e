"""Which request fields name a row, and what the caller must be allowed to do with that row
(issue 49; specs/api-contract.md, "Shared lists").

A field of a request's path, body or query, or an MCP tool's arguments, that carries an id
(its name is `id`, `*_id`, `*_ids`, `assignee` or `assignees`) declares what it names, where
it is declared, as a marker in its `Annotated` metadata:

- `Reference(table, action)`: a row of `table` that the caller must be allowed to `action`
  (`backend/services/access.py`'s `LEAST_ROLE`: the least role). A row the caller cannot read
  (another user's, the owner's private one, one that does not exist) answers as a missing one,
  byte for byte; a row it can read with a role below the action's is 403 `FORBIDDEN`. `action`
  None: a row only its own user reaches (a conversation, the caller's account), no role does.
- `SUBJECT`: the row the route or tool acts on (a path's `{task_id}`/`{list_id}`, an MCP
  tool's `task_id`/`list_id`), whose action the route or tool declares itself
  (backend/api/actions.py; a tool's `action`).
- `NotAReference(why)`: an id that names no user's row (an OAuth client's public id).

tests/sharing/test_declared.py finds every id-carrying field of every route and tool and fails
on one without a marker; tests/sharing/test_reference_matrix.py sends every `Reference` to a
task, a list or an assignee every kind of row, as every caller, and checks the answer (a
transfer's member, a conversation and a tool's own `user_id` are declared, not in it yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    """What a caller does with a list's rows; the least role each needs is
    `backend/services/access.py`'s `LEAST_ROLE`."""

    LIST_READ = "list.read"  # a list, its tasks, members
    LIST_RENAME = "list.rename"
    LIST_DELETE = "list.delete"
    LIST_TRANSFER = "list.transfer"
    LIST_ORDER = "list.order"  # its place among the owner's lists
    TASK_WRITE = "task.write"  # create, change, complete, move, reorder, delete, assign
    COMMENT_READ = "comment.read"
    COMMENT_ADD = "comment.add"  # and edit or delete one's own
    COMMENT_MODERATE = "comment.moderate"  # delete anyone's
    MEMBER_MANAGE = "member.manage"  # change roles below admin, remove members below admin
    ADMIN_MANAGE = "admin.manage"  # make, demote or remove an admin
    INVITE = "invite"  # create, list and revoke invitations
    UNDO_OTHERS = "activity.undo_others"  # undo a change another member made


# The names of the tables the existing references name (`Reference.table`: any table of the
# metadata; a new resource's reference names its own, `Reference(MyRow.__tablename__, None)`).
TASKS = "tasks"
LISTS = "task_lists"
MEMBERS = "list_members"  # a user id that must be the owner or a member of the row's list
INVITATIONS = "list_invitations"  # an invitation of the route's list
USERS = "users"
CONVERSATIONS = "conversations"


@dataclass(frozen=True)
class Reference:
    """The field names a row of `table` on which the caller needs `action` (None: its own
    row only)."""

    table: str
    action: Action | None


@dataclass(frozen=True)
class Subject:
    """The field names the row the route or tool acts on (its action: the route's or tool's own)."""


@dataclass(frozen=True)
class NotAReference:
    """An id that names no user's row; `why` says what it is."""

    why: str


SUBJECT = Subject()
Marker = Reference | Subject | NotAReference


# A column's `info` key: the column names a row (or an account) but is no same-user reference
# a client sets, and why it needs no key (tests/test_references.py reads it from the tables).
NOT_A_REFERENCE = "not_a_reference"


def not_a_reference(why: str) -> dict[str, str]:
    """A table column's `info` (`Column(..., info=not_a_reference("why"))`): declared where
    the column is, so the same-user key check needs no list of exemptions."""
    return {NOT_A_REFERENCE: why}
