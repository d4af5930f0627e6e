"""Two users: B's agent never sees, changes or learns of A's tasks and lists, whatever it
sends: B's token with A's user_id, A's task and list ids (as the target, or as a list, parent
or listing filter), A's list names, every tool. The answers are those for a task or list that
does not exist, and A's rows stay exactly as they were: every table with a `user_id` column,
read from the database (tests/resources.py), so a new tool's table is compared unnamed."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from backend.mcp.tools import TOOLS
from tests.conftest import Account, count_rows
from tests.mcp.conftest import NOT_FOUND, mcp_client, rest, run, structured, task_rows, tool_error
from tests.resources import snapshot

MISSING_ID = 9_000_000_000
# Placeholders: the owner's target task, another task of theirs (a parent), their list's id
# and name.
TASK, REF, LIST, LIST_NAME = "<task>", "<ref>", "<list>", "<list name>"
A_LIST = "A secret list"
NOBODYS_LIST = "nobody has this list"

# Arguments beyond `task_id` and `user_id` a tool is tried with (each dict one call); a tool
# that needs more than those two and has no entry fails `test_every_tool_is_tried`.
EXTRA_ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "add_task": [
        {"title": "planted by B", "recurrence": "daily", "due_date": "2030-01-01"},
        {"title": "in a list", "list_id": LIST},
        {"title": "in a list", "list": LIST_NAME},
        {"title": "a subtask", "parent_id": REF},
    ],
    "update_task": [
        {"title": "changed by B"},
        {"recurrence": "weekly", "time_zone": "UTC"},
        {"list_id": LIST},
        {"list": LIST_NAME},
        {"parent_id": REF},
    ],
    "list_tasks": [{}, {"list_id": LIST}, {"list": LIST_NAME}, {"parent_id": REF}],
    "assign_task": [{"assignees": ()}],  # a tuple: `_fill` looks each value up
    "create_list": [{"name": A_LIST}],
    "rename_list": [
        {"list_id": LIST, "name": "renamed by B"},
        {"list": LIST_NAME, "name": "renamed by B"},
    ],
    "delete_list": [{"list_id": LIST}, {"list": LIST_NAME}],
    "add_comment": [{"body": "planted by B"}],
    "list_comments": [{}, {"limit": 1, "after_id": 1}],
    "create_calendar_feed": [{}, {"list_id": LIST, "kind": "todos"}],
}


def _fill(arguments: dict[str, Any], rows: dict[str, Any]) -> dict[str, Any]:
    return {key: rows.get(value, value) for key, value in arguments.items()}


def _names_rows(arguments: dict[str, Any]) -> bool:
    return any(value in (REF, LIST, LIST_NAME) for value in arguments.values())


def _every_call(rows: dict[str, Any], user_id: str | None) -> list[tuple[str, dict[str, Any]]]:
    """Every tool the server lists (`TOOLS`), aimed at `rows[TASK]` where it takes a task,
    with `user_id` (if any) and its extra arguments: a new tool is covered without being named
    here. The arguments keep their placeholders (`_fill` puts the rows in)."""
    who = {} if user_id is None else {"user_id": user_id}
    calls = []
    for tool in TOOLS:
        target = {"task_id": TASK} if "task_id" in tool.arguments.model_fields else {}
        for extra in EXTRA_ARGUMENTS.get(tool.name, [{}]):
            calls.append((tool.name, {**who, **target, **extra}))
    return calls


def test_every_tool_is_tried() -> None:
    """Each generated call is valid for its tool, so a refusal below is isolation, not a bad
    argument; and every tool is called."""
    rows = {TASK: 1, REF: 2, LIST: 3, LIST_NAME: "a list"}
    calls = _every_call(rows, "someone")
    assert {name for name, _ in calls} == {tool.name for tool in TOOLS}
    by_name = {tool.name: tool for tool in TOOLS}
    for name, arguments in calls:
        by_name[name].arguments.model_validate(_fill(arguments, rows))


def test_another_users_rows_are_invisible_and_untouchable(
    unlimited_live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    api_a = rest(unlimited_live_server, alice.token)
    a_list = api_a.post("/api/lists", json={"name": A_LIST}).json()["data"]["id"]
    # The first recurs (pending): completing it, as Bob tries, would create its successor.
    recurring = {"recurrence": "daily", "due_date": "2030-01-01"}
    a_tasks = [
        api_a.post("/api/tasks", json={"title": f"A secret {n}", "tags": ["a"], **extra}).json()[
            "data"
        ]
        for n, extra in enumerate((recurring, {}, {"list_id": a_list}))
    ]
    api_a.patch(f"/api/tasks/{a_tasks[1]['id']}/complete", json={"completed": True})
    api_a.post("/api/tasks", json={"title": "A's step", "parent_id": a_tasks[1]["id"]})
    api_b = rest(unlimited_live_server, bob.token)
    b_list = api_b.post("/api/lists", json={"name": "B's list"}).json()["data"]["id"]
    b_task = api_b.post("/api/tasks", json={"title": "B's own"}).json()["data"]["id"]
    b_ref = api_b.post("/api/tasks", json={"title": "B's other"}).json()["data"]["id"]
    bobs = {TASK: b_task, REF: b_ref, LIST: b_list, LIST_NAME: "B's list"}
    a_before, a_everything = task_rows(db_engine, alice.id), snapshot(db_engine, alice.id)
    b_before = task_rows(db_engine, bob.id)
    not_found = {tool.name: {**NOT_FOUND, "message": tool.not_found} for tool in TOOLS}

    def unknown_name(error: dict[str, Any], name: str) -> str:
        assert error["code"] == "NOT_FOUND", error
        assert A_LIST not in error["message"].replace(f'"{name}"', ""), error
        return str(error["message"]).replace(f'"{name}"', '"<name>"')

    async def main() -> None:
        async with mcp_client(unlimited_live_server, bob.token) as client:
            # Bob's token with Alice's user_id: every tool is "not found", even on Bob's rows.
            for name, arguments in _every_call(bobs, alice.id):
                result = await client.call_tool(name, _fill(arguments, bobs))
                assert tool_error(result) == not_found[name], (name, result)
            for a_task in a_tasks:
                alices = {
                    TASK: a_task["id"],
                    REF: a_tasks[1]["id"],
                    LIST: a_list,
                    LIST_NAME: A_LIST,
                }
                missing = {TASK: MISSING_ID, REF: MISSING_ID + 1, LIST: MISSING_ID + 2}
                for user_id in (bob.id, None):
                    for name, arguments in _every_call(bobs, user_id):
                        if "task_id" in arguments:
                            # Alice's task as the target (Bob's rows named otherwise).
                            aimed = _fill({**arguments, "task_id": a_task["id"]}, bobs)
                            absent = {**aimed, "task_id": MISSING_ID}
                            result = await client.call_tool(name, aimed)
                            assert tool_error(result)["code"] == "NOT_FOUND", (name, result)
                            assert result.content == (await client.call_tool(name, absent)).content
                        if not _names_rows(arguments):
                            continue
                        # Bob's own target, naming Alice's rows: as if they did not exist.
                        own = {TASK: b_task, **{k: v for k, v in alices.items() if k != TASK}}
                        foreign = _fill(arguments, own)
                        result = await client.call_tool(name, foreign)
                        if LIST_NAME in arguments.values():
                            other = _fill(arguments, {**own, LIST_NAME: NOBODYS_LIST})
                            compared = await client.call_tool(name, other)
                            assert unknown_name(tool_error(result), A_LIST) == unknown_name(
                                tool_error(compared), NOBODYS_LIST
                            )
                            continue
                        absent = _fill(arguments, {**missing, TASK: b_task})
                        compared = await client.call_tool(name, absent)
                        assert result.content == compared.content, (name, arguments)
                        if name == "list_tasks":  # a filter naming nothing of Bob's: empty
                            assert structured(result)["tasks"] == []
                        else:
                            assert tool_error(result)["code"] == "NOT_FOUND", (name, result)
            # Listings and counts hold Bob's rows alone, whatever the filter.
            for arguments in (
                {},
                {"search": "secret"},
                {"tag": "a"},
                {"status": "completed"},
                {"recurring": True},
            ):
                tasks = structured(await client.call_tool("list_tasks", arguments))["tasks"]
                assert {t["id"] for t in tasks} <= ({b_task, b_ref} if not arguments else set())
            stats = structured(await client.call_tool("task_stats", {}))
            assert stats["completed"] == 0
            assert A_LIST not in json.dumps(stats)
            lists = structured(await client.call_tool("list_lists", {}))["lists"]
            assert A_LIST not in json.dumps(lists)

    run(main)
    assert snapshot(db_engine, alice.id) == a_everything
    # Bob's own writes went to Bob's rows only (never to Alice's).
    assert all(row["user_id"] == bob.id for row in task_rows(db_engine, bob.id))
    assert len(task_rows(db_engine, bob.id)) >= len(b_before)
    assert count_rows(db_engine, "tasks") == len(a_before) + len(task_rows(db_engine, bob.id))


def test_writes_with_another_users_id_write_nothing(
    unlimited_live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    async def main() -> None:
        async with mcp_client(unlimited_live_server, bob.token) as client:
            for user_id in (alice.id, "someone-else", bob.id.upper()):
                result = await client.call_tool("add_task", {"user_id": user_id, "title": "x"})
                assert tool_error(result) == NOT_FOUND
                result = await client.call_tool("create_list", {"user_id": user_id, "name": "x"})
                assert tool_error(result) == {**NOT_FOUND, "message": "List not found"}
            # Bob's own id is fine.
            created = await client.call_tool("add_task", {"user_id": bob.id, "title": "mine"})
            assert structured(created)["status"] == "created"

    run(main)
    assert [row["user_id"] for row in task_rows(db_engine)] == [bob.id]
    assert count_rows(db_engine, "task_lists") == 0
