"""The list tools and lists by name (issue 24, item 5), through the SDK's client against the
real server: an agent lists, creates, renames and deletes lists, and adds, moves and lists
tasks by a list's name as a user says it; an unknown name is an error naming the user's
lists."""

from __future__ import annotations

from sqlalchemy import Engine

from tests.conftest import Account
from tests.mcp.conftest import mcp_client, rest, run, structured, tool_error


def test_an_agent_organises_tasks_in_lists(
    live_server: str, alice: Account, db_engine: Engine
) -> None:
    api = rest(live_server, alice.token)

    async def main() -> None:
        async with mcp_client(live_server, alice.token) as client:
            created = structured(await client.call_tool("create_list", {"name": "Groceries"}))
            assert created == {
                "list_id": created["list_id"],
                "status": "created",
                "name": "Groceries",
            }
            work = structured(
                await client.call_tool("create_list", {"name": "Work", "color": "#ABCDEF"})
            )
            taken = tool_error(await client.call_tool("create_list", {"name": "groceries"}))
            assert taken["code"] == "CONFLICT"
            # A task into a list by its name, as the user says it; a subtask joins its list.
            milk = structured(
                await client.call_tool("add_task", {"title": "milk", "list": "GROCERIES"})
            )
            oat = structured(
                await client.call_tool("add_task", {"title": "oat", "parent_id": milk["task_id"]})
            )
            assert (
                api.get(f"/api/tasks/{oat['task_id']}").json()["data"]["list_id"]
                == created["list_id"]
            )
            listed = structured(await client.call_tool("list_tasks", {"list": "groceries"}))
            assert {t["id"] for t in listed["tasks"]} == {milk["task_id"], oat["task_id"]}
            top = structured(
                await client.call_tool(
                    "list_tasks", {"list_id": created["list_id"], "parent_id": "none"}
                )
            )
            assert [t["id"] for t in top["tasks"]] == [milk["task_id"]]
            assert top["tasks"][0]["subtask_count"] == 1
            assert structured(await client.call_tool("list_tasks", {"list": "Work"}))["tasks"] == []
            # An unknown name names the user's lists.
            unknown = tool_error(
                await client.call_tool("add_task", {"title": "x", "list": "Shopping"})
            )
            assert unknown["code"] == "NOT_FOUND"
            assert (
                unknown["message"] == 'No list named "Shopping". Your lists: "Groceries", "Work".'
            )
            for name, arguments in (
                ("list_tasks", {"list": "Shopping"}),
                ("rename_list", {"list": "Shopping", "name": "x"}),
                ("delete_list", {"list": "Shopping"}),
                ("update_task", {"task_id": milk["task_id"], "list": "Shopping"}),
            ):
                error = tool_error(await client.call_tool(name, arguments))
                assert error["message"] == unknown["message"], (name, error)
            both = tool_error(
                await client.call_tool("add_task", {"title": "x", "list": "Work", "list_id": 1})
            )
            assert both["code"] == "VALIDATION_ERROR"
            # Moves by update_task: to another list by name, with its subtask.
            await client.call_tool("update_task", {"task_id": milk["task_id"], "list": "work"})
            assert (
                api.get(f"/api/tasks/{oat['task_id']}").json()["data"]["list_id"] == work["list_id"]
            )
            lists = structured(await client.call_tool("list_lists", {}))["lists"]
            assert [(x["name"], x["task_count"], x["color"]) for x in lists] == [
                ("Groceries", 0, None),
                ("Work", 2, "#abcdef"),
            ]
            renamed = structured(
                await client.call_tool("rename_list", {"list": "work", "name": "Office"})
            )
            assert renamed == {"list_id": work["list_id"], "status": "renamed", "name": "Office"}
            deleted = structured(await client.call_tool("delete_list", {"list": "office"}))
            assert deleted == {
                "list_id": work["list_id"],
                "status": "deleted",
                "name": "Office",
                "deleted_tasks": 2,
            }
            assert api.get(f"/api/tasks/{milk['task_id']}").status_code == 404
            stats = structured(await client.call_tool("task_stats", {}))
            assert stats["by_list"][0]["name"] == "Groceries"

    run(main)
