"""Every writable column of `tasks` survives every door that writes a task, and shows in every
view of one (issue 22).

The columns come from the database itself (information_schema, pg_enum), not from the models:
a column added by a migration and declared nowhere fails `test_every_column_is_declared`; once
declared writable it is written, per door, with values generated from its database type and
read back from the row, GET, the listing, the change feed and the outbox event. A door that
silently drops the column fails the case named after the column and the door.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.events.sinks import event_body
from backend.models import task_fields
from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc

# --- The field declaration: the one place this test learns which columns are which. ---------

# Server-owned columns: accepted and dropped on input (`version` is refused: it is no field).
READ_ONLY = task_fields.READ_ONLY | {"version"}
# What a client writes.
WRITABLE = frozenset(task_fields.WRITABLE)
# ---------------------------------------------------------------------------------------------

# What a recurring task's next occurrence is, stated from the product rule (specs/data-model.md,
# "Recurrence") and not read from the `copied_to_successor` flags it checks: the same task, due
# later, pending, and placed as the one it continues was. So every column of `tasks` is carried
# as it is (a column added tomorrow too), but for these, and why:
NOT_CARRIED: dict[str, str] = {
    "id": "a row of its own",
    "created_at": "its own history",
    "updated_at": "its own history",
    "version": "its own history",
    "completed": "it starts pending",
    "completed_at": "it starts pending",
    "due_date": "moved by the schedule: to the predecessor's next_due_date (a copied subtask's "
    "by as much as its occurrence's)",
    "next_due_date": "the schedule's next (a subtask has none)",
    "previous_task_id": "it names the task it continues",
    "position": "placed: a successor first in its list, a copied subtask at its place",
    "parent_id": "placed: a copied subtask is under the copy of its parent (a successor has "
    "none: only top-level tasks recur)",
    "subtask_count": "counted from its own subtasks, the copies",
    "open_subtask_count": "counted from its own subtasks, the copies (all pending)",
}
# Of the writable ones, what the successor has instead (`before`: the predecessor's row). A
# relative reminder is carried unchanged (an `at` reminder moves with the due date: the
# recurrence tests); `parent_id` is exempt below.
SUCCESSOR_MOVES: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "due_date": lambda before, _: before["next_due_date"],
    "completed": lambda _before, _: False,
}
# The only fields bulk operations set (`BulkOperation`, backend/models/task_ops.py).
BULK_SETTABLE = {"completed", "priority", "tags", "list_id"}
# Doors a field cannot pass by design, and why.
SUCCESSOR_EXEMPT = {"parent_id": "only top-level tasks recur (ck_tasks_subtask_not_recurring)"}
# add_task/update_task take no `completed`: an agent completes with complete_task/reopen_task,
# which the update door uses for it; add_task always creates a pending task.
MCP_ADD_EXEMPT = {"completed"}

DUE = "2031-03-04T05:06:07Z"
RECURRING = {"recurrence": "FREQ=DAILY;INTERVAL=2", "due_date": DUE}


@dataclass(frozen=True)
class Values:
    v1: Any
    v2: Any
    # Other fields a value needs to be accepted (a rule or a reminder needs a due date).
    needs: dict[str, Any]


@dataclass(frozen=True)
class Made:
    """A value that is a row of the user's, made for the test: one of their lists, or one of
    their tasks (a parent). References are always to the caller's own rows."""

    kind: str  # "list", "task", or "caller" (a list of the caller's id: its own assignee)
    n: int


def resolve(client: TestClient, account: Account, values: Values) -> Values:
    """`values` with each `Made` replaced by the id of a row made for `account`."""

    def make(value: Any) -> Any:
        if not isinstance(value, Made):
            return value
        if value.kind == "caller":
            return [account.id]
        if value.kind == "list":
            body, path = {"name": f"list {value.n}"}, "/api/lists"
        else:
            body, path = {"title": f"parent {value.n}"}, "/api/tasks"
        created = client.post(path, json=body, headers=account.headers)
        assert created.status_code == 201, created.text
        return created.json()["data"]["id"]

    return Values(make(values.v1), make(values.v2), values.needs)


# Columns whose rules a value generated from the type cannot meet. A new column of a plain
# type needs no entry here.
OVERRIDES: dict[str, Values] = {
    "recurrence": Values("FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TH", {"due_date": DUE}),
    "time_zone": Values("Europe/Berlin", "America/New_York", {}),
    # Relative reminders only: a successor moves an `at` reminder with its due date.
    "reminders": Values(
        [{"minutes_before_due": 30}],
        [{"minutes_before_due": 5}, {"minutes_before_due": 60}],
        {"due_date": DUE},
    ),
    # References: the caller's own list, or their own task as the parent.
    "list_id": Values(Made("list", 1), Made("list", 2), {}),
    "parent_id": Values(Made("task", 1), Made("task", 2), {}),
    # A personal task's only possible assignee is its owner.
    "assignees": Values(Made("caller", 1), [], {}),
}


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str  # information_schema's, e.g. "text", "ARRAY", "USER-DEFINED"
    udt_name: str  # e.g. "_text", "task_priority"
    nullable: bool
    default: str | None
    labels: tuple[str, ...]  # an enum's labels, in order


def read_columns(engine: Engine) -> dict[str, ColumnInfo]:
    query = text(
        """
        SELECT c.column_name, c.data_type, c.udt_name, c.is_nullable = 'YES' AS nullable,
               c.column_default,
               coalesce(array_agg(e.enumlabel ORDER BY e.enumsortorder)
                        FILTER (WHERE e.enumlabel IS NOT NULL), '{}') AS labels
          FROM information_schema.columns c
          LEFT JOIN pg_type t ON t.typname = c.udt_name
          LEFT JOIN pg_enum e ON e.enumtypid = t.oid
         WHERE c.table_schema = current_schema() AND c.table_name = 'tasks'
         GROUP BY c.column_name, c.data_type, c.udt_name, c.is_nullable, c.column_default,
                  c.ordinal_position
         ORDER BY c.ordinal_position
        """
    )
    with engine.connect() as conn:
        return {
            row.column_name: ColumnInfo(
                row.column_name,
                row.data_type,
                row.udt_name,
                row.nullable,
                row.column_default,
                tuple(row.labels),
            )
            for row in conn.execute(query)
        }


@pytest.fixture(scope="module")
def columns(db_engine: Engine) -> dict[str, ColumnInfo]:
    return read_columns(db_engine)


def values_for(column: ColumnInfo) -> Values:
    """Two distinct values a client may send, both unlike the column's default."""
    if column.name in OVERRIDES:
        return OVERRIDES[column.name]
    kind = column.udt_name
    if column.labels:
        others = [label for label in column.labels if f"'{label}'" not in (column.default or "")]
        return Values(others[-1], others[-2], {})
    if kind == "text":
        return Values(f"first {column.name}", f"second {column.name}", {})
    if kind in ("int2", "int4", "int8"):
        return Values(7, 11, {})
    if kind == "bool":
        return Values(True, False, {})
    if kind == "timestamptz":
        return Values(DUE, "2032-05-06T07:08:09Z", {})
    if kind == "_text":
        return Values(["alpha"], ["beta", "gamma"], {})
    if kind == "jsonb":
        return Values({"first": 1}, {"second": [2]}, {})
    if kind == "uuid":
        return Values(str(uuid.UUID(int=1)), str(uuid.UUID(int=2)), {})
    raise AssertionError(f"no value for {column.name} ({column.data_type}): add an override")


def same(column: ColumnInfo, value: Any) -> Any:
    """A value as compared: API text, event JSON and the driver's objects read alike."""
    if value is None:
        return None
    if column.udt_name == "timestamptz":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return moment.timestamp()
    if column.udt_name == "uuid":
        return str(value)
    return value


# --- Doors and views -------------------------------------------------------------------------


def mcp(client: TestClient, account: Account, name: str, **arguments: Any) -> dict[str, Any]:
    result = call_tool_rpc(client, "/mcp", account.token, name, arguments)
    assert result["isError"] is False, result
    structured: dict[str, Any] = result["structuredContent"]
    return structured


def create(client: TestClient, account: Account, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/tasks", json={"title": "a task", **body}, headers=account.headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def db_row(engine: Engine, task_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM tasks WHERE id = :id"), {"id": task_id}).one()
    return dict(row._mapping)


def views(client: TestClient, account: Account, engine: Engine, task_id: int) -> dict[str, Any]:
    """The task as each reader sees it: the row, GET, the listing, the task's latest change in
    the feed, and its latest outbox row (as stored, and as the published event)."""
    one = client.get(f"/api/tasks/{task_id}", headers=account.headers)
    assert one.status_code == 200, one.text
    listed = client.get("/api/tasks", params={"limit": 100}, headers=account.headers)
    assert listed.status_code == 200, listed.text
    (in_list,) = [t for t in listed.json()["data"] if t["id"] == task_id]
    changes: list[dict[str, Any]] = []
    cursor: dict[str, str] = {}
    while True:
        feed = client.get("/api/tasks/changes", params=cursor, headers=account.headers)
        assert feed.status_code == 200, feed.text
        changes += feed.json()["data"]
        cursor = {"cursor": feed.json()["meta"]["next_cursor"]}
        if not feed.json()["meta"]["has_more"]:
            break
    latest_change = [c for c in changes if c["task_id"] == task_id][-1]
    with engine.connect() as conn:
        event = conn.execute(
            text("SELECT * FROM task_events WHERE task_id = :id ORDER BY id DESC LIMIT 1"),
            {"id": task_id},
        ).one()
    return {
        "row": db_row(engine, task_id),
        "GET": one.json()["data"],
        "listing": in_list,
        "feed": latest_change["task"],
        "outbox": event.task,
        "event": event_body(event)["task_data"],
    }


def assert_everywhere(
    client: TestClient,
    account: Account,
    engine: Engine,
    column: ColumnInfo,
    task_id: int,
    expected: Any,
) -> None:
    seen = {
        view: same(column, task.get(column.name, "<missing>"))
        for view, task in views(client, account, engine, task_id).items()
    }
    want = same(column, expected)
    wrong = {view: value for view, value in seen.items() if value != want}
    assert not wrong, f"{column.name}: expected {want!r}, got {wrong}"


# --- The tests -------------------------------------------------------------------------------


def test_every_column_is_declared(columns: dict[str, ColumnInfo]) -> None:
    """A column of `tasks` is either written by clients or owned by the server."""
    undeclared = set(columns) - WRITABLE - READ_ONLY
    assert not undeclared, f"columns of tasks declared neither writable nor read-only: {undeclared}"
    missing = WRITABLE - set(columns)
    assert not missing, f"declared writable but not a column of tasks: {missing}"
    assert not WRITABLE & READ_ONLY, WRITABLE & READ_ONLY
    assert BULK_SETTABLE <= WRITABLE
    assert set(SUCCESSOR_MOVES) <= WRITABLE & set(NOT_CARRIED)
    assert set(SUCCESSOR_EXEMPT) <= WRITABLE
    assert set(NOT_CARRIED) <= set(columns), set(NOT_CARRIED) - set(columns)


def test_every_writable_column_gets_values(columns: dict[str, ColumnInfo]) -> None:
    for name in sorted(WRITABLE & set(columns)):
        values = values_for(columns[name])
        assert values.v1 != values.v2, name


def _body(values: Values, column: str, value: Any) -> dict[str, Any]:
    return {**values.needs, column: value}


Door = Callable[[TestClient, Account, Engine, ColumnInfo, Values], tuple[int, Any]]


def door_create(
    client: TestClient, account: Account, engine: Engine, column: ColumnInfo, values: Values
) -> tuple[int, Any]:
    return create(client, account, _body(values, column.name, values.v1))["id"], values.v1


def door_put(
    client: TestClient, account: Account, engine: Engine, column: ColumnInfo, values: Values
) -> tuple[int, Any]:
    task_id = create(client, account, _body(values, column.name, values.v1))["id"]
    body = {"title": "a task", **_body(values, column.name, values.v2)}
    response = client.put(f"/api/tasks/{task_id}", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    return task_id, values.v2


def door_put_omitting(
    client: TestClient, account: Account, engine: Engine, column: ColumnInfo, values: Values
) -> tuple[int, Any]:
    """A PUT that does not name the column (a form that knows fewer fields than a task has)
    leaves it as stored."""
    task_id = create(client, account, _body(values, column.name, values.v1))["id"]
    other = {"description": "edited"} if column.name == "title" else {"title": "edited"}
    response = client.put(f"/api/tasks/{task_id}", json=other, headers=account.headers)
    assert response.status_code == 200, response.text
    return task_id, values.v1


def door_patch(
    client: TestClient, account: Account, engine: Engine, column: ColumnInfo, values: Values
) -> tuple[int, Any]:
    task_id = create(client, account, _body(values, column.name, values.v2))["id"]
    response = client.patch(
        f"/api/tasks/{task_id}", json={column.name: values.v1}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    return task_id, values.v1


def _bulk_ops(task_id: int, column: str, old: Any, new: Any) -> list[dict[str, Any]]:
    if column == "completed":
        return [{"op": "complete" if new else "reopen", "id": task_id}]
    if column == "priority":
        return [{"op": "set_priority", "id": task_id, "priority": new}]
    if column == "tags":
        return [{"op": "remove_tag", "id": task_id, "tag": tag} for tag in old] + [
            {"op": "add_tag", "id": task_id, "tag": tag} for tag in new
        ]
    if column == "list_id":
        return [{"op": "move", "id": task_id, "list_id": new}]
    raise AssertionError(f"bulk cannot set {column}")


def door_bulk(
    client: TestClient, account: Account, engine: Engine, column: ColumnInfo, values: Values
) -> tuple[int, Any]:
    task_id = create(client, account, _body(values, column.name, values.v1))["id"]
    ops = _bulk_ops(task_id, column.name, values.v1, values.v2)
    response = client.post("/api/tasks/bulk", json={"operations": ops}, headers=account.headers)
    assert response.status_code == 200, response.text
    return task_id, values.v2


def door_mcp_add(
    client: TestClient, account: Account, engine: Engine, column: ColumnInfo, values: Values
) -> tuple[int, Any]:
    arguments = {"title": "a task", **_body(values, column.name, values.v1)}
    task_id: int = mcp(client, account, "add_task", **arguments)["task_id"]
    return task_id, values.v1


def door_mcp_update(
    client: TestClient, account: Account, engine: Engine, column: ColumnInfo, values: Values
) -> tuple[int, Any]:
    task_id = create(client, account, _body(values, column.name, values.v1))["id"]
    if column.name == "completed":
        mcp(client, account, "complete_task" if values.v2 else "reopen_task", task_id=task_id)
    else:
        mcp(client, account, "update_task", task_id=task_id, **{column.name: values.v2})
    return task_id, values.v2


def door_successor(
    client: TestClient, account: Account, engine: Engine, column: ColumnInfo, values: Values
) -> tuple[int, Any]:
    """Completes a recurring task whose field holds v1; the next occurrence carries v1 unless
    the product rule says otherwise (`SUCCESSOR_MOVES`), whatever the declarations say."""

    def successor_of(extra: dict[str, Any]) -> tuple[dict[str, Any], int]:
        task_id = create(client, account, RECURRING)["id"]
        if extra:
            patched = client.patch(f"/api/tasks/{task_id}", json=extra, headers=account.headers)
            assert patched.status_code == 200, patched.text
        before = db_row(engine, task_id)
        if not before["completed"]:
            done = client.patch(f"/api/tasks/{task_id}/complete", headers=account.headers)
            assert done.status_code == 200, done.text
        with engine.connect() as conn:
            (successor_id,) = conn.execute(
                text("SELECT id FROM tasks WHERE previous_task_id = :id"), {"id": task_id}
            ).scalars()
        return before, successor_id

    before, successor_id = successor_of({column.name: values.v1})
    if column.name in SUCCESSOR_MOVES:
        return successor_id, SUCCESSOR_MOVES[column.name](before, values.v1)
    return successor_id, values.v1


DOORS: dict[str, Door] = {
    "create": door_create,
    "PUT": door_put,
    "PUT_omitting_it": door_put_omitting,
    "PATCH": door_patch,
    "bulk": door_bulk,
    "mcp_add_task": door_mcp_add,
    "mcp_update_task": door_mcp_update,
    "successor": door_successor,
}


# Every writable column through every door, but for what a door cannot set by design.
CASES = [
    pytest.param(name, door, id=f"{name}-{door}")
    for name in sorted(WRITABLE)
    for door in DOORS
    if not (door == "bulk" and name not in BULK_SETTABLE)
    and not (door == "mcp_add_task" and name in MCP_ADD_EXEMPT)
    and not (door == "successor" and name in SUCCESSOR_EXEMPT)
]


@pytest.mark.parametrize(("name", "door"), CASES)
def test_a_writable_column_survives(
    client: TestClient,
    alice: Account,
    db_engine: Engine,
    columns: dict[str, ColumnInfo],
    name: str,
    door: str,
) -> None:
    assert name in columns, f"{name} is declared writable but is no column of tasks"
    column = columns[name]
    values = resolve(client, alice, values_for(column))
    task_id, expected = DOORS[door](client, alice, db_engine, column, values)
    assert_everywhere(client, alice, db_engine, column, task_id, expected)


# --- A successor and its copied subtasks: every column at once --------------------------------


def not_copied_in_database(engine: Engine) -> set[str]:
    """The columns the database's copy of a successor's subtasks leaves out (migration 0022)."""
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT unnest(tasks_not_copied())")).scalars())


def test_declarations_agree_with_the_database_on_what_a_successor_copies(
    db_engine: Engine, columns: dict[str, ColumnInfo]
) -> None:
    """The app copies the fields declared `copied_to_successor`; the subtasks' trigger copies
    every column but `tasks_not_copied()`. One rule: a column is copied by both or neither."""
    not_copied = not_copied_in_database(db_engine)
    assert not_copied <= set(columns), not_copied - set(columns)
    declared = {
        name: name in task_fields.BY_NAME and task_fields.BY_NAME[name].copied_to_successor
        for name in columns
    }
    disagree = sorted(name for name, copied in declared.items() if copied == (name in not_copied))
    assert not disagree, (
        f"copied_to_successor disagrees with tasks_not_copied() (migration 0022) for {disagree}"
    )


def _set_everything(values: dict[str, Values], *, subtask: bool) -> dict[str, Any]:
    """A create body with every writable column at its first value (a non-default one), but
    what is placed or completed later, and (for a subtask) the rule: a subtask does not recur."""
    body: dict[str, Any] = {}
    for name, value in values.items():
        if name in ("parent_id", "completed") or (subtask and name == "recurrence"):
            continue
        body.update(value.needs)
        body[name] = value.v1
    return body


def test_a_successor_and_its_subtasks_carry_every_column(
    client: TestClient, alice: Account, db_engine: Engine, columns: dict[str, ColumnInfo]
) -> None:
    """A recurring task and two levels of subtasks, every writable column set to a value unlike
    its default; completing it gives a successor and copies of the subtasks that carry every
    column but those `NOT_CARRIED` names, each of which is checked for what it is instead."""
    one_list = resolve(client, alice, values_for(columns["list_id"]))
    values = {
        name: one_list
        if name == "list_id"
        else resolve(client, alice, values_for(columns[name]))
        if name == "assignees"
        else values_for(columns[name])
        for name in sorted(WRITABLE)
    }
    top = create(client, alice, _set_everything(values, subtask=False))
    sub_body = _set_everything(values, subtask=True)
    sub = create(client, alice, {**sub_body, "parent_id": top["id"], "completed": True})
    leaf = create(client, alice, {**sub_body, "parent_id": sub["id"]})
    before = {task["id"]: db_row(db_engine, task["id"]) for task in (top, sub, leaf)}
    # Each value was written (so a column the copy leaves at its default cannot pass).
    for body, task in (
        (_set_everything(values, subtask=False), top),
        (sub_body, sub),
        (sub_body, leaf),
    ):
        row = before[task["id"]]
        wrong = {
            n: row[n]
            for n in body
            if n in values and same(columns[n], row[n]) != same(columns[n], values[n].v1)
        }
        assert not wrong, wrong

    done = client.patch(f"/api/tasks/{top['id']}/complete", headers=alice.headers)
    assert done.status_code == 200, done.text
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT previous_task_id, id FROM tasks WHERE previous_task_id = ANY(:old)"),
            {"old": list(before)},
        )
        copy_of: dict[int, int] = {row.previous_task_id: row.id for row in rows}
    assert set(copy_of) == set(before), copy_of
    after = {old: db_row(db_engine, new) for old, new in copy_of.items()}
    shift = after[top["id"]]["due_date"] - before[top["id"]]["due_date"]

    for old, row in before.items():
        copy = after[old]
        is_top = old == top["id"]
        carried = {
            name: (same(columns[name], copy[name]), same(columns[name], row[name]))
            for name in columns
            if name not in NOT_CARRIED
        }
        lost = {name: pair for name, pair in carried.items() if pair[0] != pair[1]}
        assert not lost, f"{'successor' if is_top else 'copied subtask'} lost (got, had): {lost}"
        # What NOT_CARRIED says each of the others is instead.
        assert copy["id"] != old
        assert (copy["completed"], copy["completed_at"]) == (False, None)
        assert copy["previous_task_id"] == old
        if is_top:
            assert copy["due_date"] == row["next_due_date"]
            assert copy["parent_id"] is None
        else:
            assert copy["due_date"] == row["due_date"] + shift
            assert copy["next_due_date"] is None
            assert copy["parent_id"] == copy_of[row["parent_id"]]
            assert copy["position"] == row["position"]
        below = [r for r in after.values() if r["parent_id"] == copy["id"]]
        assert (copy["subtask_count"], copy["open_subtask_count"]) == (len(below), len(below))
