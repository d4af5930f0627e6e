"""The trash's other rules (issue 53; specs/api-contract.md, "The trash"): a trashed task is in
no listing, search, statistics, feed page or calendar and counts toward no limit; where a
restore puts a task; the limits on a restore; purging (the route, the worker, an account's
deletion); who may see and restore what; bad input. Over real PostgreSQL, rate limiting on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.responses import EXAMPLES
from backend.models.task_list import TASKS_PER_LIST
from backend.models.trash import TRASH_DAYS
from backend.services.history.trash import purge_expired
from tests.calendar.test_feeds import make_feed, parsed, summaries
from tests.conftest import Account, count_rows
from tests.sharing.helpers import (
    add_member,
    drain_feed,
    get,
    make_list,
    make_task,
    remove_member,
)


def _due(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def _restore(client: TestClient, account: Account, task_id: int, status: int = 200) -> dict:
    response = client.post(f"/api/trash/{task_id}/restore", headers=account.headers)
    assert response.status_code == status, response.text
    body: dict = response.json()
    return body


def test_a_trashed_task_is_in_no_listing_search_stats_feed_page_or_calendar(
    client: TestClient, alice: Account
) -> None:
    kept = make_task(client, alice, "Kept groceries", due_date=_due(2))
    gone = make_task(client, alice, "Gone groceries", due_date=_due(2), tags=["shop"])
    make_task(client, alice, "Gone child", parent_id=gone)
    feed = make_feed(client, alice)
    assert client.delete(f"/api/tasks/{gone}", headers=alice.headers).status_code == 204

    assert [t["id"] for t in get(client, alice, "/api/tasks")["data"]] == [kept]
    assert [t["id"] for t in get(client, alice, "/api/tasks", q="groceries")["data"]] == [kept]
    assert get(client, alice, "/api/tasks", tag="shop")["data"] == []
    stats = get(client, alice, "/api/tasks/stats")["data"]
    assert stats["total"] == 1
    changes, _ = drain_feed(client, alice)
    upserted = {e["task_id"] for e in changes if e["type"] != "deleted"}
    assert gone not in upserted - {e["task_id"] for e in changes if e["type"] == "deleted"}
    assert summaries(parsed(client, feed)) == ["Kept groceries"]
    assert client.get(f"/api/tasks/{gone}/subtree", headers=alice.headers).status_code == 404

    _restore(client, alice, gone)
    assert sorted(t["id"] for t in get(client, alice, "/api/tasks")["data"]) == sorted(
        [kept, gone, gone + 1]
    )
    assert summaries(parsed(client, feed)) == ["Gone groceries", "Kept groceries"]


def test_a_trashed_task_counts_toward_no_limit_and_a_restore_past_one_is_refused(
    client: TestClient, alice: Account, setup_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    gone = make_task(client, alice, "Gone", list_id=list_id)
    make_task(client, alice, "Its child", parent_id=gone)
    assert client.delete(f"/api/tasks/{gone}", headers=alice.headers).status_code == 204
    # Fill the list to its limit less one: the trashed task and its child do not count.
    with setup_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (user_id, title, list_id, position) "
                "SELECT :user, 'Filler ' || n, :list, n FROM generate_series(1, :count) AS n"
            ),
            {"user": alice.id, "list": list_id, "count": TASKS_PER_LIST - 1},
        )
    assert make_task(client, alice, "The last one", list_id=list_id)
    refused = _restore(client, alice, gone, 422)
    assert refused["error"]["code"] == "LIMIT_REACHED"
    assert refused["error"]["message"] == EXAMPLES["limit_reached"].message
    assert [t["id"] for t in get(client, alice, "/api/trash")["data"]] == [gone]


def test_a_restore_goes_to_the_top_level_when_its_list_is_gone_and_to_the_list_when_its_parent_is(
    client: TestClient, alice: Account
) -> None:
    list_id = make_list(client, alice)
    parent = make_task(client, alice, "Parent", list_id=list_id)
    child = make_task(client, alice, "Child", parent_id=parent)
    grandchild = make_task(client, alice, "Grandchild", parent_id=child)
    assert client.delete(f"/api/tasks/{child}", headers=alice.headers).status_code == 204
    assert client.delete(f"/api/tasks/{parent}", headers=alice.headers).status_code == 204

    restored = _restore(client, alice, child)["data"]
    assert (restored["list_id"], restored["parent_id"]) == (list_id, None)
    assert get(client, alice, f"/api/tasks/{grandchild}")["data"]["parent_id"] == child

    assert client.delete(f"/api/tasks/{child}", headers=alice.headers).status_code == 204
    assert client.delete(f"/api/lists/{list_id}", headers=alice.headers).status_code == 204
    restored = _restore(client, alice, child)["data"]
    assert (restored["list_id"], restored["parent_id"]) == (None, None)
    assert get(client, alice, f"/api/tasks/{grandchild}")["data"]["list_id"] is None


def test_an_assignee_who_left_the_list_is_not_restored(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    add_member(db_engine, alice, list_id, bob, "editor")
    task_id = make_task(client, alice, "Shared", list_id=list_id, assignees=[alice.id, bob.id])
    assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204
    remove_member(db_engine, list_id, bob)
    assert _restore(client, alice, task_id)["data"]["assignees"] == [alice.id]


def test_who_sees_and_restores_what(
    client: TestClient, alice: Account, bob: Account, register, db_engine: Engine
) -> None:
    carol = register()
    list_id = make_list(client, alice)
    add_member(db_engine, alice, list_id, bob, "viewer")
    shared = make_task(client, alice, "Shared", list_id=list_id)
    private = make_task(client, alice, "Private")
    for task_id in (shared, private):
        assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204

    # A viewer sees no trash of the list, and restoring is 403; the private task is a 404.
    assert get(client, bob, "/api/trash")["data"] == []
    assert _restore(client, bob, shared, 403)["error"]["code"] == "FORBIDDEN"
    missing = _restore(client, bob, private, 404)
    never = _restore(client, bob, 987654321, 404)
    assert missing == never
    # A stranger: every id is a missing one, byte for byte.
    for task_id in (shared, private):
        assert _restore(client, carol, task_id, 404) == never
        purged = client.delete(f"/api/trash/{task_id}", headers=carol.headers)
        assert purged.status_code == 404 and purged.json() == never
    assert get(client, carol, "/api/trash")["data"] == []
    # A removed member: as a stranger.
    remove_member(db_engine, list_id, bob)
    assert _restore(client, bob, shared, 404) == never
    assert count_rows(db_engine, "task_trash") == 2
    assert count_rows(db_engine, "tasks") == 0


def test_bad_input_is_a_422_that_changes_nothing(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task_id = make_task(client, alice, "Gone")
    assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204
    for bad in ("0", "-1", "abc", "1.0", "5_0", "+5", str(2**63)):
        response = client.post(f"/api/trash/{bad}/restore", headers=alice.headers)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert client.delete(f"/api/trash/{bad}", headers=alice.headers).status_code == 422
    for query in ({"limit": "0"}, {"limit": "101"}, {"cursor": "nonsense"}):
        response = client.get("/api/trash", params=query, headers=alice.headers)
        assert response.status_code == 422, (query, response.text)
    assert count_rows(db_engine, "task_trash") == 1
    assert client.get("/api/trash", headers={}).status_code == 401


def test_purging_by_route_by_the_worker_and_with_the_account(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine, setup_engine: Engine
) -> None:
    first, second, third = (make_task(client, alice, f"Task {n}") for n in range(3))
    theirs = make_task(client, bob, "Bob's")
    for account, task_id in ((alice, first), (alice, second), (alice, third), (bob, theirs)):
        assert client.delete(f"/api/tasks/{task_id}", headers=account.headers).status_code == 204

    assert client.delete(f"/api/trash/{first}", headers=alice.headers).status_code == 204
    assert client.delete(f"/api/trash/{first}", headers=alice.headers).status_code == 404
    _restore(client, alice, first, 404)

    with setup_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE task_trash SET deleted_at = now() - make_interval(days => :days) "
                "WHERE id = :id"
            ),
            {"days": TRASH_DAYS, "id": second},
        )
    assert purge_expired(db_engine) == 1
    assert [t["id"] for t in get(client, alice, "/api/trash")["data"]] == [third]

    assert client.delete("/api/auth/me", headers=alice.headers).status_code == 204
    assert count_rows(db_engine, "task_trash") == 1  # Bob's


def test_the_listing_pages_most_recently_deleted_first(client: TestClient, alice: Account) -> None:
    ids = [make_task(client, alice, f"Task {n}") for n in range(5)]
    for task_id in ids:
        assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204
    seen: list[int] = []
    cursor = None
    while True:
        body = get(client, alice, "/api/trash", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [t["id"] for t in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if not body["meta"]["has_more"]:
            break
    assert seen == ids[::-1]


def test_tasks_deleted_together_page_by_id(client: TestClient, alice: Account) -> None:
    """One statement's deletions share their `deleted_at`: the cursor's id breaks the tie."""
    ids = [make_task(client, alice, f"Task {n}", completed=True) for n in range(5)]
    cleared = client.delete("/api/tasks/completed", headers=alice.headers)
    assert cleared.json() == {"data": {"deleted": 5}}
    pages: list[list[int]] = []
    cursor = None
    while cursor is not None or not pages:
        body = get(client, alice, "/api/trash", limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append([t["id"] for t in body["data"]])
        cursor = body["meta"]["next_cursor"]
    assert pages == [ids[:2:-1], ids[2:0:-1], ids[:1]]
    assert len({t["deleted_at"] for t in get(client, alice, "/api/trash")["data"]}) == 1


def test_a_root_inside_another_roots_subtree_is_in_that_ones_snapshot_only(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """`task_trash_snapshots` (migration 0050) given a task and its grandchild as roots keeps
    one snapshot, the ancestor's, holding both: a second copy would collide on restore."""
    top = make_task(client, alice, "Top")
    child = make_task(client, alice, "Child", parent_id=top)
    grandchild = make_task(client, alice, "Grandchild", parent_id=child)
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT root_id, snapshot FROM task_trash_snapshots(:roots)"),
            {"roots": [grandchild, top]},
        ).all()
    assert [(root, [t["id"] for t in snapshot["tasks"]]) for root, snapshot in rows] == [
        (top, [top, child, grandchild])
    ]


def test_bulk_and_completed_deletes_go_to_the_trash(client: TestClient, alice: Account) -> None:
    one = make_task(client, alice, "One")
    done = make_task(client, alice, "Done", completed=True)
    done_child = make_task(client, alice, "Done child", parent_id=done, completed=True)
    bulk = client.post(
        "/api/tasks/bulk",
        json={"operations": [{"op": "delete", "id": one}]},
        headers=alice.headers,
    )
    assert bulk.status_code == 200, bulk.text
    cleared = client.delete("/api/tasks/completed", headers=alice.headers)
    assert cleared.json() == {"data": {"deleted": 2}}
    trash = get(client, alice, "/api/trash")["data"]
    assert sorted(t["id"] for t in trash) == sorted([one, done])
    _restore(client, alice, done)
    assert get(client, alice, f"/api/tasks/{done_child}")["data"]["parent_id"] == done


def test_a_deleted_lists_tasks_go_to_the_trash_and_back_to_the_top_level(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    add_member(db_engine, alice, list_id, bob, "editor")
    top = make_task(client, alice, "Top", list_id=list_id, assignees=[alice.id, bob.id])
    child = make_task(client, alice, "Child", parent_id=top)
    other = make_task(client, alice, "Elsewhere")
    assert client.delete(f"/api/lists/{list_id}", headers=alice.headers).status_code == 204

    trash = get(client, alice, "/api/trash")["data"]
    assert [(t["id"], t["list_id"], t["subtask_count"]) for t in trash] == [(top, None, 1)]
    assert get(client, bob, "/api/trash")["data"] == []
    restored = _restore(client, alice, top)["data"]
    assert (restored["list_id"], restored["parent_id"], restored["assignees"]) == (
        None,
        None,
        [alice.id],
    )
    listed = {t["id"]: t for t in get(client, alice, "/api/tasks")["data"]}
    assert set(listed) == {top, child, other} and listed[child]["parent_id"] == top


def test_a_restore_with_an_idempotency_key_is_replayed_not_repeated(
    client: TestClient, alice: Account
) -> None:
    task_id = make_task(client, alice, "Once")
    assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204
    headers = {**alice.headers, "Idempotency-Key": "restore-1"}
    first = client.post(f"/api/trash/{task_id}/restore", headers=headers)
    again = client.post(f"/api/trash/{task_id}/restore", headers=headers)
    assert first.status_code == again.status_code == 200, again.text
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"]
    other = make_task(client, alice, "Other")
    assert client.delete(f"/api/tasks/{other}", headers=alice.headers).status_code == 204
    mismatch = client.post(f"/api/trash/{other}/restore", headers=headers)
    assert mismatch.status_code == 422, mismatch.text
    assert mismatch.json()["error"]["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert [t["id"] for t in get(client, alice, "/api/trash")["data"]] == [other]


def test_a_transferred_lists_trash_stays_with_its_former_owner(
    client: TestClient, alice: Account, bob: Account, register, db_engine: Engine
) -> None:
    # Carol edits two of Alice's lists; Alice hands one of them to Bob. The trash row names
    # the list and Alice's space apart, so without migration 0049 Carol would still reach it
    # through her other membership in Alice's space.
    carol = register()
    given = make_list(client, alice, "Given")
    kept = make_list(client, alice, "Kept")
    add_member(db_engine, alice, given, bob, "admin")
    for list_id in (given, kept):
        add_member(db_engine, alice, list_id, carol, "editor")
    gone = make_task(client, alice, "Gone", list_id=given)
    assert client.delete(f"/api/tasks/{gone}", headers=alice.headers).status_code == 204
    assert [t["id"] for t in get(client, carol, "/api/trash")["data"]] == [gone]

    moved = client.post(
        f"/api/lists/{given}/transfer", json={"user_id": bob.id}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text

    never = _restore(client, carol, 987654321, 404)
    for account in (carol, bob):
        assert get(client, account, "/api/trash")["data"] == []
        assert _restore(client, account, gone, 404) == never
        purged = client.delete(f"/api/trash/{gone}", headers=account.headers)
        assert purged.status_code == 404 and purged.json() == never
    [row] = get(client, alice, "/api/trash")["data"]
    assert (row["id"], row["list_id"]) == (gone, None)
    restored = _restore(client, alice, gone)["data"]
    assert (restored["id"], restored["list_id"]) == (gone, None)


def test_a_restore_with_if_match_takes_the_tag_the_task_had_when_deleted(
    client: TestClient, alice: Account
) -> None:
    task_id = make_task(client, alice, "Tagged")
    old_tag = client.get(f"/api/tasks/{task_id}", headers=alice.headers).headers["ETag"]
    changed = client.patch(f"/api/tasks/{task_id}", json={"title": "Newer"}, headers=alice.headers)
    tag = changed.headers["ETag"]
    assert tag != old_tag
    assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204
    url = f"/api/trash/{task_id}/restore"
    for stale in (old_tag, f"W/{tag}", '"1-1"'):
        refused = client.post(url, headers={**alice.headers, "If-Match": stale})
        assert refused.status_code == 412, refused.text
        assert refused.json()["error"]["code"] == "PRECONDITION_FAILED"
    assert [t["id"] for t in get(client, alice, "/api/trash")["data"]] == [task_id]
    restored = client.post(url, headers={**alice.headers, "If-Match": tag})
    assert restored.status_code == 200, restored.text
    assert restored.json()["data"]["title"] == "Newer"
    assert get(client, alice, "/api/trash")["data"] == []
    # Gone from the trash now: the 404 a missing row gets, whatever the tag.
    again = client.post(url, headers={**alice.headers, "If-Match": tag})
    assert again.status_code == 404, again.text
