"""The saved-filter tools and `list_tasks`' `filter` (issue 53), through the SDK's client against
the real server: an agent saves a filter, lists tasks by its id or its name (parameters given
beside it replace its own), renames and deletes it; another user's filter is a missing one."""

from __future__ import annotations

from tests.conftest import Account
from tests.mcp.conftest import mcp_client, rest, run, structured, tool_error


def test_an_agent_saves_and_applies_filters(live_server: str, alice: Account, bob: Account) -> None:
    api = rest(live_server, alice.token)
    for title, priority in (("pay rent", "high"), ("call mum", "high"), ("water", "low")):
        assert (
            api.post("/api/tasks", json={"title": title, "priority": priority}).status_code == 201
        )

    async def main() -> None:
        async with mcp_client(live_server, alice.token) as client:
            query = {"priority": ["high"], "sort": "title"}
            saved = structured(
                await client.call_tool("save_filter", {"name": "Urgent", "query": query})
            )
            assert saved == {"filter_id": saved["filter_id"], "status": "saved", "name": "Urgent"}
            fid = saved["filter_id"]
            for chosen in (fid, "urgent", "URGENT"):
                listed = structured(await client.call_tool("list_tasks", {"filter": chosen}))
                assert [t["title"] for t in listed["tasks"]] == ["call mum", "pay rent"]
            low = structured(
                await client.call_tool("list_tasks", {"filter": "Urgent", "priority": "low"})
            )
            assert [t["title"] for t in low["tasks"]] == ["water"]
            # Refused by the listing's rules, as REST refuses it.
            bad = tool_error(
                await client.call_tool("save_filter", {"name": "Bad", "query": {"limit": 0}})
            )
            assert bad["code"] == "VALIDATION_ERROR"
            taken = tool_error(await client.call_tool("save_filter", {"name": "urgent"}))
            assert taken["code"] == "CONFLICT"
            filters = structured(await client.call_tool("list_filters", {}))["filters"]
            assert [(f["id"], f["name"], f["query"]) for f in filters] == [(fid, "Urgent", query)]
            renamed = structured(
                await client.call_tool(
                    "update_filter", {"filter_id": fid, "name": "Hot", "query": {"status": "all"}}
                )
            )
            assert renamed == {"filter_id": fid, "status": "updated", "name": "Hot"}
            every = structured(await client.call_tool("list_tasks", {"filter": "hot"}))
            assert len(every["tasks"]) == 3
            unknown = tool_error(await client.call_tool("list_tasks", {"filter": "Urgent"}))
            assert unknown == {
                "code": "NOT_FOUND",
                "message": "Filter not found",
                "details": [],
            }

        # Bob: Alice's filter by id or by name is a missing one, on every tool.
        async with mcp_client(live_server, bob.token) as other:
            for name, arguments in (
                ("list_tasks", {"filter": fid}),
                ("list_tasks", {"filter": "Hot"}),
                ("update_filter", {"filter_id": fid, "name": "mine"}),
                ("delete_filter", {"filter_id": fid}),
            ):
                assert tool_error(await other.call_tool(name, arguments)) == unknown, name
            assert structured(await other.call_tool("list_filters", {}))["filters"] == []

        async with mcp_client(live_server, alice.token) as client:
            deleted = structured(await client.call_tool("delete_filter", {"filter_id": fid}))
            assert deleted == {"filter_id": fid, "status": "deleted"}
            gone = tool_error(await client.call_tool("delete_filter", {"filter_id": fid}))
            assert gone == unknown

    run(main)
    assert len(api.get("/api/tasks").json()["data"]) == 3  # the tasks stay
