"""Reads pay for sharing only where there is sharing (issue 49): the member arm of the access
predicate is gated on `task_api_member_planned(caller)` (migration 0046), which the planner
evaluates, so a member of nothing's statements plan no membership, no shared page and no
member's reminders; and a listing is sent as one page of every readable task to a caller this
process last saw as a member of nothing (`task_listing.member_pages`). That choice is a hint
only: these tests make it wrong both ways and the answer stays right."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql

from backend.services.task_listing import TaskListQuery, member_pages
from backend.services.task_statements import listing
from tests.conftest import Account
from tests.sharing.conftest import SharedList
from tests.sharing.helpers import add_member, get, remove_member


def _plan(db_engine: Engine, caller: Account, member_page: bool) -> str:
    """The listing's plan as the app's statement is planned: its values sent as literals."""
    shape = TaskListQuery().shape(feed_position=True, member_page=member_page)
    compiled = listing(shape).compile(dialect=postgresql.dialect())
    values: dict[str, Any] = {**compiled.params, **TaskListQuery().values(), "owner": caller.id}
    with db_engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN (COSTS OFF) {compiled}", values).all()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("member_page", [False, True], ids=["one page", "member page"])
def test_a_member_of_nothing_plans_no_sharing(
    db_engine: Engine, shared_list: SharedList, bob: Account, member_page: bool
) -> None:
    alice = shared_list.owner  # owns a list, is a member of none
    plan = _plan(db_engine, alice, member_page)
    assert "tasks" in plan
    for shared in ("list_members", "task_member_reminders"):
        assert shared not in plan, plan
    add_member(db_engine, alice, shared_list.list_id, bob, "viewer")
    plan = _plan(db_engine, bob, member_page)
    assert "list_members" in plan, plan
    assert "task_member_reminders" in plan, plan


def _titles(client: TestClient, caller: Account) -> set[str]:
    return {task["title"] for task in get(client, caller, "/api/tasks")["data"]}


def test_a_wrong_hint_still_answers_rightly(
    client: TestClient, db_engine: Engine, shared_list: SharedList, bob: Account
) -> None:
    """Bob last seen as a member of nothing, then made one; then seen as a member, then
    removed: each listing shows exactly what he may read, and corrects the hint."""
    alice = shared_list.owner
    client.post("/api/tasks", json={"title": "Bob's own"}, headers=bob.headers)
    assert _titles(client, bob) == {"Bob's own"}
    assert member_pages.member_page(bob.id) is False
    add_member(db_engine, alice, shared_list.list_id, bob, "viewer")
    assert _titles(client, bob) == {"Bob's own", "Shared task"}
    assert member_pages.member_page(bob.id) is True
    remove_member(db_engine, shared_list.list_id, bob)
    assert _titles(client, bob) == {"Bob's own"}
    assert member_pages.member_page(bob.id) is False
    # A member of nothing whose hint says member reads the member's statement, its member
    # arm planned away.
    member_pages.saw(alice.id, True)
    assert _titles(client, alice) == {"Shared task"}
    assert member_pages.member_page(alice.id) is False
