"""A task that changes lists, in the change feeds of the lists' members (issue 39, "Losing
access"; migration 0037): moved out of a shared list (to no list, to a list of the owner's
own, to a list a member is not in), with its subtasks, it reaches each member of the old list
that cannot read the new one as an `access.ended` tombstone; moved into one, as its change (an
upsert). The owner's feed and the activity keep the one `updated` event of each row. Whoever
moves it (the owner, an editor, a bulk step, psql). A tombstone in flight is not served past
(the owner's change lock). Over real PostgreSQL, rate limiting on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.sharing.helpers import add_member, drain_feed, get, make_list, make_task


@pytest.fixture
def carol(register: Callable[..., Account]) -> Account:
    return register("carol@example.com")


@pytest.fixture
def dave(register: Callable[..., Account]) -> Account:
    return register("dave@example.com")


def _entries(feed: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(entry["type"], entry["task_id"]) for entry in feed]


def _tree(client: TestClient, owner: Account, **fields: Any) -> tuple[int, int, int]:
    """A task with a subtask with a subtask of its own."""
    parent = make_task(client, owner, "Parent", **fields)
    child = make_task(client, owner, "Child", parent_id=parent)
    grandchild = make_task(client, owner, "Grandchild", parent_id=child)
    return parent, child, grandchild


def _patch(client: TestClient, caller: Account, task_id: int, **body: Any) -> dict[str, Any]:
    response = client.patch(f"/api/tasks/{task_id}", json=body, headers=caller.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _move(client: TestClient, caller: Account, task_id: int, **body: Any) -> None:
    response = client.post(f"/api/tasks/{task_id}/move", json=body, headers=caller.headers)
    assert response.status_code == 200, response.text


def _listed(client: TestClient, caller: Account) -> dict[int, dict[str, Any]]:
    """Every task the caller can list, by id."""
    tasks: dict[int, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 100}
    while True:
        body = get(client, caller, "/api/tasks", **params)
        tasks.update({task["id"]: task for task in body["data"]})
        if not body["meta"]["has_more"]:
            return tasks
        params["cursor"] = body["meta"]["next_cursor"]


def _replay(copy: dict[int, dict[str, Any]], feed: list[dict[str, Any]]) -> None:
    """What a client keeping a copy does with the feed: an entry with a task upserts it, one
    without (`deleted`, `access.ended`) drops it."""
    for entry in feed:
        if entry["task"] is None:
            copy.pop(entry["task_id"], None)
        else:
            copy[entry["task_id"]] = entry["task"]


# What a copy and a listing must agree on (the subtask counts are null in the feed).
_COMPARED = ("updated_at", "title", "list_id", "parent_id")


def _in_sync(copy: dict[int, dict[str, Any]], listed: dict[int, dict[str, Any]]) -> bool:
    def seen(tasks: dict[int, dict[str, Any]]) -> dict[int, tuple[Any, ...]]:
        return {i: tuple(task[k] for k in _COMPARED) for i, task in tasks.items()}

    return seen(copy) == seen(listed)


def test_moved_out_to_no_list_tombstones_the_task_and_its_subtasks_for_members(
    client: TestClient, alice: Account, bob: Account, carol: Account, db_engine: Engine
) -> None:
    shared = make_list(client, alice)
    parent, child, grandchild = _tree(client, alice, list_id=shared)
    stays = make_task(client, alice, "Stays", list_id=shared)
    add_member(db_engine, alice, shared, bob, "viewer")
    add_member(db_engine, alice, shared, carol, "editor")
    _, bob_cursor = drain_feed(client, bob)
    _, carol_cursor = drain_feed(client, carol)
    _, alice_cursor = drain_feed(client, alice)

    assert _patch(client, alice, parent, list_id=None)["list_id"] is None

    for member, cursor in ((bob, bob_cursor), (carol, carol_cursor)):
        feed, _ = drain_feed(client, member, cursor)
        assert sorted(_entries(feed)) == sorted(
            ("access.ended", task) for task in (parent, child, grandchild)
        )
        assert all(entry["task"] is None for entry in feed)
        assert stays not in {entry["task_id"] for entry in feed}
    # The owner's feed: the ordinary change of each row, and nothing of the members'.
    feed, _ = drain_feed(client, alice, alice_cursor)
    assert sorted(_entries(feed)) == sorted(("updated", t) for t in (parent, child, grandchild))
    assert all(entry["task"]["list_id"] is None for entry in feed)


def test_moved_to_a_personal_list_by_the_move_route_tombstones_it_and_nothing_after(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    shared = make_list(client, alice, "Shared")
    personal = make_list(client, alice, "Personal")
    parent, child, grandchild = _tree(client, alice, list_id=shared)
    add_member(db_engine, alice, shared, bob, "editor")
    _, cursor = drain_feed(client, bob)

    _move(client, alice, parent, list_id=personal)
    feed, cursor = drain_feed(client, bob, cursor)
    assert sorted(_entries(feed)) == sorted(
        ("access.ended", task) for task in (parent, child, grandchild)
    )
    # Out of reach: its later changes do not reach the member, and it is not the member's.
    _patch(client, alice, child, title="Renamed where Bob cannot see")
    feed, _ = drain_feed(client, bob, cursor)
    assert feed == []
    assert client.get(f"/api/tasks/{parent}", headers=bob.headers).status_code == 404


def test_moved_between_shared_lists_ends_access_only_for_whom_the_new_list_is_closed(
    client: TestClient,
    alice: Account,
    bob: Account,
    carol: Account,
    dave: Account,
    db_engine: Engine,
) -> None:
    """Bob is in both lists (he keeps it: the change), Carol only in the old one (a
    tombstone), Dave only in the new one (the change brings it: an upsert)."""
    old = make_list(client, alice, "Old")
    new = make_list(client, alice, "New")
    parent, child, grandchild = _tree(client, alice, list_id=old)
    add_member(db_engine, alice, old, bob, "viewer")
    add_member(db_engine, alice, new, bob, "commenter")
    add_member(db_engine, alice, old, carol, "admin")
    add_member(db_engine, alice, new, dave, "viewer")
    cursors = {member.id: drain_feed(client, member)[1] for member in (bob, carol, dave)}

    moved = [
        {"op": "move", "id": parent, "list_id": new},
    ]
    response = client.post("/api/tasks/bulk", json={"operations": moved}, headers=alice.headers)
    assert response.status_code == 200, response.text

    tree = (parent, child, grandchild)
    bob_feed, _ = drain_feed(client, bob, cursors[bob.id])
    assert sorted(_entries(bob_feed)) == sorted(("updated", t) for t in tree)
    carol_feed, _ = drain_feed(client, carol, cursors[carol.id])
    assert sorted(_entries(carol_feed)) == sorted(("access.ended", t) for t in tree)
    dave_feed, _ = drain_feed(client, dave, cursors[dave.id])
    assert sorted(_entries(dave_feed)) == sorted(("updated", t) for t in tree)
    assert {entry["task"]["list_id"] for entry in dave_feed} == {new}
    assert {entry["task"]["title"] for entry in dave_feed} == {"Parent", "Child", "Grandchild"}


def test_moved_into_a_shared_list_reaches_its_members_as_an_upsert(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    shared = make_list(client, alice)
    parent, child, grandchild = _tree(client, alice)
    add_member(db_engine, alice, shared, bob, "viewer")
    _, cursor = drain_feed(client, bob)
    copy: dict[int, dict[str, Any]] = {}

    _patch(client, alice, parent, list_id=shared)
    feed, cursor = drain_feed(client, bob, cursor)
    assert sorted(_entries(feed)) == sorted(("updated", t) for t in (parent, child, grandchild))
    _replay(copy, feed)
    assert set(copy) == {parent, child, grandchild}
    assert copy[child]["parent_id"] == parent and copy[child]["list_id"] == shared
    assert _in_sync(copy, _listed(client, bob))


def test_an_editor_moving_a_task_between_lists_ends_access_for_the_other_members(
    client: TestClient, alice: Account, bob: Account, carol: Account, db_engine: Engine
) -> None:
    """The move is a member's (editor on both lists): the tombstones go to Carol, who is in
    the old list only, not to Bob, who made the move and can read the new list."""
    old = make_list(client, alice, "Old")
    new = make_list(client, alice, "New")
    task = make_task(client, alice, "Moved by Bob", list_id=old)
    add_member(db_engine, alice, old, bob, "editor")
    add_member(db_engine, alice, new, bob, "editor")
    add_member(db_engine, alice, old, carol, "viewer")
    _, bob_cursor = drain_feed(client, bob)
    _, carol_cursor = drain_feed(client, carol)

    assert _patch(client, bob, task, list_id=new)["list_id"] == new
    feed, _ = drain_feed(client, carol, carol_cursor)
    assert _entries(feed) == [("access.ended", task)]
    feed, _ = drain_feed(client, bob, bob_cursor)
    assert _entries(feed) == [("updated", task)]
    # The tombstone says who ended the access, as a removal's does (the feed does not show
    # it; the record keeps it).
    with db_engine.connect() as conn:
        actor = conn.execute(
            text(
                "SELECT actor_id FROM task_events "
                "WHERE user_id = :carol AND type = 'access.ended' AND task_id = :task"
            ),
            {"carol": carol.id, "task": task},
        ).scalar_one()
    assert actor == bob.id


def test_the_move_stays_one_event_in_the_activity_and_the_outbox(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """One record of what happened: the owner's `updated` event per row, pending for the
    worker and shown in the activity; the tombstones are the feed's only (delivered, never
    in the activity)."""
    shared = make_list(client, alice)
    parent = make_task(client, alice, "Parent", list_id=shared)
    child = make_task(client, alice, "Child", parent_id=parent)
    add_member(db_engine, alice, shared, bob, "editor")
    latest = get(client, alice, "/api/activity", limit=1)["data"][0]["id"]

    _patch(client, alice, parent, list_id=None)
    activity = get(client, alice, "/api/activity", limit=100)["data"]
    new = [(item["event"], item["object_id"]) for item in activity if item["id"] > latest]
    assert sorted(new) == sorted([("task.updated", parent), ("task.updated", child)])
    moved = next(item for item in activity if item["object_id"] == parent)
    assert moved["changes"]["list_id"] == [shared, None]
    # Bob's activity has nothing of it: the task is out of his reach, the tombstones no events.
    bob_activity = get(client, bob, "/api/activity", limit=100)["data"]
    assert all(item["id"] <= latest for item in bob_activity)
    with db_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, type, state FROM task_events "
                "WHERE id > :latest AND task_id IN (:parent, :child) ORDER BY id"
            ),
            {"latest": latest, "parent": parent, "child": child},
        ).all()
    assert sorted(tuple(row) for row in rows) == sorted(
        [
            (alice.id, "updated", "pending"),
            (alice.id, "updated", "pending"),
            (bob.id, "access.ended", "delivered"),
            (bob.id, "access.ended", "delivered"),
        ]
    )


def test_a_members_copy_follows_moves_out_in_and_back(
    client: TestClient, alice: Account, bob: Account, carol: Account, db_engine: Engine
) -> None:
    """A member keeping a copy from the feed alone ends with what it can list, after every
    kind of move (PATCH, the move route, bulk steps out and back in one request); the owner
    too."""
    team = make_list(client, alice, "Team")
    other = make_list(client, alice, "Other")
    personal = make_list(client, alice, "Personal")
    add_member(db_engine, alice, team, bob, "editor")
    add_member(db_engine, alice, other, carol, "editor")
    copies: dict[str, dict[int, dict[str, Any]]] = {}
    cursors: dict[str, str] = {}
    for account in (alice, bob, carol):
        feed, cursors[account.id] = drain_feed(client, account)
        copies[account.id] = {}
        _replay(copies[account.id], feed)

    def check() -> None:
        for account in (alice, bob, carol):
            feed, cursors[account.id] = drain_feed(client, account, cursors[account.id])
            _replay(copies[account.id], feed)
            assert _in_sync(copies[account.id], _listed(client, account)), account.email

    parent, child, _ = _tree(client, alice, list_id=team)
    lone = make_task(client, alice, "Lone", list_id=team)
    check()
    _patch(client, alice, parent, list_id=None)
    check()
    _move(client, alice, parent, list_id=team)
    check()
    _patch(client, alice, lone, list_id=other)
    check()
    steps = [
        {"op": "move", "id": parent, "list_id": personal},
        {"op": "move", "id": parent, "list_id": team},
        {"op": "move", "id": lone, "list_id": team},
    ]
    response = client.post("/api/tasks/bulk", json={"operations": steps}, headers=alice.headers)
    assert response.status_code == 200, response.text
    check()
    _patch(client, alice, child, title="Still in the team")
    _move(client, alice, parent, list_id=other)
    check()
    assert set(copies[carol.id]) >= {parent, child}
    assert parent not in copies[bob.id]


def test_a_move_written_outside_the_api_tombstones_too(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """The rule is the database's: psql moving a task out gets the members' tombstones."""
    shared = make_list(client, alice)
    task = make_task(client, alice, "Moved by psql", list_id=shared)
    add_member(db_engine, alice, shared, bob, "viewer")
    _, cursor = drain_feed(client, bob)
    with db_engine.begin() as conn:
        conn.execute(
            text("UPDATE tasks SET list_id = NULL, version = version + 1 WHERE id = :t"),
            {"t": task},
        )
    feed, _ = drain_feed(client, bob, cursor)
    assert _entries(feed) == [("access.ended", task)]


def test_a_move_in_flight_is_not_served_past_by_a_members_later_change(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """Alice's move out is in flight (her change lock held, the tombstone's id taken); Bob's
    own change takes a higher id and commits. Bob's poll must not pass the tombstone: it
    stops below it, and gets both, in id order, once Alice's move commits."""
    shared = make_list(client, alice)
    task = make_task(client, alice, "Moving", list_id=shared)
    add_member(db_engine, alice, shared, bob, "editor")
    _, cursor = drain_feed(client, bob)

    conn = db_engine.connect()
    transaction = conn.begin()
    try:
        conn.execute(
            text("UPDATE tasks SET list_id = NULL, version = version + 1 WHERE id = :t"),
            {"t": task},
        )
        mine = make_task(client, bob, "Bob's own, committed first")
        feed, cursor = drain_feed(client, bob, cursor)
        assert feed == []
        transaction.commit()
    finally:
        conn.close()
    feed, _ = drain_feed(client, bob, cursor)
    assert _entries(feed) == [("access.ended", task), ("created", mine)]
