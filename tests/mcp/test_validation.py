"""Bad arguments get the REST API's validation error (code, message, and per-field details
with the same messages) as a tool error, and write nothing; the per-user write limit holds
for MCP writes as for REST writes, and over it a tool gets the rate-limit error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.config import Settings
from backend.main import create_app
from backend.models.task import TASK_ID_MAX
from tests.conftest import Account, count_rows
from tests.mcp.conftest import (
    call_tool_rpc,
    mcp_client,
    rest,
    rpc_error,
    run,
    structured,
    tool_error,
)

TITLE_200 = "t" * 200
# (tool, arguments, the field the first detail names; None: the arguments as a whole)
BAD_CALLS: list[tuple[str, dict[str, Any], str | None]] = [
    ("add_task", {}, "title"),
    ("add_task", {"title": 5}, "title"),
    ("add_task", {"title": ["a"]}, "title"),
    ("add_task", {"title": ""}, "title"),
    ("add_task", {"title": "   "}, "title"),
    ("add_task", {"title": TITLE_200 + "t"}, "title"),
    ("add_task", {"title": "nul\x00byte"}, "title"),
    ("add_task", {"title": "ok", "description": "nul\x00byte"}, "description"),
    ("add_task", {"title": "ok", "description": "d" * 2001}, "description"),
    ("add_task", {"title": "ok", "user_id": "nul\x00byte"}, "user_id"),
    ("add_task", {"title": "ok", "user_id": 42}, "user_id"),
    ("add_task", {"title": "ok", "priority": "urgent"}, "priority"),
    ("add_task", {"title": "ok", "due_date": "tomorrow"}, "due_date"),
    ("add_task", {"title": "ok", "due_date": 1_700_000_000}, "due_date"),
    ("add_task", {"title": "ok", "due_date": "2026-12-01T17:00:00"}, "due_date"),
    ("add_task", {"title": "ok", "tags": ["t" * 33]}, "tags.0"),
    ("add_task", {"title": "ok", "tags": [f"t{n}" for n in range(21)]}, "tags"),
    ("add_task", {"title": "ok", "completed": True}, "completed"),
    ("add_task", {"title": "ok", "id": 7}, "id"),
    ("get_task", {}, "task_id"),
    ("get_task", {"task_id": "1"}, "task_id"),
    ("get_task", {"task_id": 1.0}, "task_id"),
    ("get_task", {"task_id": True}, "task_id"),
    ("get_task", {"task_id": None}, "task_id"),
    ("get_task", {"task_id": 0}, "task_id"),
    ("get_task", {"task_id": -1}, "task_id"),
    ("complete_task", {"task_id": TASK_ID_MAX + 1}, "task_id"),
    ("delete_task", {"task_id": 10**30}, "task_id"),
    ("reopen_task", {"task_id": "one"}, "task_id"),
    ("update_task", {"task_id": 1, "title": None}, "title"),
    ("update_task", {"task_id": 1, "title": ""}, "title"),
    ("update_task", {"task_id": 1, "tags": None}, "tags"),
    ("update_task", {"task_id": 1, "priority": None}, "priority"),
    ("update_task", {"task_id": 1, "title": "x" * 201}, "title"),
    ("list_tasks", {"limit": 0}, "limit"),
    ("list_tasks", {"limit": 501}, "limit"),
    ("list_tasks", {"limit": "10"}, "limit"),
    ("list_tasks", {"status": "done"}, "status"),
    ("list_tasks", {"overdue": "yes"}, "overdue"),
    ("list_tasks", {"sort": "random"}, "sort"),
    ("list_tasks", {"search": "s" * 201}, "search"),
    ("list_tasks", {"priority": ["high"] * 11}, "priority"),
    ("task_stats", {"verbose": True}, "verbose"),
]


def test_bad_arguments_are_validation_errors_and_write_nothing(
    live_server: str, alice: Account, db_engine: Engine
) -> None:
    api = rest(live_server, alice.token)
    original = api.post("/api/tasks", json={"title": "original"}).json()["data"]

    async def main() -> None:
        async with mcp_client(live_server, alice.token) as client:
            for name, arguments, field in BAD_CALLS:
                if name == "update_task":  # an existing task, so only the fields are at fault
                    arguments = {**arguments, "task_id": original["id"]}
                error = tool_error(await client.call_tool(name, arguments))
                assert error["code"] == "VALIDATION_ERROR", (name, arguments, error)
                assert error["message"] == "Request validation failed"
                named = error["details"][0]["field"]
                # A union's detail names its branch too: due_date.datetime.
                assert named == field or named.startswith(f"{field}."), (name, arguments, error)
            # At the bounds: accepted.
            edge = await client.call_tool("add_task", {"title": TITLE_200})
            assert structured(edge)["title"] == TITLE_200
            big = await client.call_tool("get_task", {"task_id": TASK_ID_MAX})
            assert tool_error(big)["code"] == "NOT_FOUND"

    run(main)
    assert count_rows(db_engine, "tasks") == 2
    assert api.get(f"/api/tasks/{original['id']}").json()["data"] == original


def test_validation_details_match_the_rest_api(live_server: str, alice: Account) -> None:
    api = rest(live_server, alice.token)
    bodies: list[dict[str, Any]] = [
        {"title": ""},
        {"title": "x" * 201},
        {"title": "a\x00b"},
        {"title": "ok", "due_date": "2026-12-01T17:00:00"},
        {"title": "ok", "tags": ["t" * 33]},
        {"title": "ok", "priority": "urgent"},
    ]

    async def main() -> None:
        async with mcp_client(live_server, alice.token) as client:
            for body in bodies:
                mcp_error = tool_error(await client.call_tool("add_task", body))
                rest_error = api.post("/api/tasks", json=body).json()["error"]
                assert mcp_error["code"] == rest_error["code"]
                assert mcp_error["message"] == rest_error["message"]
                assert [(d["field"], d["message"], d["type"]) for d in mcp_error["details"]] == [
                    (d["field"].removeprefix("body."), d["message"], d["type"])
                    for d in rest_error["details"]
                ]

    run(main)


# One-hour windows (fixed, aligned to the hour) so a test does not straddle a boundary.
LIMITS = {
    "rate_limit_enabled": True,
    "rate_limit_task_window_seconds": 3600,
    "rate_limit_task_writes_per_user": 3,
}


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    to_boundary = 3600 - time.time() % 3600
    if to_boundary < 60:
        time.sleep(to_boundary + 1)
    with TestClient(create_app(settings.model_copy(update=LIMITS))) as client:
        yield client


def _token(client: TestClient, email: str) -> str:
    response = client.post("/api/auth/register", json={"email": email, "password": "pass-1234"})
    assert response.status_code == 201, response.text
    token: str = response.json()["data"]["access_token"]
    return token


def test_a_write_limited_user_gets_the_rate_limit_error(
    limited: TestClient, db_engine: Engine
) -> None:
    token = _token(limited, "busy@example.com")
    for n in range(3):
        created = call_tool_rpc(limited, "/mcp", token, "add_task", {"title": f"t{n}"})
        assert created["isError"] is False
    refused = rpc_error(call_tool_rpc(limited, "/mcp", token, "complete_task", {"task_id": 1}))
    rest_429 = limited.post(
        "/api/tasks", json={"title": "rest"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert rest_429.status_code == 429
    assert refused["code"] == rest_429.json()["error"]["code"] == "RATE_LIMITED"
    assert refused["message"] == rest_429.json()["error"]["message"]
    assert 1 <= refused["retry_after"] <= 3600
    # Reads are not limited; nothing more was written.
    listed = call_tool_rpc(limited, "/mcp", token, "list_tasks", {"status": "completed"})
    assert listed["structuredContent"]["tasks"] == []
    assert count_rows(db_engine, "tasks") == 3


def test_refused_writes_count_like_rest_ones(limited: TestClient, db_engine: Engine) -> None:
    token = _token(limited, "careless@example.com")
    for _ in range(3):
        invalid = rpc_error(call_tool_rpc(limited, "/mcp", token, "add_task", {"title": ""}))
        assert invalid["code"] == "VALIDATION_ERROR"
    for arguments in ({"title": ""}, {"title": "valid"}):
        over = rpc_error(call_tool_rpc(limited, "/mcp", token, "add_task", arguments))
        assert over["code"] == "RATE_LIMITED"
    assert count_rows(db_engine, "tasks") == 0
