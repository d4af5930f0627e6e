"""Tasks due on a day through the MCP tools (specs/api-contract.md, "Due on a day or at an
instant"): add_task takes a plain date as a day on the task's clock, and get_task and
list_tasks return it as that day (`all_day`), never as the instant it is stored at; an
instant stays an instant; a series on days stays on days."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.mcp.test_recurrence import call


def test_add_task_on_a_day_returns_the_day(client: TestClient, alice: Account) -> None:
    created = call(
        client,
        alice,
        "add_task",
        title="Pay rent",
        due_date="2030-12-01",
        time_zone="Pacific/Auckland",  # the day starts at 2030-11-30T11:00:00Z
    )
    assert created["status"] == "created"
    task = call(client, alice, "get_task", task_id=created["task_id"])
    assert (task["due_date"], task["all_day"], task["time_zone"]) == (
        "2030-12-01",
        True,
        "Pacific/Auckland",
    )
    instant = call(client, alice, "add_task", title="Call", due_date="2030-12-01T17:00:00+01:00")
    listed = call(client, alice, "list_tasks", sort="due_date", order="asc")["tasks"]
    assert [(t["id"], t["due_date"], t["all_day"]) for t in listed] == [
        (created["task_id"], "2030-12-01", True),
        (instant["task_id"], "2030-12-01T16:00:00Z", False),
    ]
    # A zone change keeps the day.
    call(client, alice, "update_task", task_id=created["task_id"], time_zone="America/New_York")
    moved = call(client, alice, "get_task", task_id=created["task_id"])
    assert (moved["due_date"], moved["all_day"]) == ("2030-12-01", True)


def test_a_series_on_days_stays_on_days(client: TestClient, alice: Account) -> None:
    created = call(
        client,
        alice,
        "add_task",
        title="Water plants",
        due_date="2030-12-01",
        time_zone="Pacific/Auckland",
        recurrence="weekly",
    )
    call(client, alice, "complete_task", task_id=created["task_id"])
    [following] = call(client, alice, "list_tasks", status="pending")["tasks"]
    assert (following["due_date"], following["all_day"]) == ("2030-12-08", True)
