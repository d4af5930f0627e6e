"""`python -m backend mcp`: the same tools over stdio for one user, driven by the SDK's stdio
client, on the test database. The user is named by a token (checked on every call) or a user
id; start-up problems are one line on stderr and exit 1, with nothing on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from fastapi.testclient import TestClient
from mcp import Client, StdioServerParameters
from sqlalchemy import Engine

from tests.conftest import ROOT, TEST_SECRET, Account, make_token
from tests.mcp.conftest import NOT_FOUND, run, structured, task_rows, text_json, tool_error


def _env(database_url: str, **extra: str) -> dict[str, str]:
    """What the stdio client passes (on top of its minimal default environment)."""
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SECRET,
        "RATE_LIMIT_ENABLED": "false",
        **extra,
    }


def _server(database_url: str, *args: str, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "backend", "mcp", *args],
        env=_env(database_url, **env),
        cwd=str(ROOT),
    )


def test_stdio_server_for_a_user_id(database_url: str, db_engine: Engine) -> None:
    async def main() -> None:
        async with Client(_server(database_url, "--user", "desktop-user"), cache=None) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"add_task", "list_tasks", "complete_task", "delete_task"} <= tools
            added = structured(
                await client.call_tool("add_task", {"user_id": "desktop-user", "title": "Local"})
            )
            assert added["status"] == "created"
            kept = structured(await client.call_tool("add_task", {"title": "Kept"}))
            done = await client.call_tool("complete_task", {"task_id": added["task_id"]})
            assert structured(done)["status"] == "completed"
            listed = await client.call_tool("list_tasks", {"status": "completed"})
            assert [t["title"] for t in text_json(listed)] == ["Local"]
            stats = structured(await client.call_tool("task_stats", {}))
            assert (stats["total"], stats["completed"]) == (2, 1)
            deleted = await client.call_tool("delete_task", {"task_id": added["task_id"]})
            assert structured(deleted)["title"] == "Local"
            # Another user id is refused, and nothing is written.
            other = await client.call_tool("add_task", {"user_id": "someone", "title": "x"})
            assert tool_error(other) == NOT_FOUND
            got = structured(await client.call_tool("get_task", {"task_id": kept["task_id"]}))
            assert got["user_id"] == "desktop-user"

    run(main)
    assert [(r["user_id"], r["title"]) for r in task_rows(db_engine)] == [("desktop-user", "Kept")]


def test_stdio_server_for_a_token_checks_it_on_every_call(
    database_url: str, client: TestClient, alice: Account, db_engine: Engine
) -> None:
    async def main() -> None:
        server = _server(database_url, TASK_API_TOKEN=alice.token)
        async with Client(server, cache=None) as mcp:
            added = structured(await mcp.call_tool("add_task", {"title": "From the desktop"}))
            seen = client.get(f"/api/tasks/{added['task_id']}", headers=alice.headers)
            assert seen.json()["data"]["title"] == "From the desktop"
            # Signed out everywhere: the next call is refused like a REST request.
            assert client.post("/api/auth/logout-all", headers=alice.headers).status_code == 204
            refused = tool_error(await mcp.call_tool("list_tasks", {}))
            assert refused == {
                "code": "UNAUTHORIZED",
                "message": "This token was revoked",
                "details": [],
            }

    run(main)
    assert len(task_rows(db_engine, alice.id)) == 1


def _start(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command with nothing on stdin: it must refuse before serving."""
    return subprocess.run(
        [sys.executable, "-m", "backend", "mcp", *args],
        cwd=ROOT,
        env={**os.environ, **_env(database_url, **env)},
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stdio_start_up_refuses_a_missing_or_bad_identity(database_url: str) -> None:
    cases: list[tuple[tuple[str, ...], dict[str, Any], str]] = [
        ((), {}, "name the user"),
        (("--user", "a", "--token", "b"), {}, "not allowed with argument"),
        (("--user", "a"), {"TASK_API_TOKEN": "b"}, "name the user"),
        ((), {"TASK_API_TOKEN": "not-a-jwt"}, "the token is invalid or expired"),
        ((), {"TASK_API_TOKEN": make_token(lifetime=-120)}, "the token is invalid or expired"),
        (("--user", " "), {}, "a user id is 1-255 characters"),
    ]
    for args, env, message in cases:
        result = _start(database_url, *args, **env)
        assert result.returncode in {1, 2}, (args, result)
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == "", (args, result.stdout)
