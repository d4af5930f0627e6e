"""Subtasks and manual order (issue 24, items 2-3): a subtask lives in its parent's list, the
tree has a maximum depth and no cycles, deleting a parent deletes its subtree, completion goes
down and reopening goes up, a recurring task's checklist comes back with each occurrence,
and `POST /api/tasks/{id}/move` puts a task (with its subtree) at an exact place."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from backend.db.engine import normalize_url
from backend.models.task_list import MAX_DEPTH, SUBTASKS_PER_TASK, TASKS_PER_LIST
from tests.api.test_lists import make_list, make_task
from tests.conftest import Account


def get(client: TestClient, account: Account, task_id: int) -> dict[str, Any]:
    response = client.get(f"/api/tasks/{task_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def move(client: TestClient, account: Account, task_id: int, **body: Any) -> Any:
    return client.post(f"/api/tasks/{task_id}/move", json=body, headers=account.headers)


def order(client: TestClient, account: Account, query: str) -> list[str]:
    page = client.get(f"/api/tasks?sort=position&{query}", headers=account.headers)
    assert page.status_code == 200, page.text
    return [t["title"] for t in page.json()["data"]]


def test_a_subtask_is_in_its_parents_list(client: TestClient, alice: Account) -> None:
    groceries = make_list(client, alice, "Groceries")
    work = make_list(client, alice, "Work")
    parent = make_task(client, alice, "parent", list_id=groceries["id"])
    child = make_task(client, alice, "child", parent_id=parent["id"])
    assert child["list_id"] == groceries["id"]
    same = make_task(client, alice, "same", parent_id=parent["id"], list_id=groceries["id"])
    assert same["list_id"] == groceries["id"]
    for list_id in (work["id"], None):
        refused = client.post(
            "/api/tasks",
            json={"title": "x", "parent_id": parent["id"], "list_id": list_id},
            headers=alice.headers,
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == "body.list_id"
    # Moving the parent to another list takes its subtree along, in one statement.
    moved = move(client, alice, parent["id"], list_id=work["id"])
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["list_id"] == work["id"]
    assert get(client, alice, child["id"])["list_id"] == work["id"]
    assert get(client, alice, same["id"])["list_id"] == work["id"]
    # PATCH of a subtask's list alone takes it out of its parent, to that list's top level.
    patched = client.patch(
        f"/api/tasks/{child['id']}", json={"list_id": groceries["id"]}, headers=alice.headers
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["data"]["list_id"], patched.json()["data"]["parent_id"]) == (
        groceries["id"],
        None,
    )


def test_depth_cycles_and_recurrence_are_refused(client: TestClient, alice: Account) -> None:
    chain = [make_task(client, alice, "level 0")]
    for level in range(1, MAX_DEPTH + 1):
        chain.append(make_task(client, alice, f"level {level}", parent_id=chain[-1]["id"]))
    too_deep = client.post(
        "/api/tasks",
        json={"title": "too deep", "parent_id": chain[-1]["id"]},
        headers=alice.headers,
    )
    assert too_deep.status_code == 422 and "levels deep" in too_deep.json()["error"]["message"]
    # Under itself or one of its subtasks: a cycle.
    for target in (chain[0], chain[2]):
        refused = move(client, alice, chain[0]["id"], parent_id=target["id"])
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == "body.parent_id"
    # A subtree that would end deeper than the maximum.
    other = make_task(client, alice, "other")
    deeper = move(client, alice, chain[1]["id"], parent_id=other["id"])
    assert deeper.status_code == 200, deeper.text  # 1 + 2 levels below: depth 3
    assert (
        move(client, alice, other["id"], parent_id=make_task(client, alice, "p")["id"]).status_code
        == 422
    )
    # Only top-level tasks recur.
    recurring = {"recurrence": "daily", "due_date": "2030-01-01"}
    for body in ({"title": "x", "parent_id": other["id"], **recurring},):
        assert client.post("/api/tasks", json=body, headers=alice.headers).status_code == 422
    assert (
        client.patch(
            f"/api/tasks/{chain[1]['id']}", json=recurring, headers=alice.headers
        ).status_code
        == 422
    )
    series = make_task(client, alice, "series", **recurring)
    refused = move(client, alice, series["id"], parent_id=other["id"])
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "body.recurrence"
    # Nothing changed by any refusal.
    assert get(client, alice, chain[0]["id"])["parent_id"] is None
    assert get(client, alice, series["id"])["parent_id"] is None


def test_deleting_a_parent_deletes_its_subtree_each_once(
    client: TestClient, alice: Account
) -> None:
    parent = make_task(client, alice, "parent")
    children = [make_task(client, alice, f"child {n}", parent_id=parent["id"]) for n in range(3)]
    grandchild = make_task(client, alice, "grandchild", parent_id=children[0]["id"])
    keep = make_task(client, alice, "keep")
    cursor = client.get("/api/tasks", headers=alice.headers).json()["meta"]["changes_cursor"]
    assert client.delete(f"/api/tasks/{parent['id']}", headers=alice.headers).status_code == 204
    changes = client.get("/api/tasks/changes", params={"cursor": cursor}, headers=alice.headers)
    deleted = [c["task_id"] for c in changes.json()["data"] if c["type"] == "deleted"]
    gone = [parent["id"], grandchild["id"], *(c["id"] for c in children)]
    assert sorted(deleted) == sorted(gone)
    assert [t["id"] for t in client.get("/api/tasks", headers=alice.headers).json()["data"]] == [
        keep["id"]
    ]


def test_completion_goes_down_and_reopening_goes_up(client: TestClient, alice: Account) -> None:
    parent = make_task(client, alice, "parent")
    child = make_task(client, alice, "child", parent_id=parent["id"])
    grandchild = make_task(client, alice, "grandchild", parent_id=child["id"])
    done_early = make_task(client, alice, "done early", parent_id=parent["id"], completed=True)
    before = get(client, alice, parent["id"])
    assert (before["subtask_count"], before["open_subtask_count"]) == (2, 1)
    completed = client.patch(
        f"/api/tasks/{parent['id']}/complete", json={"completed": True}, headers=alice.headers
    ).json()["data"]
    # The answer already counts the subtasks the completion completed.
    assert (completed["subtask_count"], completed["open_subtask_count"]) == (2, 0)
    for task in (child, grandchild):
        assert get(client, alice, task["id"])["completed"] is True
    # An already completed subtask keeps its completion time.
    assert get(client, alice, done_early["id"])["completed_at"] == done_early["completed_at"]
    # Reopening the grandchild reopens its completed ancestors, and only them.
    client.patch(
        f"/api/tasks/{grandchild['id']}/complete", json={"completed": False}, headers=alice.headers
    )
    assert [get(client, alice, t["id"])["completed"] for t in (parent, child, done_early)] == [
        False,
        False,
        True,
    ]
    # An open subtask created (or moved) under a completed task reopens it.
    client.patch(
        f"/api/tasks/{parent['id']}/complete", json={"completed": True}, headers=alice.headers
    )
    make_task(client, alice, "new step", parent_id=child["id"])
    assert get(client, alice, parent["id"])["completed"] is False
    client.patch(
        f"/api/tasks/{parent['id']}/complete", json={"completed": True}, headers=alice.headers
    )
    loose = make_task(client, alice, "loose")
    assert move(client, alice, loose["id"], parent_id=parent["id"]).status_code == 200
    assert get(client, alice, parent["id"])["completed"] is False
    # Bulk completion completes the subtree too.
    bulk = {"operations": [{"op": "complete", "id": parent["id"]}]}
    assert client.post("/api/tasks/bulk", json=bulk, headers=alice.headers).status_code == 200
    assert get(client, alice, loose["id"])["completed"] is True


def test_a_recurring_tasks_checklist_comes_back_pending(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    errands = make_list(client, alice, "Errands")
    trip = make_task(
        client,
        alice,
        "weekly trip",
        list_id=errands["id"],
        recurrence="weekly",
        due_date="2030-01-07T09:00:00Z",
    )
    pack = make_task(
        client,
        alice,
        "pack",
        parent_id=trip["id"],
        due_date="2030-01-07T07:00:00Z",
        reminders=[{"at": "2030-01-06T20:00:00Z"}, {"minutes_before_due": 30}],
        priority="high",
        tags=["bag"],
    )
    socks = make_task(client, alice, "socks", parent_id=pack["id"])
    tickets = make_task(client, alice, "tickets", parent_id=trip["id"])
    move(client, alice, tickets["id"], before_id=pack["id"])
    done = client.patch(f"/api/tasks/{trip['id']}/complete", headers=alice.headers)
    assert done.status_code == 200, done.text
    with db_engine.connect() as conn:
        (next_id,) = conn.execute(
            text("SELECT id FROM tasks WHERE previous_task_id = :t"), {"t": trip["id"]}
        ).scalars()
    subtree = client.get(f"/api/tasks/{next_id}/subtree", headers=alice.headers)
    assert subtree.status_code == 200, subtree.text
    tasks = subtree.json()["data"]
    assert [t["title"] for t in tasks] == ["weekly trip", "tickets", "pack", "socks"]
    assert all(not t["completed"] for t in tasks)
    assert all(t["list_id"] == errands["id"] for t in tasks)
    nxt, tickets2, pack2, socks2 = tasks
    assert nxt["due_date"] == "2030-01-14T09:00:00Z"
    assert (tickets2["parent_id"], pack2["parent_id"], socks2["parent_id"]) == (
        nxt["id"],
        nxt["id"],
        pack2["id"],
    )
    # Each copy names the subtask it continues; due dates and `at` reminders move a week.
    assert (pack2["previous_task_id"], socks2["previous_task_id"]) == (pack["id"], socks["id"])
    assert pack2["due_date"] == "2030-01-14T07:00:00Z"
    assert pack2["reminders"] == [{"at": "2030-01-13T20:00:00Z"}, {"minutes_before_due": 30}]
    assert (pack2["priority"], pack2["tags"]) == ("high", ["bag"])
    # The old occurrence's checklist was completed with it.
    assert get(client, alice, socks["id"])["completed"] is True
    # Completing the old one again (reopen, complete) copies nothing twice.
    client.patch(f"/api/tasks/{trip['id']}/complete", headers=alice.headers)
    client.patch(f"/api/tasks/{trip['id']}/complete", headers=alice.headers)
    with db_engine.connect() as conn:
        copies = conn.execute(
            text("SELECT count(*) FROM tasks WHERE previous_task_id IN (:a, :b, :c)"),
            {"a": pack["id"], "b": socks["id"], "c": tickets["id"]},
        ).scalar()
    assert copies == 3


def test_the_subtree_read(client: TestClient, alice: Account) -> None:
    root = make_task(client, alice, "root")
    a = make_task(client, alice, "a", parent_id=root["id"])
    b = make_task(client, alice, "b", parent_id=root["id"])
    a1 = make_task(client, alice, "a1", parent_id=a["id"])
    b1 = make_task(client, alice, "b1", parent_id=b["id"])
    b2 = make_task(client, alice, "b2", parent_id=b["id"])
    move(client, alice, b2["id"], before_id=b1["id"])
    answer = client.get(f"/api/tasks/{root['id']}/subtree", headers=alice.headers).json()
    assert [t["title"] for t in answer["data"]] == ["root", "a", "a1", "b", "b2", "b1"]
    assert answer["meta"] == {"count": 6}
    assert answer["data"][0]["subtask_count"] == 2
    only_b = client.get(f"/api/tasks/{b['id']}/subtree", headers=alice.headers).json()["data"]
    assert [t["id"] for t in only_b] == [b["id"], b2["id"], b1["id"]]
    assert client.get("/api/tasks/999999/subtree", headers=alice.headers).status_code == 404
    del a1


def test_manual_order_and_moves(client: TestClient, alice: Account) -> None:
    todo = make_list(client, alice, "Todo")
    first, second, third = (make_task(client, alice, t, list_id=todo["id"]) for t in "abc")
    query = f"list_id={todo['id']}&parent_id=none"
    # A new top-level task goes first (the default listing's order, newest first).
    assert order(client, alice, query) == ["c", "b", "a"]
    assert move(client, alice, first["id"], before_id=third["id"]).json()["data"]["title"] == "a"
    assert order(client, alice, query) == ["a", "c", "b"]
    assert move(client, alice, first["id"], after_id=second["id"]).status_code == 200
    assert order(client, alice, query) == ["c", "b", "a"]
    assert move(client, alice, third["id"]).status_code == 200  # no anchor: last
    assert order(client, alice, query) == ["b", "a", "c"]
    # Repeated moves into the same gap: the gap closes, a few neighbours are respaced, the
    # order is always right and every position distinct.
    others = [make_task(client, alice, f"x{n}", list_id=todo["id"]) for n in range(6)]
    for n in range(60):
        mover = others[n % len(others)]
        answer = move(client, alice, mover["id"], after_id=second["id"])
        assert answer.status_code == 200, answer.text
        titles = order(client, alice, query)
        assert titles[titles.index("b") + 1] == mover["title"]
    page = client.get(f"/api/tasks?sort=position&{query}", headers=alice.headers).json()["data"]
    positions = [t["position"] for t in page]
    assert positions == sorted(set(positions)) and len(page) == 9
    # The anchor must be in the destination.
    other = make_list(client, alice, "Other")
    wrong = move(client, alice, first["id"], list_id=other["id"], after_id=second["id"])
    assert wrong.status_code == 422
    assert wrong.json()["error"]["details"][0]["field"] == "body.after_id"
    assert move(client, alice, first["id"], after_id=first["id"]).status_code == 422
    both = {"after_id": second["id"], "before_id": third["id"]}
    assert move(client, alice, first["id"], **both).status_code == 422
    # A move to another list with an anchor there.
    there = make_task(client, alice, "there", list_id=other["id"])
    moved = move(client, alice, first["id"], after_id=there["id"]).json()["data"]
    assert (moved["list_id"], order(client, alice, f"list_id={other['id']}")) == (
        other["id"],
        ["there", "a"],
    )


def test_patch_and_put_keep_the_place_unless_the_place_changes(
    client: TestClient, alice: Account
) -> None:
    todo = make_list(client, alice, "Todo")
    a, b, c = (make_task(client, alice, t, list_id=todo["id"]) for t in "abc")
    before = get(client, alice, b["id"])
    # A task sent back whole (its list and parent included) stays where it is.
    whole = {**before, "title": "b2"}
    after = client.put(f"/api/tasks/{b['id']}", json=whole, headers=alice.headers).json()["data"]
    assert (after["position"], after["list_id"]) == (before["position"], todo["id"])
    patched = client.patch(
        f"/api/tasks/{b['id']}", json={"list_id": todo["id"], "title": "b3"}, headers=alice.headers
    ).json()["data"]
    assert patched["position"] == before["position"] and patched["title"] == "b3"
    # PUT without list_id or parent_id keeps them (older clients' PUTs do not move tasks).
    kept = client.put(f"/api/tasks/{b['id']}", json={"title": "b4"}, headers=alice.headers)
    assert kept.json()["data"]["list_id"] == todo["id"]
    # PUT with null: out of the list, to the end of the tasks in no list.
    out = client.put(
        f"/api/tasks/{b['id']}", json={"title": "b5", "list_id": None}, headers=alice.headers
    ).json()["data"]
    assert out["list_id"] is None and out["title"] == "b5"
    # If-Match on a move, PATCH and PUT.
    stale = {**alice.headers, "If-Match": f'"{a["id"]}-1"'}
    assert client.post(f"/api/tasks/{a['id']}/move", json={}, headers=stale).status_code == 200
    assert client.post(f"/api/tasks/{a['id']}/move", json={}, headers=stale).status_code == 412
    assert (
        client.patch(f"/api/tasks/{a['id']}", json={"list_id": None}, headers=stale).status_code
        == 412
    )
    del c


def test_bulk_moves_a_set_of_tasks_into_a_list(client: TestClient, alice: Account) -> None:
    target = make_list(client, alice, "Target")
    tasks = [make_task(client, alice, t) for t in ("one", "two", "three")]
    child = make_task(client, alice, "child", parent_id=tasks[0]["id"])
    operations = [{"op": "move", "id": t["id"], "list_id": target["id"]} for t in tasks]
    answer = client.post("/api/tasks/bulk", json={"operations": operations}, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    assert [r["task"]["list_id"] for r in answer.json()["data"]["results"]] == [target["id"]] * 3
    assert order(client, alice, f"list_id={target['id']}&parent_id=none") == ["one", "two", "three"]
    assert get(client, alice, child["id"])["list_id"] == target["id"]
    # All or nothing: a missing list in the second operation changes nothing.
    back = [
        {"op": "move", "id": tasks[0]["id"], "list_id": None},
        {"op": "move", "id": tasks[1]["id"], "list_id": 10**9},
    ]
    refused = client.post("/api/tasks/bulk", json={"operations": back}, headers=alice.headers)
    assert refused.status_code == 404
    assert refused.json()["error"]["details"] == [
        {"field": "body.operations.1", "message": "List not found", "type": "not_found"}
    ]
    assert get(client, alice, tasks[0]["id"])["list_id"] == target["id"]


def test_the_tree_limit(client: TestClient, alice: Account, db_engine: Engine) -> None:
    root = make_task(client, alice, "root")
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (user_id, title, parent_id, position) "
                "SELECT :u, 's' || n, :p, n FROM generate_series(1, :count) AS n"
            ),
            {"u": alice.id, "p": root["id"], "count": SUBTASKS_PER_TASK},
        )
    refused = client.post(
        "/api/tasks", json={"title": "one more", "parent_id": root["id"]}, headers=alice.headers
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "LIMIT_REACHED"
    loose = make_task(client, alice, "loose")
    assert move(client, alice, loose["id"], parent_id=root["id"]).status_code == 422
    # Reordering inside the full tree is fine.
    first = client.get(
        f"/api/tasks?parent_id={root['id']}&sort=position&limit=2", headers=alice.headers
    )
    one, two = first.json()["data"]
    assert move(client, alice, one["id"], after_id=two["id"]).status_code == 200
    subtree = client.get(f"/api/tasks/{root['id']}/subtree", headers=alice.headers).json()
    assert subtree["meta"]["count"] == SUBTASKS_PER_TASK + 1


def test_the_tasks_per_list_limit(client: TestClient, alice: Account, database_url: str) -> None:
    full = make_list(client, alice, "Full")
    # 10,000 rows and their events: set up on an engine of its own, outside the app's
    # statement timeout (on a loaded machine the insert can take longer than 5 s).
    setup = create_engine(normalize_url(database_url))
    try:
        with setup.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tasks (user_id, title, list_id, position) "
                    "SELECT :u, 't' || n, :l, n FROM generate_series(1, :count) AS n"
                ),
                {"u": alice.id, "l": full["id"], "count": TASKS_PER_LIST},
            )
    finally:
        setup.dispose()
    loose = make_task(client, alice, "loose")
    for answer in (
        client.post(
            "/api/tasks", json={"title": "x", "list_id": full["id"]}, headers=alice.headers
        ),
        move(client, alice, loose["id"], list_id=full["id"]),
        client.patch(
            f"/api/tasks/{loose['id']}", json={"list_id": full["id"]}, headers=alice.headers
        ),
    ):
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "LIMIT_REACHED"
    assert get(client, alice, loose["id"])["list_id"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"parent_id": 0},
        {"parent_id": -5},
        {"parent_id": 2**53},
        {"parent_id": "5"},
        {"parent_id": 1.0},
        {"after_id": True},
        {"list_id": [1]},
        {"position": 5, "unknown": 1},
    ],
)
def test_bad_move_bodies_are_422(client: TestClient, alice: Account, body: Any) -> None:
    task = make_task(client, alice, "t")
    answer = move(client, alice, task["id"], **body)
    assert answer.status_code == 422, answer.text


def test_position_is_server_owned(client: TestClient, alice: Account) -> None:
    task = make_task(client, alice, "t", position=12345)  # read-only: dropped
    assert task["position"] != 12345
    patched = client.patch(f"/api/tasks/{task['id']}", json={"position": 1}, headers=alice.headers)
    assert patched.json()["data"]["position"] == task["position"]


def test_a_subtask_sent_its_own_list_stays_a_subtask(client: TestClient, alice: Account) -> None:
    home = make_list(client, alice, "Home")
    parent = make_task(client, alice, "parent", list_id=home["id"])
    child = make_task(client, alice, "child", parent_id=parent["id"])
    same = client.patch(
        f"/api/tasks/{child['id']}", json={"list_id": home["id"]}, headers=alice.headers
    ).json()["data"]
    assert (same["parent_id"], same["position"]) == (parent["id"], child["position"])


def test_placing_and_scheduling_in_one_write(client: TestClient, alice: Account) -> None:
    """A PUT that takes a subtask to the top level and gives it a rule: placed first, then the
    schedule over the stored task; a rule for a task that stays a subtask is refused."""
    parent = make_task(client, alice, "parent")
    child = make_task(client, alice, "child", parent_id=parent["id"])
    rule = {"recurrence": "daily", "due_date": "2030-01-01"}
    refused = client.patch(
        f"/api/tasks/{child['id']}", json={**rule, "parent_id": parent["id"]}, headers=alice.headers
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "body.recurrence"
    put = client.put(
        f"/api/tasks/{child['id']}",
        json={"title": "now a series", "parent_id": None, **rule},
        headers={**alice.headers, "If-Match": f'"{child["id"]}-1"'},
    )
    assert put.status_code == 200, put.text
    body = put.json()["data"]
    assert (body["parent_id"], body["recurrence"]) == (None, "FREQ=DAILY")
    assert get(client, alice, parent["id"])["subtask_count"] == 0
