"""The activity log (issue 39, "Activity"): who did what, old and new values, a member's view
of a shared list, and a stranger's 404 (byte for byte a missing list's). Over real
PostgreSQL, rate limiting on; memberships are rows of `list_members` (tests/sharing/helpers)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.sharing.helpers import add_member, get, make_list, make_task, remove_member


def test_a_patch_records_its_actor_and_the_old_and_new_values(
    client: TestClient, alice: Account
) -> None:
    task_id = make_task(client, alice, "Buy milk", priority="low")
    response = client.patch(
        f"/api/tasks/{task_id}",
        json={"title": "Buy oat milk", "priority": "high"},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    body = get(client, alice, "/api/activity")
    updated, created = body["data"][:2]
    assert updated["event"] == "task.updated" and created["event"] == "task.created"
    assert updated["object_type"] == "task" and updated["object_id"] == task_id
    assert updated["actor_id"] == alice.id and created["actor_id"] == alice.id
    assert updated["changes"] == {
        "title": ["Buy milk", "Buy oat milk"],
        "priority": ["low", "high"],
    }
    assert created["changes"] is None
    assert updated["id"] > created["id"] and updated["list_id"] is None


def test_a_member_sees_the_shared_lists_activity_with_who_did_it(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    private = make_task(client, alice, "Mine alone")
    task_id = make_task(client, alice, "Shared", list_id=list_id)
    add_member(db_engine, alice, list_id, bob, "editor")
    response = client.patch(f"/api/tasks/{task_id}", json={"completed": True}, headers=bob.headers)
    assert response.status_code == 200, response.text

    mine = get(client, bob, "/api/activity")["data"]
    events = [(item["event"], item["object_id"]) for item in mine]
    assert ("task.completed", task_id) in events and ("task.created", task_id) in events
    assert ("member.added", bob.id) in events
    assert all(item["object_id"] != private for item in mine if item["object_type"] == "task")
    completed = next(item for item in mine if item["event"] == "task.completed")
    assert completed["actor_id"] == bob.id and completed["list_id"] == list_id
    assert completed["changes"]["completed"] == [False, True]

    listed = get(client, bob, f"/api/lists/{list_id}/activity")["data"]
    assert [item["id"] for item in listed] == sorted((item["id"] for item in listed), reverse=True)
    assert {item["list_id"] for item in listed} == {list_id}
    assert {item["event"] for item in listed} >= {
        "list.created",
        "task.created",
        "member.added",
        "task.completed",
    }
    # The owner sees what the member did, in its own space.
    owners = get(client, alice, f"/api/lists/{list_id}/activity")["data"]
    assert owners == listed


def test_a_stranger_gets_exactly_a_missing_lists_404(
    client: TestClient, alice: Account, bob: Account, register: object, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    make_task(client, alice, "Shared", list_id=list_id)
    stranger = client.get(f"/api/lists/{list_id}/activity", headers=bob.headers)
    with db_engine.connect() as conn:
        missing_id = conn.execute(text("SELECT max(id) + 1000 FROM task_lists")).scalar_one()
    missing = client.get(f"/api/lists/{missing_id}/activity", headers=bob.headers)
    assert stranger.status_code == missing.status_code == 404
    assert stranger.content == missing.content
    assert stranger.json()["error"]["message"] == "List not found"
    # Nor does the stranger's own activity show the list.
    assert all(item["list_id"] != list_id for item in get(client, bob, "/api/activity")["data"])


def test_activity_pages_newest_first_with_a_cursor(client: TestClient, alice: Account) -> None:
    for n in range(5):
        make_task(client, alice, f"t{n}")
    first = get(client, alice, "/api/activity", limit=2)
    assert first["meta"]["has_more"] and first["meta"]["count"] == 2
    rest = get(client, alice, "/api/activity", limit=10, cursor=first["meta"]["next_cursor"])
    ids = [item["id"] for item in first["data"] + rest["data"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    assert rest["meta"]["has_more"] is False and rest["meta"]["next_cursor"] is None
    # A cursor is bound to its route and caller.
    response = client.get(
        "/api/lists/1/activity",
        params={"cursor": first["meta"]["next_cursor"]},
        headers=alice.headers,
    )
    assert response.status_code == 422


def _invite(db_engine: Engine, owner: Account, list_id: int, email: str) -> int:
    with db_engine.begin() as conn:
        invitation_id: int = conn.execute(
            text(
                "INSERT INTO list_invitations "
                "(user_id, list_id, role, email, token_hash, invited_by, expires_at) "
                "VALUES (:o, :l, 'viewer', :e, md5(:e) || md5(:e), :o, now() + interval '7 days') "
                "RETURNING id"
            ),
            {"o": owner.id, "l": list_id, "e": email},
        ).scalar_one()
    return invitation_id


def _delete_invitation_as(db_engine: Engine, invitation_id: int, actor: str) -> None:
    """As a request of `actor` deletes it: the entry's setting, then the deletion."""
    with db_engine.begin() as conn:
        conn.execute(text("SELECT set_config('task_api.actor', :a, true)"), {"a": actor})
        conn.execute(text("DELETE FROM list_invitations WHERE id = :i"), {"i": invitation_id})


def test_invitations_are_activity_revoked_or_accepted_by_who_deleted_them(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    revoked = _invite(db_engine, alice, list_id, "x@example.com")
    accepted = _invite(db_engine, alice, list_id, "y@example.com")
    _delete_invitation_as(db_engine, revoked, alice.id)  # the owner revokes
    _delete_invitation_as(db_engine, accepted, bob.id)  # the invitee accepts
    items = get(client, alice, f"/api/lists/{list_id}/activity")["data"]
    seen = [
        (i["event"], i["object_id"], i["actor_id"])
        for i in items
        if i["object_type"] == "invitation"
    ]
    assert seen == [
        ("invitation.accepted", accepted, bob.id),
        ("invitation.revoked", revoked, alice.id),
        ("invitation.created", accepted, None),
        ("invitation.created", revoked, None),
    ]
    with db_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT object FROM task_events WHERE type = 'invitation.created' LIMIT 1")
        ).scalar_one()
    assert "token_hash" not in stored


def test_a_removed_member_loses_the_lists_activity(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    make_task(client, alice, "Shared", list_id=list_id)
    add_member(db_engine, alice, list_id, bob, "viewer")
    assert get(client, bob, f"/api/lists/{list_id}/activity")["data"]
    remove_member(db_engine, list_id, bob)
    gone = client.get(f"/api/lists/{list_id}/activity", headers=bob.headers)
    missing = client.get("/api/lists/999999999/activity", headers=bob.headers)
    assert gone.status_code == 404 and gone.content == missing.content
    assert all(item["list_id"] != list_id for item in get(client, bob, "/api/activity")["data"])


def test_accepting_an_invitation_to_be_admin_is_accepted_not_revoked(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """The invitee becomes admin in the transaction that deletes the invitation: still an
    acceptance (the membership joined just now)."""
    list_id = make_list(client, alice)
    invitation = _invite(db_engine, alice, list_id, "z@example.com")
    with db_engine.begin() as conn:
        conn.execute(text("SELECT set_config('task_api.actor', :a, true)"), {"a": bob.id})
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) "
                "VALUES (:o, :l, :m, 'admin')"
            ),
            {"o": alice.id, "l": list_id, "m": bob.id},
        )
        conn.execute(text("DELETE FROM list_invitations WHERE id = :i"), {"i": invitation})
    items = get(client, bob, f"/api/lists/{list_id}/activity")["data"]
    assert [(i["event"], i["actor_id"]) for i in items[:2]] == [
        ("invitation.accepted", bob.id),
        ("member.added", bob.id),
    ]


def test_a_moves_ids_follow_what_the_member_may_read_now(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """The owner moves a task from its private list into a shared one: the member reads the
    private list's id as null while it may not read that list, the id once it may, and null
    again once it may not (issue 61, item 2). The owner reads every id all along."""
    shared = make_list(client, alice, "Team")
    private = make_list(client, alice, "Private")
    add_member(db_engine, alice, shared, bob, "viewer")
    task_id = make_task(client, alice, "Moved", list_id=private)
    moved = client.patch(f"/api/tasks/{task_id}", json={"list_id": shared}, headers=alice.headers)
    assert moved.status_code == 200, moved.text

    def moves(account: Account) -> list[Any]:
        return [
            item["changes"]["list_id"]
            for item in get(client, account, f"/api/lists/{shared}/activity")["data"]
            if item["object_id"] == task_id and item["event"] == "task.updated"
        ]

    assert moves(alice) == [[private, shared]]
    assert moves(bob) == [[None, shared]]
    add_member(db_engine, alice, private, bob, "viewer")
    assert moves(bob) == [[private, shared]]
    remove_member(db_engine, private, bob)
    assert moves(bob) == [[None, shared]]
    assert moves(alice) == [[private, shared]]
