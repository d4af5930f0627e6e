"""GET /api/tasks/changes: paging in commit order, deletions, the listing's cursor, retention
(410), isolation and tampered cursors."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.services.history.changes import prune
from tests.changes.test_outbox import create
from tests.conftest import Account

FEED = "/api/tasks/changes"


def poll(client: TestClient, account: Account, **params: Any) -> dict[str, Any]:
    response = client.get(FEED, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def drain(client: TestClient, account: Account, cursor: str | None) -> tuple[list[Any], str]:
    """Every change after `cursor`, following has_more; and the cursor to poll next."""
    seen: list[Any] = []
    while True:
        body = poll(client, account, **({"cursor": cursor} if cursor else {}), limit=2)
        seen += body["data"]
        cursor = body["meta"]["next_cursor"]
        if not body["meta"]["has_more"]:
            return seen, cursor


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def test_the_feed_pages_every_change_in_order_with_deletions(
    client: TestClient, alice: Account
) -> None:
    a = create(client, alice, "a")
    b = create(client, alice, "b")
    client.patch(f"/api/tasks/{a}/complete", headers=alice.headers)
    client.delete(f"/api/tasks/{b}", headers=alice.headers)
    first = poll(client, alice, limit=3)
    assert first["meta"] == {
        "count": 3,
        "has_more": True,
        "next_cursor": first["meta"]["next_cursor"],
    }
    rest = poll(client, alice, cursor=first["meta"]["next_cursor"], limit=3)
    assert rest["meta"]["has_more"] is False and rest["meta"]["count"] == 1
    changes = first["data"] + rest["data"]
    assert [(c["type"], c["task_id"]) for c in changes] == [
        ("created", a),
        ("created", b),
        ("completed", a),
        ("deleted", b),
    ]
    assert changes[2]["task"]["completed"] is True and changes[2]["task"]["title"] == "a"
    assert changes[2]["task"]["created_at"].endswith("Z")
    assert changes[3]["task"] is None
    assert len({c["event_id"] for c in changes}) == 4
    # Polling at the end answers nothing new, and a cursor to poll again.
    idle = poll(client, alice, cursor=rest["meta"]["next_cursor"])
    assert idle["data"] == [] and idle["meta"]["has_more"] is False


def test_a_listing_cursor_gives_every_later_change_and_none_before(
    client: TestClient, alice: Account
) -> None:
    before = [create(client, alice, f"old {n}") for n in range(3)]
    listing = client.get("/api/tasks", params={"limit": 2}, headers=alice.headers).json()
    cursor = listing["meta"]["changes_cursor"]
    # Every page of one listing carries the first page's position.
    second = client.get(
        "/api/tasks",
        params={"limit": 2, "cursor": listing["meta"]["next_cursor"]},
        headers=alice.headers,
    ).json()
    assert second["meta"]["changes_cursor"] == cursor
    after = create(client, alice, "new")
    client.delete(f"/api/tasks/{before[0]}", headers=alice.headers)
    changes, _ = drain(client, alice, cursor)
    assert [(c["type"], c["task_id"]) for c in changes] == [
        ("created", after),
        ("deleted", before[0]),
    ]


def test_an_empty_listing_still_carries_a_position(client: TestClient, alice: Account) -> None:
    create(client, alice, "done", completed=True)
    empty = client.get("/api/tasks", params={"status": "pending"}, headers=alice.headers).json()
    assert empty["data"] == []
    created = create(client, alice, "open")
    changes, _ = drain(client, alice, empty["meta"]["changes_cursor"])
    assert [(c["type"], c["task_id"]) for c in changes] == [("created", created)]


def test_without_a_cursor_the_feed_starts_at_the_oldest_change_retained(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    first, second = create(client, alice, "1"), create(client, alice, "2")
    with db_engine.begin() as conn:  # as pruning past retention does
        conn.execute(text("DELETE FROM task_events WHERE task_id = :t"), {"t": first})
    changes, _ = drain(client, alice, None)
    assert [c["task_id"] for c in changes] == [second]


def prune_all(engine: Engine) -> int:
    """Prune as if every change were past retention."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE task_events SET occurred_at = occurred_at - interval '1 year'"))
    return prune(engine, 24, undelivered=True)


def test_a_cursor_before_pruned_changes_is_410_and_one_after_them_is_not(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    create(client, alice, "0")
    start = poll(client, alice)["meta"]["next_cursor"]
    create(client, alice, "1")
    create(client, alice, "2")
    caught_up = poll(client, alice, cursor=start)["meta"]["next_cursor"]
    bobs = poll(client, bob)["meta"]["next_cursor"]  # bob has no changes: nothing pruned
    assert prune_all(db_engine) == 3
    error = assert_error(
        client.get(FEED, params={"cursor": start}, headers=alice.headers), 410, "CURSOR_EXPIRED"
    )
    assert "list the tasks again" in error["message"]
    # A client that had read everything pruned misses nothing: its cursor still works.
    assert poll(client, alice, cursor=caught_up)["data"] == []
    assert poll(client, bob, cursor=bobs)["data"] == []
    # A fresh listing gives a working cursor again.
    listing = client.get("/api/tasks", headers=alice.headers).json()
    created = create(client, alice, "3")
    changes, _ = drain(client, alice, listing["meta"]["changes_cursor"])
    assert [c["task_id"] for c in changes] == [created]


def test_pruning_keeps_undelivered_changes_unless_told(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    titles = ["delivered", "pending", "delivered after"]
    first, _, last = (create(client, alice, title) for title in titles)
    with db_engine.begin() as conn:
        conn.execute(
            text("UPDATE task_events SET state = 'delivered' WHERE task_id IN (:a, :b)"),
            {"a": first, "b": last},
        )
        conn.execute(text("UPDATE task_events SET occurred_at = now() - interval '9 days'"))
    # The first is pruned; the last is delivered but after a pending one: kept, so the feed
    # keeps every change after what was pruned, with no hole.
    assert prune(db_engine, 24 * 7, undelivered=False) == 1
    assert [c["task"]["title"] for c in poll(client, alice)["data"]] == titles[1:]
    assert prune(db_engine, 24 * 10, undelivered=True) == 0  # within a longer retention
    assert prune(db_engine, 24 * 7, undelivered=True) == 2


def test_other_users_changes_never_appear_and_their_cursors_are_422(
    client: TestClient, alice: Account, bob: Account
) -> None:
    create(client, alice, "alice's")
    create(client, bob, "bob's")
    alices = poll(client, alice)
    bobs = poll(client, bob)
    assert [c["task"]["title"] for c in alices["data"]] == ["alice's"]
    assert [c["task"]["title"] for c in bobs["data"]] == ["bob's"]
    stolen = client.get(FEED, params={"cursor": alices["meta"]["next_cursor"]}, headers=bob.headers)
    assert_error(stolen, 422, "VALIDATION_ERROR")
    listing_cursor = client.get("/api/tasks", headers=alice.headers).json()["meta"][
        "changes_cursor"
    ]
    assert_error(
        client.get(FEED, params={"cursor": listing_cursor}, headers=bob.headers),
        422,
        "VALIDATION_ERROR",
    )


def test_tampered_and_foreign_kinds_of_cursor_are_422(client: TestClient, alice: Account) -> None:
    for n in range(3):
        create(client, alice, str(n))
    cursor = poll(client, alice, limit=1)["meta"]["next_cursor"]
    page_cursor = client.get("/api/tasks", params={"limit": 1}, headers=alice.headers).json()[
        "meta"
    ]["next_cursor"]
    for bad in (cursor[:-2] + "xx", cursor + "x", "x" * 3000, "\x00", "a.b.c", page_cursor, "..."):
        response = client.get(FEED, params={"cursor": bad}, headers=alice.headers)
        assert response.status_code == 422, (bad, response.text)
    # A feed cursor is no listing cursor either.
    listing = client.get("/api/tasks", params={"cursor": cursor}, headers=alice.headers)
    assert_error(listing, 422, "VALIDATION_ERROR")
    for limit in ("0", "1001", "-1", "1e3", "abc", str(2**70)):
        response = client.get(FEED, params={"limit": limit}, headers=alice.headers)
        assert response.status_code == 422, (limit, response.text)


def test_the_feed_needs_a_token(client: TestClient) -> None:
    assert_error(client.get(FEED), 401, "UNAUTHORIZED")
    assert client.put(FEED, json={}).status_code == 405
