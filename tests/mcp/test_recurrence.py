"""Recurring tasks through the MCP tools: add_task and update_task take the rule, its time
zone and reminders; complete_task creates the next occurrence exactly once; list_tasks filters
and shows them; bad rules are tool errors carrying the REST envelope, with nothing written."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account, count_rows
from tests.mcp.conftest import call_tool_rpc, rpc_error


def call(client: TestClient, user: Account, name: str, **arguments: Any) -> dict[str, Any]:
    result = call_tool_rpc(client, "/mcp", user.token, name, arguments)
    assert result["isError"] is False, result
    structured: dict[str, Any] = result["structuredContent"]
    return structured


def test_an_agent_creates_a_recurring_task_and_completing_it_creates_the_next(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    created = call(
        client,
        alice,
        "add_task",
        title="Stand-up notes",
        recurrence="weekdays",
        time_zone="Europe/Berlin",
        due_date="2030-03-29T08:00:00Z",  # Friday 09:00 CET
        reminders=[{"minutes_before_due": 15}],
    )
    task = call(client, alice, "get_task", task_id=created["task_id"])
    assert task["recurrence"] == "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    assert task["time_zone"] == "Europe/Berlin"
    assert task["next_due_date"] == "2030-04-01T07:00:00Z"  # Monday 09:00 CEST
    assert task["reminders"] == [{"minutes_before_due": 15}]
    for _ in range(2):  # complete_task sets, never toggles: the second changes nothing
        assert call(client, alice, "complete_task", task_id=task["id"])["status"] == "completed"
    call(client, alice, "reopen_task", task_id=task["id"])
    call(client, alice, "complete_task", task_id=task["id"])
    listing = call(client, alice, "list_tasks", status="pending", recurring=True)["tasks"]
    [following] = listing
    assert following["due_date"] == "2030-04-01T07:00:00Z"
    assert following["recurrence"] == task["recurrence"]
    assert following["next_due_date"] == "2030-04-02T07:00:00Z"
    assert count_rows(db_engine, "tasks") == 2
    assert call(client, alice, "list_tasks", recurring=False)["tasks"] == []


def test_update_task_changes_and_ends_the_series(client: TestClient, alice: Account) -> None:
    created = call(client, alice, "add_task", title="t", recurrence="daily", due_date="2030-01-01")
    call(client, alice, "update_task", task_id=created["task_id"], recurrence="weekly")
    task = call(client, alice, "get_task", task_id=created["task_id"])
    assert task["next_due_date"] == "2030-01-08T00:00:00Z"
    call(client, alice, "update_task", task_id=created["task_id"], recurrence=None)
    call(client, alice, "complete_task", task_id=created["task_id"])
    assert len(call(client, alice, "list_tasks")["tasks"]) == 1


def test_bad_schedules_are_tool_errors_that_write_nothing(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"recurrence": "FREQ=MINUTELY", "due_date": "2030-01-01"}, "recurrence"),
        ({"recurrence": "daily"}, "body.due_date"),
        (
            {"recurrence": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "due_date": "2030-01-01"},
            "body.recurrence",
        ),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"reminders": [{"minutes_before_due": 10}]}, "body.reminders"),
    ]
    for arguments, field in bad:
        result = call_tool_rpc(client, "/mcp", alice.token, "add_task", {"title": "t", **arguments})
        error = rpc_error(result)
        assert error["code"] == "VALIDATION_ERROR", (arguments, error)
        assert error["details"][0]["field"].endswith(field), (arguments, error)
    assert count_rows(db_engine, "tasks") == 0
