"""Two users: B's agent never sees, changes or learns of A's tasks, whatever it sends: B's
token with A's user_id, A's task ids, every tool. The answers are those for a task that does
not exist, and A's rows stay exactly as they were."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from backend.mcp.tools import TOOLS
from tests.conftest import Account, count_rows
from tests.mcp.conftest import NOT_FOUND, mcp_client, rest, run, structured, task_rows, tool_error

MISSING_ID = 9_000_000_000


# Arguments beyond `task_id` and `user_id` a tool is tried with (each dict one call); a tool
# that needs more than those two and has no entry fails `test_every_tool_is_tried`.
EXTRA_ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "add_task": [{"title": "planted by B", "recurrence": "daily", "due_date": "2030-01-01"}],
    "update_task": [{"title": "changed by B"}, {"recurrence": "weekly", "time_zone": "UTC"}],
}


def _every_call(task_id: int, user_id: str | None) -> list[tuple[str, dict[str, Any]]]:
    """Every tool the server lists (`TOOLS`), aimed at `task_id` where it takes one, sent with
    `user_id` (if any): a new tool is covered without being named here."""
    who = {} if user_id is None else {"user_id": user_id}
    calls = []
    for tool in TOOLS:
        target = {"task_id": task_id} if "task_id" in tool.arguments.model_fields else {}
        for extra in EXTRA_ARGUMENTS.get(tool.name, [{}]):
            calls.append((tool.name, {**who, **target, **extra}))
    return calls


def test_every_tool_is_tried() -> None:
    """Each generated call is valid for its tool, so a refusal below is isolation, not a bad
    argument; and every tool is called."""
    calls = _every_call(1, "someone")
    assert {name for name, _ in calls} == {tool.name for tool in TOOLS}
    by_name = {tool.name: tool for tool in TOOLS}
    for name, arguments in calls:
        by_name[name].arguments.model_validate(arguments)


def test_another_users_tasks_are_invisible_and_untouchable(
    live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    api_a = rest(live_server, alice.token)
    # The first recurs (pending): completing it, as Bob tries, would create its successor.
    recurring = {"recurrence": "daily", "due_date": "2030-01-01"}
    a_tasks = [
        api_a.post("/api/tasks", json={"title": f"A secret {n}", "tags": ["a"], **extra}).json()[
            "data"
        ]
        for n, extra in enumerate((recurring, {}))
    ]
    api_a.patch(f"/api/tasks/{a_tasks[1]['id']}/complete", json={"completed": True})
    b_task = rest(live_server, bob.token).post("/api/tasks", json={"title": "B's own"}).json()
    b_task_id = b_task["data"]["id"]
    a_before = task_rows(db_engine, alice.id)
    b_before = task_rows(db_engine, bob.id)

    async def main() -> None:
        async with mcp_client(live_server, bob.token) as client:
            # Bob's token with Alice's user_id: every tool is "not found", even on Bob's task.
            for name, arguments in _every_call(b_task_id, alice.id):
                result = await client.call_tool(name, arguments)
                assert tool_error(result) == NOT_FOUND, (name, result)
            # Alice's task ids, with Bob's own user_id or none: the answer for a missing id.
            for a_task in a_tasks:
                for user_id in (bob.id, None):
                    for name, arguments in _every_call(a_task["id"], user_id):
                        if "task_id" not in arguments:
                            continue
                        missing = {**arguments, "task_id": MISSING_ID}
                        result = await client.call_tool(name, arguments)
                        assert tool_error(result) == NOT_FOUND, (name, result)
                        assert result.content == (await client.call_tool(name, missing)).content
            # Listings and counts hold Bob's task alone, whatever the filter.
            for arguments in (
                {},
                {"search": "secret"},
                {"tag": "a"},
                {"status": "completed"},
                {"recurring": True},
            ):
                tasks = structured(await client.call_tool("list_tasks", arguments))["tasks"]
                assert [t["id"] for t in tasks] == ([] if arguments else [b_task_id])
            stats = structured(await client.call_tool("task_stats", {}))
            assert (stats["total"], stats["completed"]) == (1, 0)

    run(main)
    assert task_rows(db_engine, alice.id) == a_before
    assert task_rows(db_engine, bob.id) == b_before
    assert count_rows(db_engine, "tasks") == 3


def test_writes_with_another_users_id_write_nothing(
    live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    async def main() -> None:
        async with mcp_client(live_server, bob.token) as client:
            for user_id in (alice.id, "someone-else", bob.id.upper()):
                result = await client.call_tool("add_task", {"user_id": user_id, "title": "x"})
                assert tool_error(result) == NOT_FOUND
            # Bob's own id is fine.
            created = await client.call_tool("add_task", {"user_id": bob.id, "title": "mine"})
            assert structured(created)["status"] == "created"

    run(main)
    assert [row["user_id"] for row in task_rows(db_engine)] == [bob.id]
