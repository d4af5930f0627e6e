"""The change feed of a member (issue 39, "Losing access"): a shared list's task changes
reach it, gaining access brings the list's tasks as upserts and losing it tombstones, after
which nothing of the list does; no change is skipped when spaces' streams are merged (the
hold's horizon, shown against a deliberate break); membership and comment events go through
the outbox to the sinks. Over real PostgreSQL, rate limiting on."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.services.history import changes
from tests.conftest import Account
from tests.events.conftest import Receiver, delivery_settings, make_worker, receiver
from tests.sharing.helpers import add_member, drain_feed, make_list, make_task, remove_member

__all__ = ["receiver"]  # the fixture, imported for this module's tests


def _entries(feed: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(entry["type"], entry["task_id"]) for entry in feed]


def test_gaining_access_brings_the_lists_tasks_then_its_changes(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    shared = make_task(client, alice, "Shared", list_id=list_id)
    private = make_task(client, alice, "Mine alone")
    _, cursor = drain_feed(client, bob)

    add_member(db_engine, alice, list_id, bob, "viewer")
    feed, cursor = drain_feed(client, bob, cursor)
    # The list's retained changes from before (its activity shows them to a viewer too),
    # then the upsert of each of its tasks as it is now; never a task outside the list.
    assert _entries(feed) == [("created", shared), ("access.granted", shared)]
    granted = feed[-1]["task"]
    assert granted["title"] == "Shared" and granted["list_id"] == list_id

    response = client.patch(
        f"/api/tasks/{shared}", json={"title": "Shared, renamed"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    client.patch(f"/api/tasks/{private}", json={"title": "Still mine"}, headers=alice.headers)
    added = make_task(client, alice, "Added later", list_id=list_id)
    mine = make_task(client, bob, "Bob's own")
    feed, cursor = drain_feed(client, bob, cursor)
    assert _entries(feed) == [("updated", shared), ("created", added), ("created", mine)]
    assert feed[0]["task"]["title"] == "Shared, renamed"


def test_removal_yields_tombstones_and_nothing_of_the_list_afterwards(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    first = make_task(client, alice, "One", list_id=list_id)
    second = make_task(client, alice, "Two", list_id=list_id)
    add_member(db_engine, alice, list_id, bob, "editor")
    _, cursor = drain_feed(client, bob)

    remove_member(db_engine, list_id, bob)
    feed, cursor = drain_feed(client, bob, cursor)
    assert sorted(_entries(feed)) == sorted([("access.ended", first), ("access.ended", second)])
    assert all(entry["task"] is None for entry in feed)

    client.patch(f"/api/tasks/{first}", json={"title": "After"}, headers=alice.headers)
    make_task(client, alice, "Three", list_id=list_id)
    assert client.delete(f"/api/tasks/{second}", headers=alice.headers).status_code == 204
    feed, _ = drain_feed(client, bob, cursor)
    assert feed == []
    # Nor anything of it from the start of the feed: only the tombstones written to its space
    # (its upserts went with its access: issue 49; tests/changes/test_access_ended.py).
    whole, _ = drain_feed(client, bob)
    assert {entry["type"] for entry in whole} == {"access.ended"}


def test_deleting_a_shared_list_ends_its_members_access_task_by_task(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    task_id = make_task(client, alice, "One", list_id=list_id)
    add_member(db_engine, alice, list_id, bob, "viewer")
    _, cursor = drain_feed(client, bob)
    assert client.delete(f"/api/lists/{list_id}", headers=alice.headers).status_code == 204
    feed, _ = drain_feed(client, bob, cursor)
    assert _entries(feed) == [("access.ended", task_id)]


def _hold_write(db_engine: Engine, owner: Account, task_id: int) -> Any:
    """A write of `owner`'s space left in flight: its change recorded (an id taken) under
    the owner's change lock, not committed. Returns the open connection and transaction."""
    conn = db_engine.connect()
    transaction = conn.begin()
    conn.execute(
        text("UPDATE tasks SET title = 'in flight', version = version + 1 WHERE id = :t"),
        {"t": task_id},
    )
    return conn, transaction


def test_a_change_committed_after_a_later_one_of_another_space_is_not_skipped(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """Alice's write takes an id and stays open; Bob's own change takes a higher id and
    commits. Bob's poll must not move past Alice's change: it stops below it, and gets both,
    in id order, once Alice's commits."""
    list_id = make_list(client, alice)
    shared = make_task(client, alice, "Shared", list_id=list_id)
    add_member(db_engine, alice, list_id, bob, "editor")
    _, cursor = drain_feed(client, bob)

    conn, transaction = _hold_write(db_engine, alice, shared)
    try:
        mine = make_task(client, bob, "Bob's own, committed first")
        feed, cursor = drain_feed(client, bob, cursor)
        assert feed == []  # Bob's own change waits behind Alice's in-flight one
        transaction.commit()
    finally:
        conn.close()
    feed, _ = drain_feed(client, bob, cursor)
    assert _entries(feed) == [("updated", shared), ("created", mine)]


def test_without_the_hold_the_merge_skips_that_change(
    client: TestClient,
    alice: Account,
    bob: Account,
    db_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same race with the hold broken (nothing tried, nothing busy): Bob's poll passes
    Alice's in-flight change, and once it commits, it is lost to Bob."""
    monkeypatch.setattr(changes, "HOLD", text("SELECT length(:owner)"))
    list_id = make_list(client, alice)
    shared = make_task(client, alice, "Shared", list_id=list_id)
    add_member(db_engine, alice, list_id, bob, "editor")
    _, cursor = drain_feed(client, bob)

    conn, transaction = _hold_write(db_engine, alice, shared)
    try:
        mine = make_task(client, bob, "Bob's own, committed first")
        feed, cursor = drain_feed(client, bob, cursor)
        assert _entries(feed) == [("created", mine)]
        transaction.commit()
    finally:
        conn.close()
    feed, _ = drain_feed(client, bob, cursor)
    assert feed == []  # skipped: what the hold prevents


def test_membership_and_comment_events_reach_the_sinks(
    client: TestClient,
    alice: Account,
    bob: Account,
    db_engine: Engine,
    settings: Settings,
    receiver: Receiver,
) -> None:
    list_id = make_list(client, alice)
    task_id = make_task(client, alice, "Shared", list_id=list_id)
    add_member(db_engine, alice, list_id, bob, "viewer")
    with db_engine.begin() as conn:
        conn.execute(
            text("UPDATE list_members SET role = 'commenter' WHERE member_id = :m"), {"m": bob.id}
        )
        comment_id = conn.execute(
            text(
                "INSERT INTO task_comments (user_id, task_id, list_id, author_id, body) "
                "VALUES (:o, :t, :l, :a, 'Bought it') RETURNING id"
            ),
            {"o": alice.id, "t": task_id, "l": list_id, "a": bob.id},
        ).scalar_one()
        conn.execute(
            text("UPDATE task_comments SET body = 'Bought two' WHERE id = :c"), {"c": comment_id}
        )
        conn.execute(text("DELETE FROM task_comments WHERE id = :c"), {"c": comment_id})
    remove_member(db_engine, list_id, bob)
    worker = make_worker(
        db_engine, delivery_settings(settings, receiver, dapr_list_events_topic="lists")
    )
    try:
        while worker.deliver_batch():
            pass
    finally:
        worker.close()
    listed = [r.json() for r in receiver.by_path("/v1.0/publish/pubsub/lists")]
    kinds = [e["event_type"] for e in listed if not e["event_type"].startswith("list.")]
    members = [k for k in kinds if k.startswith("member.")]
    comments = [k for k in kinds if k.startswith("comment.")]
    assert members == ["member.added", "member.updated", "member.removed"]
    assert comments == ["comment.created", "comment.updated", "comment.deleted"]
    updated = next(e for e in listed if e["event_type"] == "member.updated")
    assert updated["member"]["user_id"] == bob.id and updated["member"]["role"] == "commenter"
    assert updated["changes"] == {"role": ["viewer", "commenter"]}
    assert updated["list_id"] == list_id and updated["user_id"] == alice.id
    edited = next(e for e in listed if e["event_type"] == "comment.updated")
    assert edited["comment"]["id"] == comment_id and edited["task_id"] == task_id
    assert edited["changes"] == {"body": ["Bought it", "Bought two"]}
    assert edited["comment"]["created_at"].endswith("Z")
    hooks = [r.json()["type"] for r in receiver.by_path("/hook")]
    assert {"member.added", "member.removed", "comment.created", "comment.deleted"} <= set(hooks)
    # The feed's own entries (upserts, tombstones) are no events: nothing to deliver.
    with db_engine.connect() as conn:
        access_states = conn.execute(
            text("SELECT DISTINCT state FROM task_events WHERE type LIKE 'access.%'")
        ).scalars()
        assert set(access_states) == {"delivered"}
    published = receiver.by_path("/v1.0/publish/pubsub/task-events")
    assert all(not r.json()["event_type"].startswith("access.") for r in published)


def test_a_removal_does_not_wait_for_the_members_own_write_and_is_not_served_past_it(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """Bob's own write is in flight (his change lock held, an id taken) while Alice's list
    drops him: the removal does not wait for Bob's lock (the member's own write may be waiting
    for the owner's: a deadlock), and Bob's poll does not pass his in-flight change to serve
    the tombstones, which have higher ids; once it commits he gets both, in order."""
    list_id = make_list(client, alice)
    shared = make_task(client, alice, "Shared", list_id=list_id)
    add_member(db_engine, alice, list_id, bob, "editor")
    _, cursor = drain_feed(client, bob)

    conn = db_engine.connect()
    transaction = conn.begin()
    try:
        mine = conn.execute(
            text("INSERT INTO tasks (user_id, title) VALUES (:b, 'in flight') RETURNING id"),
            {"b": bob.id},
        ).scalar_one()
        remove_member(db_engine, list_id, bob)  # within the engine's statement deadline
        feed, cursor = drain_feed(client, bob, cursor)
        assert feed == []
        transaction.commit()
    finally:
        conn.close()
    feed, _ = drain_feed(client, bob, cursor)
    assert _entries(feed) == [("created", mine), ("access.ended", shared)]
