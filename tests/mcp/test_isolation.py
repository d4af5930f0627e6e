"""Two users: B's agent never sees, changes or learns of A's tasks and lists, whatever it
sends: B's token with A's user_id, A's task and list ids (as the target, or as a list, parent
or listing filter), A's list names, every tool. The answers are those for a task or list that
does not exist, and A's rows stay exactly as they were: every table with a `user_id` column,
read from the database (tests/resources.py), so a new tool's table is compared unnamed.

Besides, every id a tool's arguments take is found from their declarations (the marker each
id field carries, backend/models/references.py) and aimed at A's row of its table, made
through the REST API as the isolation of the routes makes it (tests/resources.py): the
answer is the one a missing id gets, so a new resource's tool is covered with no edit here.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from backend.mcp.tools import TOOLS
from backend.mcp.tools.common import Tool
from backend.models.references import MEMBERS, USERS, NotAReference, Reference, Subject
from backend.models.task_children import CHILDREN
from tests.conftest import Account, count_rows
from tests.mcp.conftest import NOT_FOUND, mcp_client, rest, run, structured, task_rows, tool_error
from tests.resources import Creator, creators, make_row, snapshot, the_app_routes
from tests.sharing.references import ID_NAME, model_fields

MISSING_ID = 9_000_000_000
# Placeholders: the owner's target task, another task of theirs (a parent), their list's id
# and name.
TASK, REF, LIST, LIST_NAME = "<task>", "<ref>", "<list>", "<list name>"
A_LIST = "A secret list"
NOBODYS_LIST = "nobody has this list"

# Arguments beyond `task_id` and `user_id` a tool is tried with (each dict one call). A tool
# without an entry is tried with its required arguments' declared examples (`extra_arguments`);
# one that needs an argument with no example fails `test_every_tool_is_tried`.
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
    # A page after a comment too (a cursor that is a child's id, not a task's). A child's
    # tool needs no line: its arguments that are the child's `fields` take its `sample`.
    "list_comments": [{}, {"limit": 1, "after_id": 1}],
    "create_calendar_feed": [{}, {"list_id": LIST, "kind": "todos"}],
}


def extra_arguments(tool: Tool[Any]) -> list[dict[str, Any]]:
    """The tool's `EXTRA_ARGUMENTS`, else one call with each required argument but `task_id`
    at the first of its `examples` (`Field(examples=[...])`, in the tool's schema too), or a
    task's child's field at the child's declared `sample`: a new tool needs no entry here."""
    if tool.name in EXTRA_ARGUMENTS:
        return EXTRA_ARGUMENTS[tool.name]
    schema = tool.arguments.model_json_schema(by_alias=True)
    properties = schema["properties"]
    required = [name for name in schema.get("required", []) if name != "task_id"]
    declared = {f: c.sample[f] for c in CHILDREN for f in c.fields if f in c.sample}
    return [
        {
            name: properties[name]["examples"][0]
            if "examples" in properties[name]
            else declared[name]
            for name in required
            if "examples" in properties[name] or name in declared
        }
    ]


# -- every id argument, from the declarations ---------------------------------------------------

MAKERS: dict[str, Creator] = creators(the_app_routes())
# Rows no collection makes, which a write of another row does (tests/resources.py `make_row`):
# an activity entry.
MADE_BY_A_WRITE = {"task_events": "event_id"}
# A user id that names nobody: what a missing assignee is.
NOBODY = "nobody-at-all"


def _row_parameter(table: str) -> str:
    """The path parameter whose POST route makes a row of `table`: the one collection whose
    last segment is the table's name or ends it (`/api/lists`: `task_lists`)."""
    if table in MADE_BY_A_WRITE:
        return MADE_BY_A_WRITE[table]
    found = [
        name
        for name, maker in MAKERS.items()
        # A deleted row's maker (the trash's) makes no live row of its table.
        if not maker.deleted
        if (segment := maker.collection.rsplit("/", 1)[-1]) == table
        or table.endswith(f"_{segment}")
    ]
    assert len(found) == 1, f"no single REST collection makes rows of {table}: {found}"
    return found[0]


def id_arguments(tool: Tool[Any]) -> dict[str, str]:
    """The tool's top-level id arguments (but its `user_id`, tried above), each with what
    names the row it takes: a path parameter whose POST route makes one (`task_id`), or
    MEMBERS (a user id)."""
    found: dict[str, str] = {}
    for path, markers in model_fields(tool.arguments):
        if "." in path or "[]" in path or not ID_NAME.search(path):
            continue
        marker = next(iter(markers), None)
        if isinstance(marker, NotAReference) or (
            isinstance(marker, Reference) and marker.table == USERS
        ):
            continue
        if isinstance(marker, Subject):
            found[path] = path  # the row the tool acts on: `task_id` names a task
        elif isinstance(marker, Reference):
            found[path] = MEMBERS if marker.table == MEMBERS else _row_parameter(marker.table)
        else:  # tests/sharing/test_declared.py fails on it too
            raise AssertionError(f"{tool.name}.{path} declares nothing")
    return found


def _row(parameter: str) -> str:
    """The placeholder of a row its path parameter names (`<filter_id>`), for a tool's id
    argument that only its declaration names: made for the caller by `_own_rows`."""
    return f"<{parameter}>"


def _required_rows(tool: Tool[Any]) -> dict[str, str]:
    """The tool's required id arguments but `task_id` (TASK) -> their rows' placeholders."""
    fields = tool.arguments.model_fields
    return {
        argument: _row(parameter)
        for argument, parameter in id_arguments(tool).items()
        if argument != "task_id" and parameter != MEMBERS and fields[argument].is_required()
    }


def _own_rows(http: Any, account: Account, known: dict[str, int]) -> dict[str, int]:
    """The account's row for every placeholder `_required_rows` puts in a call."""
    needed = {p for tool in TOOLS for p in _required_rows(tool).values()}
    return {
        placeholder: make_row(http, account, placeholder[1:-1], known, MAKERS)
        for placeholder in sorted(needed)
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
        target.update(_required_rows(tool))
        for extra in extra_arguments(tool):
            calls.append((tool.name, {**who, **extra, **target}))
    return calls


def test_every_tool_is_tried() -> None:
    """Each generated call is valid for its tool, so a refusal below is isolation, not a bad
    argument; and every tool is called."""
    rows = {TASK: 1, REF: 2, LIST: 3, LIST_NAME: "a list", **{_row(p): 4 for p in MAKERS}}
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
    bobs.update(_own_rows(api_b, bob, {"task_id": b_task, "list_id": b_list}))
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


def test_id_arguments_are_found() -> None:
    by_name = {tool.name: tool for tool in TOOLS}
    assert id_arguments(by_name["update_task"]) == {
        "task_id": "task_id",
        "assignees": MEMBERS,
        "list_id": "list_id",
        "parent_id": "task_id",
    }
    assert id_arguments(by_name["rename_list"]) == {"list_id": "list_id"}
    assert id_arguments(by_name["list_comments"]) == {"task_id": "task_id"}  # not after_id


def _base(tool: Tool[Any], own: dict[str, int]) -> dict[str, Any]:
    """The fewest arguments the tool is tried with above, naming no row but the caller's own
    (`own`: a row per path parameter) where it must: the call an id argument is added to."""
    calls = [arguments for name, arguments in _every_call({}, None) if name == tool.name]
    plain = [{k: v for k, v in call.items() if not _names_rows({k: v})} for call in calls]
    rows = {TASK: own["task_id"], **{_row(parameter): row for parameter, row in own.items()}}
    return {
        key: list(value) if isinstance(value, tuple) else rows.get(value, value)
        for key, value in min(plain, key=len).items()
    }


def _about(error: dict[str, Any], argument: str) -> bool:
    """Whether a refusal is the one a missing row gets: NOT_FOUND, or (an assignee, who is
    no row of the caller's) a VALIDATION_ERROR naming the argument."""
    fields = {str(detail.get("field") or "").rsplit(".", 1)[-1] for detail in error["details"]}
    return error["code"] == "NOT_FOUND" or (
        error["code"] == "VALIDATION_ERROR" and fields == {argument}
    )


def test_every_id_argument_aimed_at_another_users_row_answers_as_a_missing_one(
    unlimited_live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    parameters = {p for tool in TOOLS for p in id_arguments(tool).values() if p != MEMBERS}
    alices: dict[str, int] = {}
    bobs: dict[str, int] = {}
    with (
        rest(unlimited_live_server, alice.token) as api_a,
        rest(unlimited_live_server, bob.token) as api_b,
    ):
        for parameter in sorted(parameters):
            make_row(api_a, alice, parameter, alices, MAKERS)  # type: ignore[arg-type]
            make_row(api_b, bob, parameter, bobs, MAKERS)  # type: ignore[arg-type]
    a_everything = snapshot(db_engine, alice.id)
    aimed_at: dict[str, Any] = {**alices, MEMBERS: alice.id}
    missing: dict[str, Any] = {**dict.fromkeys(alices, MISSING_ID), MEMBERS: NOBODY}
    tried: list[str] = []

    def value(row: Any, argument: str, tool: Tool[Any]) -> Any:
        """The row's id, in a list where the argument takes many (`assignees`)."""
        prop = tool.arguments.model_json_schema()["properties"][argument]
        many = any(each.get("type") == "array" for each in prop.get("anyOf", [prop]))
        return [row] if many else row

    async def main() -> None:
        async with mcp_client(unlimited_live_server, bob.token) as client:
            for tool in TOOLS:
                for argument, names in id_arguments(tool).items():
                    base = _base(tool, bobs)
                    aimed = {**base, argument: value(aimed_at[names], argument, tool)}
                    absent = {**base, argument: value(missing[names], argument, tool)}
                    result = await client.call_tool(tool.name, aimed)
                    compared = await client.call_tool(tool.name, absent)
                    text = json.dumps([c.model_dump() for c in result.content])
                    if names == MEMBERS:  # the id it names is in the message
                        text = text.replace(alice.id, NOBODY)
                    expected = json.dumps([c.model_dump() for c in compared.content])
                    assert text == expected, (tool.name, argument, result, compared)
                    if compared.is_error:  # refused for this id, not another argument
                        error = tool_error(compared)
                        assert _about(error, argument), (tool.name, argument, error)
                    tried.append(f"{tool.name}.{argument}")

    run(main)
    assert snapshot(db_engine, alice.id) == a_everything
    assert {"update_task.parent_id", "delete_list.list_id", "assign_task.assignees"} <= set(tried)
