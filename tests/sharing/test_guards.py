"""The scope check (backend/db/scope_check.py) on the shapes sharing adds, each shown to fail
on a deliberate break: built statements (`unscoped`, compiled as the sender compiles them) and
SQL as sent (`problem`, pyformat: `%(owner)s` is the caller).

The new shapes, each allowed narrowly: an invitation reached by its token's hash (not by its
id), a membership inserted for the caller only (in the list owner's space), and a new owner's
lists read through its membership of the caller's list (a transfer's room check)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert

from backend.db.scope import OWNER, owned
from backend.db.scope_check import problem, unscoped
from backend.models import ListInvitation, ListMember
from backend.models.task_list import TaskList

_I = ListInvitation.__table__  # type: ignore[attr-defined]
_M = ListMember.__table__  # type: ignore[attr-defined]
_L = TaskList.__table__  # type: ignore[attr-defined]


def _joined(member: Any) -> Any:
    used = (
        _I.delete()
        .where(_I.c.token_hash == bindparam("token_hash"))
        .returning(_I.c.user_id, _I.c.list_id, _I.c.role)
        .cte("used")
    )
    return insert(_M).from_select(
        ["user_id", "list_id", "member_id", "role"],
        select(used.c.user_id, used.c.list_id, member, used.c.role),
    )


def test_statement_check_an_invitation_by_its_token_hash_not_by_its_id() -> None:
    assert unscoped(select(_I.c.id).where(_I.c.token_hash == bindparam("h"))) is None
    # The break: an invitation by its id alone, or by a hash compared with a column.
    assert unscoped(select(_I.c.id).where(_I.c.id == bindparam("id"))) is not None
    assert unscoped(select(_I.c.id).where(_I.c.token_hash == _I.c.email)) is not None
    # Another table by a `token_hash`-named bind: no capability.
    assert unscoped(select(_M.c.role).where(_M.c.role == bindparam("h"))) is not None


def test_statement_check_a_membership_inserted_for_the_caller_only() -> None:
    assert unscoped(_joined(bindparam(OWNER))) is None
    values = {"user_id": bindparam("x"), "list_id": 1, "role": "viewer"}
    assert unscoped(insert(_M).values(member_id=bindparam(OWNER), **values)) is None
    # The break: a membership for someone else, in someone else's space.
    assert unscoped(_joined(bindparam("someone"))) is not None
    assert unscoped(insert(_M).values(member_id=bindparam("y"), **values)) is not None
    # The rule is `list_members`' only: an invitation in another's space stays refused.
    invitation = insert(_I).values(
        user_id=bindparam("x"), list_id=1, role="viewer", token_hash="h", invited_by="z"
    )
    assert unscoped(invitation) is not None


def test_statement_check_a_members_lists_through_its_membership() -> None:
    heir = _M.alias("heir")
    theirs = _L.alias("theirs")
    the_heir = owned(select(heir.c.member_id), heir.c.user_id).where(heir.c.list_id == 1)
    room = select(func.count()).where(theirs.c.user_id == the_heir.scalar_subquery())
    assert unscoped(room) is None
    # The breaks: the membership read unscoped, or another column or table in the subquery.
    loose = select(heir.c.member_id).where(heir.c.list_id == 1).scalar_subquery()
    assert unscoped(select(func.count()).where(theirs.c.user_id == loose)) is not None
    listed = owned(select(heir.c.list_id), heir.c.user_id).scalar_subquery()
    assert unscoped(select(func.count()).where(theirs.c.user_id == listed)) is not None
    # Only `task_lists` is read this way.
    others = select(func.count()).where(_I.c.user_id == the_heir.scalar_subquery())
    assert unscoped(others) is not None


def test_sql_an_invitation_by_its_token_hash_not_by_its_id() -> None:
    assert problem("DELETE FROM list_invitations WHERE token_hash = %(token_hash)s") is None
    # The break: by id alone; by a constant rather than a hash the caller holds; by a column;
    # under OR; another table by a hash.
    for sql in (
        "SELECT id FROM list_invitations WHERE id = %(id)s",
        "SELECT id FROM list_invitations WHERE token_hash = 'guess'",
        "SELECT id FROM list_invitations WHERE token_hash = email",
        "SELECT id FROM list_invitations WHERE id = 5 OR token_hash = %(h)s",
        "SELECT role FROM list_members WHERE role = %(h)s",
    ):
        assert problem(sql) is not None, sql


def test_sql_a_membership_inserted_for_the_caller_only() -> None:
    columns = "INSERT INTO list_members (user_id, list_id, member_id, role)"
    used = (
        "WITH used AS (DELETE FROM list_invitations WHERE token_hash = %(token_hash)s "
        "RETURNING user_id, list_id, role) "
    )
    joined = f"{used}{columns} SELECT used.user_id, used.list_id, {{}}, used.role FROM used"
    assert problem(joined.format("%(owner)s")) is None
    assert problem(f"{columns} VALUES ('bob-id', 1, %(owner)s, 'viewer')") is None
    # The break: a membership for someone else (or rows of which one is).
    assert problem(joined.format("'carol-id'")) is not None
    assert problem(joined.format("%(member)s")) is not None
    for sql in (
        f"{columns} VALUES ('bob-id', 1, 'carol-id', 'viewer')",
        f"{columns} VALUES ('bob-id', 1, %(owner)s, 'viewer'), ('bob-id', 2, 'carol-id', 'admin')",
        "INSERT INTO list_invitations (user_id, list_id, role, token_hash, invited_by) "
        "VALUES ('bob-id', 1, 'viewer', 'h', %(owner)s)",
    ):
        assert problem(sql) is not None, sql


def test_sql_a_members_lists_through_its_membership() -> None:
    heir = (
        "(SELECT heir.member_id FROM list_members AS heir WHERE heir.user_id = {} "
        "AND heir.list_id = 1)"
    )
    room = "SELECT count(*) FROM task_lists AS theirs WHERE theirs.user_id = " + heir
    assert problem(room.format("%(owner)s")) is None
    # The breaks: the membership of another user's list, another column, another table.
    assert problem(room.format("'bob-id'")) is not None
    for sql in (
        "SELECT count(*) FROM task_lists AS theirs WHERE theirs.user_id = "
        "(SELECT m.list_id::text FROM list_members AS m WHERE m.user_id = %(owner)s)",
        "SELECT count(*) FROM task_lists AS theirs WHERE theirs.user_id = "
        "(SELECT u.id FROM users AS u WHERE u.email = 'bob@example.com')",
        "SELECT count(*) FROM tasks AS theirs WHERE theirs.user_id = "
        "(SELECT m.member_id FROM list_members AS m WHERE m.user_id = %(owner)s)",
    ):
        assert problem(sql) is not None, sql
