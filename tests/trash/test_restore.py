"""The trash (issue 53, "A trash"): a delete keeps the task with its subtree, comments and
assignees; a restore brings it back as it was, field by field, and every member's change
feed, replayed across the delete and the restore, matches its listing. Over real PostgreSQL,
rate limiting on; memberships are rows of `list_members` (tests/sharing/helpers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.sharing.helpers import add_member, drain_feed, get, make_list, make_task


def _tree(client: TestClient, owner: Account, list_id: int, assignee: Account) -> list[int]:
    """A top-level task with three levels of subtasks (and a sibling), each commented."""
    root = make_task(
        client,
        owner,
        "Plan the trip",
        list_id=list_id,
        assignees=[owner.id, assignee.id],
        priority="high",
        tags=["travel"],
        description="All of it",
    )
    level1 = make_task(client, owner, "Book", parent_id=root, assignees=[assignee.id])
    level2 = make_task(client, owner, "Flights", parent_id=level1)
    level3 = make_task(client, owner, "Compare fares", parent_id=level2)
    sibling = make_task(client, owner, "Hotel", parent_id=level1)
    for task_id in (root, level1, level3):
        response = client.post(
            f"/api/tasks/{task_id}/comments",
            json={"body": f"Note on {task_id}"},
            headers=assignee.headers,
        )
        assert response.status_code == 201, response.text
    done = client.patch(f"/api/tasks/{level3}", json={"completed": True}, headers=owner.headers)
    assert done.status_code == 200, done.text
    return [root, level1, level2, level3, sibling]


def _state(client: TestClient, account: Account, ids: list[int]) -> dict[int, Any]:
    """Every task of `ids` and its comments, as `account` reads them."""
    state: dict[int, Any] = {}
    for task_id in ids:
        task = get(client, account, f"/api/tasks/{task_id}")["data"]
        comments = get(client, account, f"/api/tasks/{task_id}/comments")["data"]
        state[task_id] = (task, comments)
    return state


def _unchanged(task: dict[str, Any]) -> dict[str, Any]:
    """A task's fields but `updated_at`, which a restore sets."""
    return {k: v for k, v in task.items() if k != "updated_at"}


def _listing(client: TestClient, account: Account) -> dict[int, dict[str, Any]]:
    return {task["id"]: task for task in get(client, account, "/api/tasks", limit=500)["data"]}


# What a change entry holds of a task: its own fields, not the counts the database keeps on
# it (null in the feed: specs/data-model.md).
_DERIVED = ("subtask_count", "open_subtask_count")


def _own_fields(tasks: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {
        task_id: {k: v for k, v in task.items() if k not in _DERIVED}
        for task_id, task in tasks.items()
    }


def _replay(feed: list[dict[str, Any]], known: dict[int, dict[str, Any]]) -> None:
    for entry in feed:
        if entry["type"] in ("deleted", "access.revoked"):
            known.pop(entry["task_id"], None)
        elif entry.get("task") is not None:
            known[entry["task_id"]] = entry["task"]


def test_a_restore_brings_back_the_subtree_comments_and_assignees_field_by_field(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    add_member(db_engine, alice, list_id, bob, "editor")
    ids = _tree(client, alice, list_id, bob)
    before = _state(client, alice, ids)
    bob_before = _state(client, bob, ids)
    tag = client.get(f"/api/tasks/{ids[0]}", headers=alice.headers).headers["ETag"]

    deleted = client.delete(f"/api/tasks/{ids[0]}", headers=bob.headers)
    assert deleted.status_code == 204, deleted.text
    for task_id in ids:
        assert client.get(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 404
    trash = get(client, alice, "/api/trash")["data"]
    assert [(t["id"], t["title"], t["list_id"], t["deleted_by"]) for t in trash] == [
        (ids[0], "Plan the trip", list_id, bob.id)
    ]
    assert trash[0]["subtask_count"] == 4 and trash[0]["comment_count"] == 3
    assert get(client, bob, "/api/trash")["data"] == trash

    restored = client.post(f"/api/trash/{ids[0]}/restore", headers=bob.headers)
    assert restored.status_code == 200, restored.text
    assert _unchanged(restored.json()["data"]) == _unchanged(bob_before[ids[0]][0])
    assert restored.headers["ETag"] != tag
    stale = client.get(f"/api/tasks/{ids[0]}", headers={**alice.headers, "If-None-Match": tag})
    assert stale.status_code == 200, stale.text
    # Field by field as before, but `updated_at` (the restore's time, for every task of it: a
    # client polling `updated_since` finds them again) and the ETag (a version more: a copy
    # cached before the delete is not current).
    for account, was in ((alice, before), (bob, bob_before)):
        now = _state(client, account, ids)
        assert {i: (_unchanged(t), c) for i, (t, c) in now.items()} == {
            i: (_unchanged(t), c) for i, (t, c) in was.items()
        }
        times = {datetime.fromisoformat(task["updated_at"]) for task, _ in now.values()}
        last = max(datetime.fromisoformat(task["updated_at"]) for task, _ in was.values())
        assert len(times) == 1 and times.pop() > last
    assert get(client, alice, "/api/trash")["data"] == []
    # The activity, as each member reads it: the deletion, then the task again, by Bob.
    for account in (alice, bob):
        events = [
            (item["event"], item["actor_id"])
            for item in get(client, account, "/api/activity", limit=100)["data"]
            if item["object_type"] == "task" and item["object_id"] == ids[0]
        ]
        assert events[:2] == [("task.created", bob.id), ("task.deleted", bob.id)], events


def test_each_members_feed_replayed_across_the_delete_and_restore_matches_its_listing(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    add_member(db_engine, alice, list_id, bob, "editor")
    ids = _tree(client, alice, list_id, bob)
    views = {}
    for account in (alice, bob):
        known = _listing(client, account)
        _, cursor = drain_feed(client, account)
        views[account.id] = (known, cursor)

    assert client.delete(f"/api/tasks/{ids[1]}", headers=alice.headers).status_code == 204
    after_delete = {}
    for account in (alice, bob):
        known, cursor = views[account.id]
        feed, cursor = drain_feed(client, account, cursor)
        assert {e["task_id"] for e in feed if e["type"] == "deleted"} >= {ids[1], ids[2], ids[3]}
        _replay(feed, known)
        assert _own_fields(known) == _own_fields(_listing(client, account))
        after_delete[account.id] = (known, cursor)

    response = client.post(f"/api/trash/{ids[1]}/restore", headers=bob.headers)
    assert response.status_code == 200, response.text
    for account in (alice, bob):
        known, cursor = after_delete[account.id]
        feed, _ = drain_feed(client, account, cursor)
        assert {e["task_id"] for e in feed if e["type"] == "created"} >= set(ids[1:])
        _replay(feed, known)
        assert _own_fields(known) == _own_fields(_listing(client, account))
        assert set(ids) <= set(known)


def test_a_snapshot_from_before_a_column_existed_restores_with_its_default(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A column added since a task was trashed (the "add a field" recipe: with a default) is
    not in its snapshot: the restore gives it the column's default, as an INSERT without it
    would, instead of refusing NULL. Simulated by dropping, from the stored snapshot, keys of
    NOT NULL columns with defaults (`priority`, `tags`; a comment's `created_at`)."""
    task_id = make_task(client, alice, "Old", priority="high", tags=["kept"])
    comment = client.post(
        f"/api/tasks/{task_id}/comments", json={"body": "Still here"}, headers=alice.headers
    )
    assert comment.status_code == 201, comment.text
    assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE task_trash SET snapshot = jsonb_set(jsonb_set(snapshot, '{tasks,0}', "
                "(snapshot #> '{tasks,0}') - 'priority' - 'tags'), '{children,task_comments,0}', "
                "(snapshot #> '{children,task_comments,0}') - 'created_at') WHERE id = :id"
            ),
            {"id": task_id},
        )

    response = client.post(f"/api/trash/{task_id}/restore", headers=alice.headers)

    assert response.status_code == 200, response.text
    task = response.json()["data"]
    assert (task["title"], task["priority"], task["tags"]) == ("Old", "none", [])
    comments = get(client, alice, f"/api/tasks/{task_id}/comments")["data"]
    assert [c["body"] for c in comments] == ["Still here"]
    assert comments[0]["created_at"] is not None


def test_missing_defaults_are_each_rows_own_and_never_draw_a_sequence(db_engine: Engine) -> None:
    """`task_api_missing_defaults` (migration 0051) gives only the keys a row lacks, evaluated
    for that row (a volatile default differs between two rows), never a sequence's `nextval`."""
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TEMP TABLE later_columns (n serial, kept int, "
                "tag uuid NOT NULL DEFAULT gen_random_uuid(), size int NOT NULL DEFAULT 5) "
                "ON COMMIT DROP"
            )
        )
        call = text("SELECT task_api_missing_defaults('later_columns', CAST(:row AS jsonb))")
        first = conn.scalar(call, {"row": '{"kept": 1}'})
        second = conn.scalar(call, {"row": '{"kept": 1}'})
        held = conn.scalar(call, {"row": '{"tag": null, "size": 2}'})
        drawn = conn.scalar(text("SELECT is_called FROM later_columns_n_seq"))
    assert set(first) == set(second) == {"tag", "size"} and first["size"] == 5
    assert first["tag"] != second["tag"]
    assert held == {}
    assert drawn is False  # the sequence never drew a number


def test_a_snapshot_taken_before_children_were_declared_restores_its_comments(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A task trashed before migration 0052 kept its comments and members' reminders under
    their own keys (`comments`, `member_reminders`), not under `children`: it restores them."""
    task_id = make_task(client, alice, "Old")
    comment = client.post(
        f"/api/tasks/{task_id}/comments", json={"body": "Still here"}, headers=alice.headers
    )
    assert comment.status_code == 201, comment.text
    assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE task_trash SET snapshot = (snapshot - 'children') || jsonb_build_object("
                "'comments', snapshot #> '{children,task_comments}', "
                "'member_reminders', snapshot #> '{children,task_member_reminders}') "
                "WHERE id = :id"
            ),
            {"id": task_id},
        )
    assert get(client, alice, "/api/trash")["data"][0]["comment_count"] == 1

    response = client.post(f"/api/trash/{task_id}/restore", headers=alice.headers)

    assert response.status_code == 200, response.text
    comments = get(client, alice, f"/api/tasks/{task_id}/comments")["data"]
    assert [c["body"] for c in comments] == ["Still here"]
