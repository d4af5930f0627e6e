"""Comments on tasks (issue 39; specs/api-contract.md, "Shared lists"): `task_comments`,
migration 0029.

A comment lives where its task lives: in the task's owner's space (`user_id`), with the task's
list (`list_id`, kept in step by the trigger `tasks_move_comments`), so every statement
reaches comments and their task through the one access relation, naming the action
(backend/services/access.py `may`). Each request is one
statement, and a write commits itself in it (`_write(last=True)`: one round trip); a write
that matched nothing reads why on its own (the failure path alone pays that round trip), in
the order the contract gives: a caller who cannot see the task gets the 404 a missing task
gets, a member below the role 403, then a comment that is not the task's 404, then a comment
that is not the caller's 403.
"""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    bindparam,
    delete,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Scoped
from backend.errors import Conflict, Forbidden, LimitReached, NotFound
from backend.models import Task
from backend.models.sharing import ListMember, TaskComment
from backend.models.task_children import COMMENTS_PER_TASK
from backend.services.access import Action, may, may_shared, require, role_in

__all__ = ["COMMENTS_PER_TASK", "CommentService"]

TASK_NOT_FOUND = "Task not found"
COMMENT_NOT_FOUND = "Comment not found"
NOT_THE_AUTHOR = "Only a comment's author may edit it"
NOT_THE_AUTHOR_OR_ADMIN = "Only a comment's author, or an admin of the list, may delete it"

_COMMENTS = TaskComment.__table__  # type: ignore[attr-defined]
_C = _COMMENTS.c
_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
_M = ListMember.__table__.c  # type: ignore[attr-defined]

# Named unlike any column (an INSERT or UPDATE takes a column's name as its value's).
_TASK_ID = bindparam("task", type_=BigInteger)
_COMMENT_ID = bindparam("comment", type_=BigInteger)
_AFTER = bindparam("after", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)
_BODY = bindparam("text", type_=Text)

# What every statement that hands a comment to the API returns.
COMMENT_VIEW = (_C.id, _C.task_id, _C.author_id, _C.body, _C.created_at, _C.updated_at)


def _comments_of_task(action: Action) -> Any:
    """The task's comments the caller may `action` (a task's comments share its space and
    list, so they are exactly as reachable as it is)."""
    return may(_COMMENTS, action)


# A page of a task's comments, oldest first, after the keyset `:after` (0: from the start),
# with the task in the same statement: no row at all is a task the caller cannot see, one row
# with no comment (`id` NULL) an empty page.
_PAGE_OF = (
    select(*COMMENT_VIEW)
    .where(_C.task_id == _T.id, _C.id > _AFTER, _comments_of_task(Action.COMMENT_READ))
    .order_by(_C.id)
    .limit(_LIMIT)
    .lateral("c")
)
_PAGE = (
    select(
        _T.id.label("found_task_id"),
        *(_PAGE_OF.c[column.name] for column in COMMENT_VIEW),
    )
    .select_from(_TASKS.outerjoin(_PAGE_OF, true()))
    .where(_T.id == _TASK_ID, may(_TASKS, Action.COMMENT_READ))
    .order_by(_PAGE_OF.c.id)
)

# One comment of the task, with the task in the same statement: no row, a task the caller
# cannot see; a row with no comment (`id` NULL), no such comment of this task.
_ONE_OF = (
    select(*COMMENT_VIEW)
    .where(_C.id == _COMMENT_ID, _C.task_id == _T.id, _comments_of_task(Action.COMMENT_READ))
    .lateral("c")
)
_ONE = (
    select(_T.id.label("found_task_id"), *(_ONE_OF.c[column.name] for column in COMMENT_VIEW))
    .select_from(_TASKS.outerjoin(_ONE_OF, true()))
    .where(_T.id == _TASK_ID, may(_TASKS, Action.COMMENT_READ))
)

# The comments the task has: at most COMMENTS_PER_TASK.
_COUNT = (
    select(func.count())
    .where(_C.task_id == _TASK_ID, _comments_of_task(Action.COMMENT_ADD))
    .scalar_subquery()
)
# A new comment, in the task's space and list, by the caller: only on a task the caller may
# comment on, under the cap (the insert selects nothing otherwise; why is read afterwards).
_CREATE = (
    pg_insert(TaskComment)
    .from_select(
        ["user_id", "task_id", "list_id", "author_id", "body"],
        select(_T.user_id, _T.id, _T.list_id, bindparam(OWNER), _BODY).where(
            _T.id == _TASK_ID, may(_TASKS, Action.COMMENT_ADD), _COUNT < COMMENTS_PER_TASK
        ),
    )
    .returning(*COMMENT_VIEW)
)
_THIS_COMMENT = (_C.id == _COMMENT_ID, _C.task_id == _TASK_ID)
# The caller's own comment, while it may still comment in the task's list.
_EDIT = (
    update(TaskComment)
    .where(*_THIS_COMMENT, _C.author_id == bindparam(OWNER), _comments_of_task(Action.COMMENT_ADD))
    .values(body=_BODY, updated_at=func.now())
    .returning(*COMMENT_VIEW)
)
# The caller's own comment (commenter+), or anyone's for an admin of the list (or its owner).
_DELETE = (
    delete(TaskComment)
    .where(
        *_THIS_COMMENT,
        _comments_of_task(Action.COMMENT_ADD),
        or_(
            _C.author_id == bindparam(OWNER),
            _C.user_id == bindparam(OWNER),
            may_shared(_COMMENTS, Action.COMMENT_MODERATE),
        ),
    )
    .returning(_C.id)
)

# Why a write matched nothing, read on its own: the caller's role in the task (no row: the
# caller cannot see it, the answer a missing task gets), its comment count, and the comment
# named (NULL `comment_found`: none of this task's) with its author.
_ROLE = role_in(_TASKS)
_CREATE_REFUSAL = select(
    _ROLE.label("role"),
    select(func.count())
    .where(_C.task_id == _T.id, _comments_of_task(Action.COMMENT_READ))
    .scalar_subquery()
    .label("comments"),
).where(_T.id == _TASK_ID, may(_TASKS, Action.COMMENT_READ))
_NAMED = (
    select(_C.id, _C.author_id)
    .where(_C.id == _COMMENT_ID, _C.task_id == _T.id, _comments_of_task(Action.COMMENT_READ))
    .lateral("named")
)
_WRITE_REFUSAL = (
    select(
        _ROLE.label("role"),
        _NAMED.c.id.label("comment_found"),
        _NAMED.c.author_id,
    )
    .select_from(_TASKS.outerjoin(_NAMED, true()))
    .where(_T.id == _TASK_ID, may(_TASKS, Action.COMMENT_READ))
)


class CommentService(Scoped):
    def page(self, task_id: int, limit: int, after: int | None) -> tuple[list[Any], bool]:
        """A page of the task's comments, oldest first, after the comment id `after`; whether
        more follow. One statement: a task the caller cannot see is the 404 a missing one
        gets."""
        rows = self._read(_PAGE, task=task_id, after=after or 0, limit=limit + 1)
        if not rows:
            raise NotFound(TASK_NOT_FOUND)
        found = sorted((row for row in rows if row.id is not None), key=lambda row: row.id)
        return found[:limit], len(found) > limit

    def get(self, task_id: int, comment_id: int) -> Any:
        """One comment of the task. One statement: a task the caller cannot see is the 404 a
        missing one gets, then a comment that is not the task's."""
        found = self._read(_ONE, task=task_id, comment=comment_id).first()
        if found is None:
            raise NotFound(TASK_NOT_FOUND)
        if found.id is None:
            raise NotFound(COMMENT_NOT_FOUND)
        return found

    def create(self, task_id: int, body: str) -> Any:
        """Add the caller's comment to the task (commenter+, or the task's owner)."""
        rows = self._write(_CREATE, task=task_id, text=body, last=True)
        if rows:
            return rows[0]
        found = self._read(_CREATE_REFUSAL, task=task_id).first()
        if found is None:
            raise NotFound(TASK_NOT_FOUND)
        role, count = tuple(found)
        require(role, Action.COMMENT_ADD, NotFound(TASK_NOT_FOUND))
        if count >= COMMENTS_PER_TASK:
            raise LimitReached(
                f"This task has {count} comments, the most there can be ({COMMENTS_PER_TASK})"
            )
        raise Conflict("The task changed while the comment was being added; retry")

    def edit(self, task_id: int, comment_id: int, body: str) -> Any:
        """Change the body of the caller's own comment (while it may still comment)."""
        rows = self._write(_EDIT, task=task_id, comment=comment_id, text=body, last=True)
        if rows:
            return rows[0]
        self._refuse(task_id, comment_id, moderate=False)

    def delete(self, task_id: int, comment_id: int) -> None:
        """Delete the caller's own comment (commenter+), or anyone's (admin+)."""
        if self._write(_DELETE, task=task_id, comment=comment_id, last=True):
            return
        self._refuse(task_id, comment_id, moderate=True)

    def _refuse(self, task_id: int, comment_id: int, *, moderate: bool) -> NoReturn:
        """A write of a comment matched nothing: say why, membership before role before
        authorship."""
        found = self._read(_WRITE_REFUSAL, task=task_id, comment=comment_id).first()
        if found is None:
            raise NotFound(TASK_NOT_FOUND)
        role, comment_found, author_id = tuple(found)
        require(role, Action.COMMENT_ADD, NotFound(TASK_NOT_FOUND))
        if comment_found is None:
            raise NotFound(COMMENT_NOT_FOUND)
        if author_id != self.user_id:
            if not moderate:
                raise Forbidden(NOT_THE_AUTHOR)
            missing = NotFound(TASK_NOT_FOUND)
            require(role, Action.COMMENT_MODERATE, missing, forbidden=NOT_THE_AUTHOR_OR_ADMIN)
        raise Conflict("The comment changed while it was being written; retry")
