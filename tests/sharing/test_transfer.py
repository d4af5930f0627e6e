"""`POST /api/lists/{list_id}/transfer`: the owner makes a member the owner and becomes an
admin; the list's tasks (subtasks too), memberships, invitations and comments move to the new
owner's space (issue 39; specs/api-contract.md, "Shared lists")."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.sharing.helpers import invite, join, make_list, members


@pytest.fixture
def carol(register: Callable[..., Account]) -> Account:
    return register("carol@example.com")


def _transfer(client: TestClient, caller: Account, list_id: int, user_id: str) -> object:
    return client.post(
        f"/api/lists/{list_id}/transfer", json={"user_id": user_id}, headers=caller.headers
    )


def test_a_transfer_carries_the_list_and_everything_in_it(
    client: TestClient, alice: Account, bob: Account, carol: Account, db_engine: Engine
) -> None:
    client.post("/api/lists", json={"name": "Bob's own"}, headers=bob.headers)
    list_id = make_list(client, alice, "Trip")
    parent = client.post(
        "/api/tasks", json={"title": "pack", "list_id": list_id}, headers=alice.headers
    ).json()["data"]["id"]
    child = client.post(
        "/api/tasks", json={"title": "socks", "parent_id": parent}, headers=alice.headers
    ).json()["data"]["id"]
    personal = client.post("/api/tasks", json={"title": "mine"}, headers=alice.headers)
    join(client, alice, bob, list_id, "editor")
    join(client, alice, carol, list_id, "viewer")
    pending = invite(client, alice, list_id, "viewer", "dave@example.com")

    moved = _transfer(client, alice, list_id, bob.id)
    assert moved.status_code == 200, moved.text  # type: ignore[attr-defined]
    data = moved.json()["data"]  # type: ignore[attr-defined]
    assert (data["id"], data["user_id"], data["role"]) == (list_id, bob.id, "admin")
    assert (data["task_count"], data["open_task_count"]) == (2, 2)
    assert members(client, carol, list_id) == {
        bob.id: "owner",
        alice.id: "admin",
        carol.id: "viewer",
    }
    as_bob = client.get(f"/api/lists/{list_id}", headers=bob.headers).json()["data"]
    assert as_bob["role"] == "owner" and as_bob["task_count"] == 2
    # Last among the new owner's lists.
    bobs = client.get("/api/lists", headers=bob.headers).json()["data"]
    assert [item["name"] for item in bobs if item["role"] == "owner"] == ["Bob's own", "Trip"]
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, user_id FROM tasks WHERE id IN (:p, :c)"), {"p": parent, "c": child}
        ).all()
        invitation = conn.execute(
            text("SELECT user_id FROM list_invitations WHERE id = :id"), {"id": pending["id"]}
        ).scalar()
        memberships = conn.execute(
            text("SELECT member_id, user_id FROM list_members WHERE list_id = :l"), {"l": list_id}
        ).all()
    assert {user for _, user in rows} == {bob.id}
    assert invitation == bob.id
    assert {member: owner for member, owner in memberships} == {alice.id: bob.id, carol.id: bob.id}
    # Tasks outside the list stay the old owner's.
    assert (
        client.get(f"/api/tasks/{personal.json()['data']['id']}", headers=alice.headers).status_code
        == 200
    )
    # The new owner owns it now: it manages admins, the old owner does not.
    assert (
        client.delete(f"/api/lists/{list_id}/members/{alice.id}", headers=bob.headers).status_code
        == 204
    )
    assert client.get(f"/api/lists/{list_id}", headers=alice.headers).status_code == 404


def test_only_the_owner_transfers_and_only_to_a_member(
    client: TestClient, alice: Account, bob: Account, carol: Account
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "admin")
    refused = _transfer(client, bob, list_id, bob.id)
    assert refused.status_code == 403, refused.text  # type: ignore[attr-defined]
    stranger = _transfer(client, alice, list_id, carol.id)
    assert stranger.status_code == 404, stranger.text  # type: ignore[attr-defined]
    assert stranger.json()["error"]["message"] == "Member not found"  # type: ignore[attr-defined]
    to_self = _transfer(client, alice, list_id, alice.id)
    assert to_self.status_code == 409, to_self.text  # type: ignore[attr-defined]
    assert members(client, alice, list_id) == {alice.id: "owner", bob.id: "admin"}


def test_a_name_the_new_owner_has_already_is_409(
    client: TestClient, alice: Account, bob: Account
) -> None:
    list_id = make_list(client, alice, "Groceries")
    join(client, alice, bob, list_id, "editor")
    client.post("/api/lists", json={"name": "groceries"}, headers=bob.headers)
    clash = _transfer(client, alice, list_id, bob.id)
    assert clash.status_code == 409, clash.text  # type: ignore[attr-defined]
    error = clash.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "CONFLICT" and "Groceries" in error["message"]
    assert members(client, alice, list_id) == {alice.id: "owner", bob.id: "editor"}
