"""The comment tools (issue 39, "Agents"): `add_comment` and `list_comments` through the SDK's
client against the real server, on the caller's own task and on a list shared with it, with
the REST routes' answers: the same service, the same access rule."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.mcp.conftest import mcp_client, rest, run, structured, tool_error


def _share(engine: Engine, owner: Account, list_id: int, member: Account, role: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) "
                "VALUES (:owner, :list, :member, :role)"
            ),
            {"owner": owner.id, "list": list_id, "member": member.id, "role": role},
        )


def test_an_agent_comments_on_its_own_task(live_server: str, alice: Account) -> None:
    api = rest(live_server, alice.token)
    task = api.post("/api/tasks", json={"title": "milk"}).json()["data"]["id"]

    async def main() -> None:
        async with mcp_client(live_server, alice.token) as client:
            ids = []
            for n in range(3):
                added = structured(
                    await client.call_tool("add_comment", {"task_id": task, "body": f" c{n}\n "})
                )
                assert added == {
                    "comment_id": added["comment_id"],
                    "task_id": task,
                    "status": "created",
                }
                ids.append(added["comment_id"])
            first = structured(
                await client.call_tool("list_comments", {"task_id": task, "limit": 2})
            )
            assert [c["id"] for c in first["comments"]] == ids[:2] and first["has_more"]
            assert first["comments"][0]["body"] == "c0"
            assert first["comments"][0]["author_id"] == alice.id
            rest_page = api.get(f"/api/tasks/{task}/comments?limit=2").json()["data"]
            assert first["comments"] == rest_page
            after = structured(
                await client.call_tool("list_comments", {"task_id": task, "after_id": ids[1]})
            )
            assert ([c["id"] for c in after["comments"]], after["has_more"]) == ([ids[2]], False)
            bad = tool_error(
                await client.call_tool("add_comment", {"task_id": task, "body": "a\x00"})
            )
            assert bad["code"] == "VALIDATION_ERROR"
            empty = tool_error(
                await client.call_tool("add_comment", {"task_id": task, "body": " "})
            )
            assert empty["code"] == "VALIDATION_ERROR"
            missing = tool_error(await client.call_tool("list_comments", {"task_id": 2**53 - 1}))
            assert missing == {"code": "NOT_FOUND", "message": "Task not found", "details": []}

    run(main)
    assert len(api.get(f"/api/tasks/{task}/comments").json()["data"]) == 3


def test_an_agent_in_a_shared_list_has_its_role(
    live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    api = rest(live_server, alice.token)
    list_id = api.post("/api/lists", json={"name": "Household"}).json()["data"]["id"]
    task = api.post("/api/tasks", json={"title": "milk", "list_id": list_id}).json()["data"]["id"]
    _share(db_engine, alice, list_id, bob, "viewer")

    async def main() -> None:
        async with mcp_client(live_server, bob.token) as client:
            listed = structured(await client.call_tool("list_comments", {"task_id": task}))
            assert listed == {"comments": [], "has_more": False}
            refused = tool_error(
                await client.call_tool("add_comment", {"task_id": task, "body": "hi"})
            )
            assert refused["code"] == "FORBIDDEN"
            with db_engine.begin() as conn:
                conn.execute(text("UPDATE list_members SET role = 'commenter'"))
            added = structured(
                await client.call_tool("add_comment", {"task_id": task, "body": "hi"})
            )
            assert added["task_id"] == task
            with db_engine.begin() as conn:
                conn.execute(text("DELETE FROM list_members"))
            gone = tool_error(await client.call_tool("list_comments", {"task_id": task}))
            assert gone == {"code": "NOT_FOUND", "message": "Task not found", "details": []}

    run(main)
    (comment,) = api.get(f"/api/tasks/{task}/comments").json()["data"]
    assert (comment["author_id"], comment["body"]) == (bob.id, "hi")
