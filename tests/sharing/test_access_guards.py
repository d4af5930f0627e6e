"""Both scoping guards know the access predicate of shared lists, and nothing looser: the
statement check (backend/db/scope.py `unscoped`, before a statement is sent) and the SQL
observer (tests/scoping.py, on every statement a test sends). Each accepted shape is paired
with a deliberate break of it that each guard reports."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import any_, bindparam, func, insert, literal, or_, select, update

from backend.db.scope import OWNER, _memberships, access, shared, unscoped
from backend.models import ListMember, Task
from backend.models.task_list import TaskList
from backend.services.access import Action, roles
from tests import scoping

CALLER = "alice-id"
T = Task.__table__  # type: ignore[attr-defined]
L = TaskList.__table__  # type: ignore[attr-defined]
M = ListMember.__table__  # type: ignore[attr-defined]
READ = roles(Action.LIST_READ)

_LISTS = "ARRAY((SELECT m.list_id FROM list_members m WHERE m.member_id = 'alice-id'))"
_OWNERS = "ARRAY((SELECT m.user_id FROM list_members m WHERE m.member_id = 'alice-id'))"
_ACCESS = f"(t.user_id = 'alice-id' OR (t.list_id = ANY({_LISTS}) AND t.user_id = ANY({_OWNERS})))"
_SPACE = (
    "COALESCE((SELECT l.user_id FROM task_lists l WHERE l.id = 3 AND (l.user_id = 'alice-id' "
    f"OR l.id = ANY({_LISTS}))), 'alice-id')"
)


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT t.id FROM tasks t WHERE t.id = 1 AND {_ACCESS}",
        f"SELECT t.id FROM tasks t WHERE t.list_id = ANY({_LISTS}) AND t.user_id = ANY({_OWNERS})",
        f"UPDATE tasks t SET title = 'x' WHERE t.id = 1 AND {_ACCESS}",
        f"SELECT l.id FROM task_lists l WHERE l.user_id = 'alice-id' OR l.id = ANY({_LISTS})",
        "SELECT m.role FROM list_members m WHERE m.member_id = 'alice-id'",
        f"SELECT t.id FROM tasks t WHERE t.user_id = {_SPACE} AND t.parent_id = 4",
        f"INSERT INTO tasks (user_id, title) SELECT {_SPACE}, 'x'",
    ],
)
def test_the_observer_accepts_the_access_predicate(sql: str) -> None:
    assert scoping.problem(sql, CALLER) is None


@pytest.mark.parametrize(
    "sql",
    [
        # An OR arm that is not an access arm.
        "SELECT t.id FROM tasks t WHERE t.user_id = 'alice-id' OR t.list_id = 5",
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
        "task_lists l WHERE l.id = 3), 'alice-id')",
        "SELECT t.id FROM tasks t WHERE t.user_id = COALESCE((SELECT l.user_id FROM "
        "task_lists l WHERE l.user_id = 'alice-id'), 'bob-id')",
        "INSERT INTO tasks (user_id, title) SELECT COALESCE((SELECT l.user_id FROM task_lists l "
        "WHERE l.id = 3), 'alice-id'), 'x'",
    ],
)
def test_the_observer_reports_a_broken_access_predicate(sql: str) -> None:
    assert scoping.problem(sql, CALLER) is not None


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
