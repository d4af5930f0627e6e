"""The SDK's own client over Streamable HTTP against the real `serve` command: it lists the
tools and calls every one, and the REST API sees the same tasks at once (and the other way
round). Both connection modes of the client: the initialize handshake and 2026-07-28."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from backend.mcp.tools import TOOLS
from tests.conftest import ROOT, Account
from tests.mcp.conftest import (
    MODES,
    NOT_FOUND,
    mcp_client,
    rest,
    run,
    structured,
    text_json,
    tool_error,
)

# The tools the published contract names (the rest are whatever the server registers: TOOLS).
CONTRACT_TOOLS = {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}
REGISTERED = {tool.name: tool for tool in TOOLS}
PROTOCOL = {"legacy": "2025-11-25", "auto": "2026-07-28"}


def test_every_tool_is_documented() -> None:
    """specs/mcp.md's table has a row for each registered tool, and none for a tool that is
    not (its name, arguments, result and annotations are what an agent's author reads)."""
    documented = re.findall(
        r"^\| `([a-z_]+)` \| .* \| (read-only|write)[^|]*\|$",
        (ROOT / "specs" / "mcp.md").read_text(),
        re.MULTILINE,
    )
    rows = dict(documented)
    assert set(rows) == set(REGISTERED), (
        f"specs/mcp.md's tool table differs from TOOLS: missing "
        f"{sorted(set(REGISTERED) - set(rows))}, stale {sorted(set(rows) - set(REGISTERED))}"
    )
    for name, kind in rows.items():
        assert (kind == "read-only") is REGISTERED[name].read_only, (name, kind)


@pytest.mark.parametrize("mode", MODES)
def test_tools_are_listed_with_schemas_and_annotations(
    live_server: str, alice: Account, mode: str
) -> None:
    async def main() -> None:
        async with mcp_client(live_server, alice.token, mode=mode) as client:
            assert client.protocol_version == PROTOCOL[mode]
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == set(REGISTERED) and set(tools) >= CONTRACT_TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40
            assert tool.input_schema["type"] == "object"
            assert tool.input_schema["additionalProperties"] is False
            assert "user_id" in tool.input_schema["properties"]
            assert tool.output_schema is not None and tool.output_schema["type"] == "object"
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint is REGISTERED[tool.name].read_only
            assert tool.annotations.open_world_hint is False
        add = tools["add_task"].input_schema
        assert add["required"] == ["title"]
        assert set(add["properties"]) >= {"user_id", "title", "description"}
        for name in ("complete_task", "delete_task", "update_task", "get_task"):
            task_id = tools[name].input_schema["properties"]["task_id"]
            assert task_id["type"] == "integer" and task_id["minimum"] == 1
        assert tools["delete_task"].annotations.destructive_hint is True  # type: ignore[union-attr]
        assert tools["add_task"].annotations.destructive_hint is False  # type: ignore[union-attr]
        assert tools["complete_task"].annotations.idempotent_hint is True  # type: ignore[union-attr]

    run(main)


@pytest.mark.parametrize("mode", MODES)
def test_every_tool_agrees_with_the_rest_api(live_server: str, alice: Account, mode: str) -> None:
    api = rest(live_server, alice.token)

    def rest_task(task_id: int) -> dict[str, Any]:
        response = api.get(f"/api/tasks/{task_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def main() -> None:
        async with mcp_client(live_server, alice.token, mode=mode) as client:
            # add_task: the contract's result, in the structured and the text content.
            added = await client.call_tool(
                "add_task", {"user_id": alice.id, "title": " Buy milk ", "description": "2 l"}
            )
            milk = structured(added)
            assert milk == {"task_id": milk["task_id"], "status": "created", "title": "Buy milk"}
            assert text_json(added) == milk
            assert rest_task(milk["task_id"])["description"] == "2 l"
            # Optional arguments beyond the contract, and no user_id at all.
            report = structured(
                await client.call_tool(
                    "add_task",
                    {
                        "title": "Write report",
                        "priority": "high",
                        "due_date": "2020-01-02",
                        "tags": ["Work", "work", "q1"],
                    },
                )
            )
            seen = rest_task(report["task_id"])
            # A plain date is a day (migration 0095), read back as the day.
            assert (seen["priority"], seen["due_date"], seen["all_day"], seen["tags"]) == (
                "high",
                "2020-01-02",
                True,
                ["work", "q1"],
            )
            # A task written through REST is listed through MCP at once.
            from_rest = api.post("/api/tasks", json={"title": "From REST"}).json()["data"]

            listed = await client.call_tool("list_tasks", {"user_id": alice.id})
            assert [t["id"] for t in text_json(listed)] == [
                t["id"] for t in api.get("/api/tasks").json()["data"]
            ]
            assert text_json(listed)[0] == {
                "id": from_rest["id"],
                "title": "From REST",
                "completed": False,
                "priority": "none",
                "due_date": None,
                "all_day": False,
                "tags": [],
                "recurrence": None,
                "next_due_date": None,
                "list_id": None,
                "parent_id": None,
                "subtask_count": 0,
            }
            assert structured(listed) == {"tasks": text_json(listed), "has_more": False}

            # complete_task sets (twice is still completed), never toggles.
            for _ in range(2):
                done = structured(
                    await client.call_tool(
                        "complete_task", {"user_id": alice.id, "task_id": milk["task_id"]}
                    )
                )
                assert done == {
                    "task_id": milk["task_id"],
                    "status": "completed",
                    "title": "Buy milk",
                }
                assert rest_task(milk["task_id"])["completed"] is True
            for status, expected in (("completed", [milk]), ("pending", [from_rest, report])):
                ids = [
                    t["id"]
                    for t in structured(await client.call_tool("list_tasks", {"status": status}))[
                        "tasks"
                    ]
                ]
                rest_ids = [t["id"] for t in api.get(f"/api/tasks?status={status}").json()["data"]]
                assert ids == rest_ids == [t.get("task_id", t.get("id")) for t in expected]

            reopened = structured(
                await client.call_tool("reopen_task", {"task_id": milk["task_id"]})
            )
            assert reopened["status"] == "reopened"
            assert rest_task(milk["task_id"])["completed"] is False

            updated = structured(
                await client.call_tool(
                    "update_task",
                    {"user_id": alice.id, "task_id": milk["task_id"], "title": "Buy oat milk"},
                )
            )
            assert updated == {
                "task_id": milk["task_id"],
                "status": "updated",
                "title": "Buy oat milk",
            }
            assert rest_task(milk["task_id"])["description"] == "2 l"  # not sent: unchanged
            await client.call_tool("update_task", {"task_id": milk["task_id"], "description": None})
            assert rest_task(milk["task_id"])["description"] is None  # null clears, as PATCH

            got = structured(await client.call_tool("get_task", {"task_id": report["task_id"]}))
            assert got == rest_task(report["task_id"])

            # Filters, sort and limit give what the same REST query gives.
            for arguments, query in (
                ({"search": "MILK"}, "q=MILK"),
                ({"priority": ["high"]}, "priority=high"),
                ({"priority": "high"}, "priority=high"),
                ({"tag": "work"}, "tag=work"),
                ({"overdue": True}, "overdue=true"),
                ({"due_before": "2021-01-01"}, "due_before=2021-01-01"),
                ({"sort": "title"}, "sort=title"),
                ({"sort": "title", "order": "desc", "limit": 2}, "sort=title&order=desc&limit=2"),
            ):
                page = structured(await client.call_tool("list_tasks", arguments))
                expected = api.get(f"/api/tasks?{query}").json()
                assert [t["id"] for t in page["tasks"]] == [t["id"] for t in expected["data"]]
                assert page["has_more"] is expected["meta"]["has_more"]

            stats = structured(await client.call_tool("task_stats", {"user_id": alice.id}))
            assert stats == api.get("/api/tasks/stats").json()["data"]
            assert stats["total"] == 3 and stats["overdue"] == 1

            deleted = await client.call_tool(
                "delete_task", {"user_id": alice.id, "task_id": milk["task_id"]}
            )
            assert structured(deleted) == {
                "task_id": milk["task_id"],
                "status": "deleted",
                "title": "Buy oat milk",
            }
            assert api.get(f"/api/tasks/{milk['task_id']}").status_code == 404
            again = await client.call_tool("delete_task", {"task_id": milk["task_id"]})
            assert tool_error(again) == NOT_FOUND

            with pytest.raises(MCPError, match="Unknown tool"):
                await client.call_tool("drop_tables", {})

    run(main)
