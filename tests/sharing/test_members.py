"""`/api/lists/{list_id}/members`: reading them (viewer+), changing a role (admin+; the owner
for admins), removing a member or leaving (issue 39; specs/api-contract.md, "Shared lists").
Rate limiting is on (the default `client`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from backend.db.scope_check import unscoped
from backend.services.sharing import members as member_statements
from tests.conftest import Account
from tests.sharing.helpers import join, make_list, members

MISSING = 999_999


@pytest.fixture
def carol(register: Callable[..., Account]) -> Account:
    return register("carol@example.com")


@pytest.fixture
def dave(register: Callable[..., Account]) -> Account:
    return register("dave@example.com")


@pytest.mark.parametrize(
    "name",
    ["_ALL", "_CHANGE", "_CHANGE_ADMIN", "_REMOVE", "_LEAVE", "_STANDING", "_TRANSFER"],
)
def test_the_member_statements_are_scoped(name: str) -> None:
    assert unscoped(getattr(member_statements, name)) is None


def _missing(client: TestClient, caller: Account, method: str, path: str, **kw: object) -> bytes:
    """The body a list that does not exist gets on this route."""
    answer = client.request(method, path.format(MISSING), headers=caller.headers, **kw)  # type: ignore[arg-type]
    assert answer.status_code == 404, answer.text
    return answer.content


def test_members_lists_the_owner_first_then_members_as_they_joined(
    client: TestClient, alice: Account, bob: Account, carol: Account
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "viewer")
    join(client, alice, carol, list_id, "editor")
    created = client.get(f"/api/lists/{list_id}", headers=alice.headers).json()["data"]
    for caller in (alice, bob, carol):
        answer = client.get(f"/api/lists/{list_id}/members", headers=caller.headers)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert [(m["user_id"], m["role"]) for m in data] == [
            (alice.id, "owner"),
            (bob.id, "viewer"),
            (carol.id, "editor"),
        ]
        assert data[0]["joined_at"] == created["created_at"]
        assert data[0]["email"] == "alice@example.com"
        assert set(data[1]) == {"user_id", "role", "name", "email", "joined_at"}


def test_a_stranger_gets_the_missing_lists_404_byte_for_byte(
    client: TestClient, alice: Account, bob: Account, carol: Account
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "viewer")
    cases = [
        ("GET", "/api/lists/{}/members", {}),
        ("PATCH", "/api/lists/{}/members/" + bob.id, {"json": {"role": "editor"}}),
        ("DELETE", "/api/lists/{}/members/" + bob.id, {}),
        ("POST", "/api/lists/{}/transfer", {"json": {"user_id": bob.id}}),
    ]
    for method, path, kw in cases:
        missing = _missing(client, carol, method, path, **kw)
        answer = client.request(method, path.format(list_id), headers=carol.headers, **kw)  # type: ignore[arg-type]
        assert answer.status_code == 404, (path, answer.text)
        assert answer.content == missing, path
        assert answer.json()["error"]["message"] == "List not found"
    assert members(client, alice, list_id) == {alice.id: "owner", bob.id: "viewer"}


def test_a_member_below_admin_gets_403_and_changes_nothing(
    client: TestClient, alice: Account, bob: Account, carol: Account
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "editor")
    join(client, alice, carol, list_id, "viewer")
    base = f"/api/lists/{list_id}/members/{carol.id}"
    for answer in (
        client.patch(base, json={"role": "editor"}, headers=bob.headers),
        client.delete(base, headers=bob.headers),
        client.post(
            f"/api/lists/{list_id}/transfer", json={"user_id": carol.id}, headers=bob.headers
        ),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "FORBIDDEN"
    assert members(client, alice, list_id) == {
        alice.id: "owner",
        bob.id: "editor",
        carol.id: "viewer",
    }


def test_an_admin_manages_members_below_admin_and_the_owner_manages_admins(
    client: TestClient, alice: Account, bob: Account, carol: Account, dave: Account
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "admin")
    join(client, alice, carol, list_id, "viewer")
    join(client, alice, dave, list_id, "admin")
    path = f"/api/lists/{list_id}/members/"
    changed = client.patch(path + carol.id, json={"role": "editor"}, headers=bob.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["role"] == "editor"
    assert changed.json()["data"]["email"] == "carol@example.com"
    # An admin may not make an admin, demote or remove one: the owner's.
    for answer in (
        client.patch(path + carol.id, json={"role": "admin"}, headers=bob.headers),
        client.patch(path + dave.id, json={"role": "viewer"}, headers=bob.headers),
        client.delete(path + dave.id, headers=bob.headers),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "FORBIDDEN"
        assert "owner" in answer.json()["error"]["message"]
    assert (
        client.patch(path + dave.id, json={"role": "viewer"}, headers=alice.headers).status_code
        == 200
    )
    assert (
        client.patch(path + carol.id, json={"role": "admin"}, headers=alice.headers).status_code
        == 200
    )
    assert client.delete(path + carol.id, headers=alice.headers).status_code == 204
    assert client.delete(path + dave.id, headers=bob.headers).status_code == 204
    assert members(client, alice, list_id) == {alice.id: "owner", bob.id: "admin"}


def test_the_owner_is_not_changed_made_or_removed_this_way(
    client: TestClient, alice: Account, bob: Account
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "admin")
    path = f"/api/lists/{list_id}/members/"
    for caller in (alice, bob):
        changed = client.patch(path + alice.id, json={"role": "viewer"}, headers=caller.headers)
        assert changed.status_code == 409, changed.text
        assert changed.json()["error"]["code"] == "CONFLICT"
    removed = client.delete(path + alice.id, headers=bob.headers)
    assert removed.status_code == 409, removed.text
    left = client.delete(path + alice.id, headers=alice.headers)
    assert left.status_code == 409, left.text
    assert "transfer" in left.json()["error"]["message"]
    # Nobody is made owner by a role change.
    owner = client.patch(path + bob.id, json={"role": "owner"}, headers=alice.headers)
    assert owner.status_code == 422, owner.text
    assert members(client, alice, list_id) == {alice.id: "owner", bob.id: "admin"}


def test_a_member_leaves_and_loses_access_at_once(
    client: TestClient, alice: Account, bob: Account, carol: Account
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "admin")
    join(client, alice, carol, list_id, "viewer")
    for member in (bob, carol):
        left = client.delete(f"/api/lists/{list_id}/members/{member.id}", headers=member.headers)
        assert left.status_code == 204, left.text
        assert left.content == b""
        gone = client.get(f"/api/lists/{list_id}/members", headers=member.headers)
        assert gone.status_code == 404
        assert gone.content == _missing(client, member, "GET", "/api/lists/{}/members")
    assert members(client, alice, list_id) == {alice.id: "owner"}


def test_a_user_who_is_no_member_is_member_not_found(
    client: TestClient, alice: Account, bob: Account, carol: Account
) -> None:
    list_id = make_list(client, alice)
    path = f"/api/lists/{list_id}/members/{carol.id}"
    for answer in (
        client.patch(path, json={"role": "viewer"}, headers=alice.headers),
        client.delete(path, headers=alice.headers),
        client.patch(
            f"/api/lists/{list_id}/members/nobody", json={"role": "viewer"}, headers=alice.headers
        ),
    ):
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["message"] == "Member not found"


def test_removing_a_member_unassigns_it_from_that_lists_tasks_only(
    client: TestClient, alice: Account, bob: Account
) -> None:
    here = make_list(client, alice, "Here")
    there = make_list(client, alice, "There")
    join(client, alice, bob, here, "editor")
    join(client, alice, bob, there, "editor")
    tasks = []
    for list_id in (here, there):
        made = client.post(
            "/api/tasks",
            json={"title": "t", "list_id": list_id, "assignees": [bob.id]},
            headers=alice.headers,
        )
        assert made.status_code == 201, made.text
        tasks.append(made.json()["data"])
    removed = client.delete(f"/api/lists/{here}/members/{bob.id}", headers=alice.headers)
    assert removed.status_code == 204, removed.text
    after = [client.get(f"/api/tasks/{task['id']}", headers=alice.headers) for task in tasks]
    assert [task.json()["data"]["assignees"] for task in after] == [[], [bob.id]]
    # Its ETag moved on (the version in it).
    assert after[0].headers["ETag"] != f'"{tasks[0]["id"]}-1"'
    assert after[1].headers["ETag"] == f'"{tasks[1]["id"]}-1"'
