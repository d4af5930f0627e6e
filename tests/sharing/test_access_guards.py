"""The scope check (backend/db/scope_check.py) knows the access predicate of shared lists, and
nothing looser: on SQL as sent (`problem`; `%(owner)s` is the caller) and on built statements
compiled as the sender compiles them (`unscoped`). Each accepted shape is paired with a
deliberate break of it that the check reports."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import any_, bindparam, func, insert, literal, or_, select, update

from backend.db.scope import OWNER, _memberships, access, shared
from backend.db.scope_check import problem, unscoped
from backend.models import ListMember, Task
from backend.models.task_list import TaskList
from backend.services.statements.access import Action, roles

T = Task.__table__  # type: ignore[attr-defined]
L = TaskList.__table__  # type: ignore[attr-defined]
M = ListMember.__table__  # type: ignore[attr-defined]
READ = roles(Action.LIST_READ)

_LISTS = "ARRAY((SELECT m.list_id FROM list_members m WHERE m.member_id = %(owner)s))"
_OWNERS = "ARRAY((SELECT m.user_id FROM list_members m WHERE m.member_id = %(owner)s))"
_ACCESS = f"(t.user_id = %(owner)s OR (t.list_id = ANY({_LISTS}) AND t.user_id = ANY({_OWNERS})))"
_SPACE = (
    "COALESCE((SELECT l.user_id FROM task_lists l WHERE l.id = 3 AND (l.user_id = %(owner)s "
    f"OR l.id = ANY({_LISTS}))), %(owner)s)"
)


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT t.id FROM tasks t WHERE t.id = 1 AND {_ACCESS}",
        f"SELECT t.id FROM tasks t WHERE t.list_id = ANY({_LISTS}) AND t.user_id = ANY({_OWNERS})",
        f"UPDATE tasks t SET title = 'x' WHERE t.id = 1 AND {_ACCESS}",
        f"SELECT l.id FROM task_lists l WHERE l.user_id = %(owner)s OR l.id = ANY({_LISTS})",
        "SELECT m.role FROM list_members m WHERE m.member_id = %(owner)s",
        f"SELECT t.id FROM tasks t WHERE t.user_id = {_SPACE} AND t.parent_id = 4",
        f"INSERT INTO tasks (user_id, title) SELECT {_SPACE}, 'x'",
    ],
)
def test_the_check_accepts_the_access_predicate_as_sent(sql: str) -> None:
    assert problem(sql) is None


@pytest.mark.parametrize(
    "sql",
    [
        # An OR arm that is not an access arm.
        "SELECT t.id FROM tasks t WHERE t.user_id = %(owner)s OR t.list_id = 5",
        # The owners' array alone: every task of every owner who shared a list with alice.
        f"SELECT t.id FROM tasks t WHERE t.user_id = ANY({_OWNERS})",
        # A task id compared with list ids.
        f"SELECT t.id FROM tasks t WHERE t.id = ANY({_LISTS})",
        # Another member's memberships.
        "SELECT t.id FROM tasks t WHERE t.list_id = ANY(ARRAY((SELECT m.list_id FROM "
        "list_members m WHERE m.member_id = 'bob-id')))",
        # A constant array of list ids.
        "SELECT t.id FROM tasks t WHERE t.list_id = ANY('{1,2}')",
        # Memberships read by list, not by member.
        "SELECT m.member_id FROM list_members m WHERE m.list_id = 7",
        # A space read without the access predicate, or falling back to someone else.
        "SELECT t.id FROM tasks t WHERE t.user_id = COALESCE((SELECT l.user_id FROM "
        "task_lists l WHERE l.id = 3), %(owner)s)",
        "SELECT t.id FROM tasks t WHERE t.user_id = COALESCE((SELECT l.user_id FROM "
        "task_lists l WHERE l.user_id = %(owner)s), 'bob-id')",
        "INSERT INTO tasks (user_id, title) SELECT COALESCE((SELECT l.user_id FROM task_lists l "
        "WHERE l.id = 3), %(owner)s), 'x'",
    ],
)
def test_the_check_reports_a_broken_access_predicate_as_sent(sql: str) -> None:
    assert problem(sql) is not None


def _space() -> Any:
    owner = select(L.c.user_id).where(L.c.id == 3, access(L, READ)).scalar_subquery()
    return func.coalesce(owner, bindparam(OWNER))


@pytest.mark.parametrize(
    "statement",
    [
        select(T.c.id).where(T.c.id == 1, access(T, READ)),
        select(T.c.id).where(shared(T, READ)),
        update(T).where(T.c.id == 1, access(T, roles(Action.TASK_WRITE))).values(title="x"),
        select(L.c.id).where(access(L, READ)),
        select(M.c.role).where(M.c.member_id == bindparam(OWNER)),
        select(M.c.role).where(access(M, READ)),
        select(T.c.id).where(T.c.user_id == _space()),
        insert(T).from_select(["user_id", "title"], select(_space(), literal("x"))),
    ],
)
def test_the_statement_check_accepts_the_access_predicate(statement: Any) -> None:
    assert unscoped(statement) is None


@pytest.mark.parametrize(
    "statement",
    [
        select(T.c.id).where(or_(T.c.user_id == bindparam(OWNER), T.c.list_id == 5)),
        select(T.c.id).where(T.c.user_id == any_(_memberships(READ, "user_id"))),
        select(T.c.id).where(T.c.id == any_(_memberships(READ, "list_id"))),
        select(M.c.member_id).where(M.c.list_id == 7),
        select(T.c.id).where(
            T.c.user_id
            == func.coalesce(
                select(L.c.user_id).where(L.c.id == 3).scalar_subquery(), bindparam(OWNER)
            )
        ),
        select(T.c.id).where(
            T.c.user_id
            == func.coalesce(
                select(L.c.name).where(access(L, READ)).scalar_subquery(), bindparam(OWNER)
            )
        ),
    ],
)
def test_the_statement_check_reports_a_broken_access_predicate(statement: Any) -> None:
    assert unscoped(statement) is not None
