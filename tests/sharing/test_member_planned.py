"""Reads pay for sharing only where there is sharing (issue 49): the member arm of the access
predicate is gated on `task_api_member_planned(caller)` (migration 0046), which the planner
evaluates, so a member of nothing's statements plan no membership, no shared page and no
member's reminders. A listing is one statement form for every caller (issue 60): for a member
of nothing its member arm is planned away, for a member it is planned; a caller who becomes
a member, or stops being one, is answered rightly by the next listing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql

from backend.services.tasks.task_listing import TaskListQuery
from backend.services.tasks.task_statements import listing
from tests.conftest import Account
from tests.sharing.conftest import SharedList
from tests.sharing.helpers import add_member, get, remove_member


def _plan(db_engine: Engine, caller: Account) -> str:
    """The listing's plan as the app's statement is planned: its values sent as literals."""
    shape = TaskListQuery().shape(feed_position=True)
    compiled = listing(shape).compile(dialect=postgresql.dialect())
    values: dict[str, Any] = {**compiled.params, **TaskListQuery().values(), "owner": caller.id}
    with db_engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN (COSTS OFF) {compiled}", values).all()
    return "\n".join(row[0] for row in rows)


def test_a_member_of_nothing_plans_no_sharing(
    db_engine: Engine, shared_list: SharedList, bob: Account
) -> None:
    """The one listing form: a member of nothing's plan reads its own tasks alone (no
    membership, no shared page, no member's reminders, no second `tasks` page); a member's
    plans both arms."""
    alice = shared_list.owner  # owns a list, is a member of none
    plan = _plan(db_engine, alice)
    assert "tasks" in plan
    for shared in ("list_members", "task_member_reminders"):
        assert shared not in plan, plan
    # The member arm is excluded before it is planned (`scope.members_only`): one page of
    # `tasks`, no empty second page to sort and merge.
    assert plan.count("on tasks") == 1 and "One-Time Filter" not in plan, plan
    assert "Append" not in plan, plan
    add_member(db_engine, alice, shared_list.list_id, bob, "viewer")
    plan = _plan(db_engine, bob)
    assert "list_members" in plan, plan
    assert "task_member_reminders" in plan, plan
    assert "Append" in plan, plan  # the two pages merged


def _titles(client: TestClient, caller: Account) -> set[str]:
    return {task["title"] for task in get(client, caller, "/api/tasks")["data"]}


def test_joining_and_leaving_answer_rightly(
    client: TestClient, db_engine: Engine, shared_list: SharedList, bob: Account
) -> None:
    """Bob a member of nothing, then made one, then removed: each listing shows exactly what
    he may read (the statement is the same; the planner decides the member arm each time)."""
    alice = shared_list.owner
    client.post("/api/tasks", json={"title": "Bob's own"}, headers=bob.headers)
    assert _titles(client, bob) == {"Bob's own"}
    add_member(db_engine, alice, shared_list.list_id, bob, "viewer")
    assert _titles(client, bob) == {"Bob's own", "Shared task"}
    remove_member(db_engine, shared_list.list_id, bob)
    assert _titles(client, bob) == {"Bob's own"}
    assert _titles(client, alice) == {"Shared task"}
