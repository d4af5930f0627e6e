"""The comments' statements pass the scope check (backend/db/scope_check.py `unscoped`: as the
sender compiles them, before they are sent), and it refuses them when the access predicate is
broken on purpose.

The shape that matters most is the create, an `INSERT ... SELECT` whose `user_id` is the
task's (the list owner's space), not the caller's: it is accepted only because the task it
selects from is reached through the access predicate."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import BigInteger, Text, any_, bindparam, delete, func, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, access
from backend.db.scope_check import unscoped
from backend.models import Task
from backend.models.sharing import ListMember, TaskComment
from backend.services.statements.access import Action, roles
from backend.services.tasks.task_children import TaskCommentService

_C = TaskComment.__table__.c  # type: ignore[attr-defined]
_T = Task.__table__.c  # type: ignore[attr-defined]
_TASKS = Task.__table__  # type: ignore[attr-defined]
_COMMENTS = TaskComment.__table__  # type: ignore[attr-defined]
_M = ListMember.__table__.c  # type: ignore[attr-defined]
_ADD = roles(Action.COMMENT_ADD)
_TASK = bindparam("task", type_=BigInteger)
_COMMENT = bindparam("comment", type_=BigInteger)


# The statements a task's child sends (backend/services/tasks/child_rows.py), built for comments.
_ROWS = TaskCommentService.rows
SENT = {
    "page": _ROWS.page,
    "one": _ROWS.one,
    "create": _ROWS.create,
    "edit": _ROWS.edit,
    "delete": _ROWS.delete,
    "create refusal": _ROWS.create_refusal,
    "write refusal": _ROWS.write_refusal,
}


@pytest.mark.parametrize("name", sorted(SENT))
def test_the_comments_statements_pass_the_check(name: str) -> None:
    assert unscoped(SENT[name]) is None


def _create(where: Any, count_where: Any) -> Any:
    count = select(func.count()).where(_C.task_id == _TASK, count_where).scalar_subquery()
    return pg_insert(TaskComment).from_select(
        ["user_id", "task_id", "list_id", "author_id", "body"],
        select(_T.user_id, _T.id, _T.list_id, bindparam(OWNER), bindparam("text")).where(
            _T.id == _TASK, where, count < 10
        ),
    )


# The member arm without its list ids: the owners' ids alone would admit every list of an
# owner who shared any one of them.
_OWNERS_ONLY = _C.user_id == any_(
    func.array(
        select(_M.user_id).where(_M.member_id == bindparam(OWNER)).scalar_subquery(),
        type_=ARRAY(Text),
    )
)
_PAGE_OF_TASK = select(_C.id).where(_C.task_id == _T.id).lateral("c")
BROKEN = {
    # The task by its id alone: a comment in anyone's task.
    "create from any task": _create(true(), access(_COMMENTS, _ADD)),
    # The task reached, the count of its comments by task id alone.
    "create counting any comments": _create(access(_TASKS, _ADD), true()),
    # Authorship is no scope: a removed member would still edit its comments.
    "edit by author alone": update(TaskComment)
    .where(_C.id == _COMMENT, _C.author_id == bindparam(OWNER))
    .values(body=bindparam("text")),
    "delete by owners' ids alone": delete(TaskComment).where(_C.id == _COMMENT, _OWNERS_ONLY),
    # The task reached, its comments by the task's id alone (a child read through its
    # parent: the child must be scoped too).
    "page through the task alone": select(_T.id, _PAGE_OF_TASK.c.id)
    .select_from(_TASKS.outerjoin(_PAGE_OF_TASK, true()))
    .where(_T.id == _TASK, access(_TASKS, roles(Action.COMMENT_READ))),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_check_refuses_a_deliberate_break(name: str) -> None:
    assert unscoped(BROKEN[name]) is not None
