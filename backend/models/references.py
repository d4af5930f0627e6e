"""Which request fields name a row, and what the caller must be allowed to do with it: an id
field of a path, body, query or tool (`id`, `*_id`, `*_ids`, `assignee(s)`) carries one marker
in its `Annotated` metadata (docs/contributing; tests/sharing/test_declared.py): `Reference`
(a row the caller needs `action` on: one it cannot read answers as a missing one, byte for
byte; one it reads with a role below, 403), `SUBJECT` (the row the route or tool acts on, whose
action it declares itself) or `NotAReference(why)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    """What a caller does with a list's rows (the least role each needs: access.py `LEAST_ROLE`)."""

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


# The tables the existing references name (`Reference.table`: any table of the metadata).
TASKS = "tasks"
LISTS = "task_lists"
MEMBERS = "list_members"  # a user id that must be the owner or a member of the row's list
INVITATIONS = "list_invitations"  # an invitation of the route's list
USERS = "users"
CONVERSATIONS = "conversations"


@dataclass(frozen=True)
class Reference:
    """The field names a row of `table` on which the caller needs `action` (None: its own)."""

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


# A column's `info` key: why a column naming a row needs no same-user key.
NOT_A_REFERENCE = "not_a_reference"


def not_a_reference(why: str) -> dict[str, str]:
    """A column's `info`, declared where the column is: the key check needs no exemption list."""
    return {NOT_A_REFERENCE: why}
