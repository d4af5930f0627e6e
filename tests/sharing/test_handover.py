"""Deleting an account hands each of its shared lists to the oldest admin, else editor, else
member; a list nobody else is in goes with it; its memberships and assignments go."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.sharing.conftest import SharedList

Grant = Callable[[SharedList, Account, str | None], None]


def test_a_deleted_owners_shared_list_goes_to_the_oldest_admin(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    register: Callable[..., Account],
    grant: Grant,
) -> None:
    owner = shared_list.owner
    carol, dave = register("carol@example.com"), register("dave@example.com")
    grant(shared_list, bob, "editor")
    grant(shared_list, carol, "admin")
    grant(shared_list, dave, "admin")  # joined after carol
    sub = client.post(
        "/api/tasks", json={"title": "Sub", "parent_id": shared_list.task_id}, headers=bob.headers
    )
    assert sub.status_code == 201
    client.post("/api/lists", json={"name": "Team"}, headers=carol.headers)  # a name clash
    alone = client.post("/api/lists", json={"name": "Alone"}, headers=owner.headers)
    assert client.delete("/api/auth/me", headers=owner.headers).status_code == 204

    lists = client.get("/api/lists", headers=carol.headers).json()["data"]
    handed = next(entry for entry in lists if entry["id"] == shared_list.list_id)
    assert handed["role"] == "owner"
    assert handed["user_id"] == carol.id
    assert handed["name"] == f"Team #{shared_list.list_id}"
    assert handed["task_count"] == 2
    task = client.get(f"/api/tasks/{sub.json()['data']['id']}", headers=carol.headers)
    assert task.json()["data"]["user_id"] == carol.id  # the rows followed the list
    roles = {
        who.email: client.get(f"/api/lists/{shared_list.list_id}", headers=who.headers).json()
        for who in (bob, dave)
    }
    assert roles["bob@example.com"]["data"]["role"] == "editor"
    assert roles["dave@example.com"]["data"]["role"] == "admin"
    # Bob still edits the list's tasks in its new owner's space.
    changed = client.patch(
        task.request.url.path, json={"title": "Still bob's"}, headers=bob.headers
    )
    assert changed.status_code == 200, changed.text
    gone = client.get(f"/api/lists/{alone.json()['data']['id']}", headers=carol.headers)
    assert gone.status_code == 404


def test_a_deleted_members_assignments_go_with_its_memberships(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    owner = shared_list.owner
    grant(shared_list, bob, "editor")
    task = f"/api/tasks/{shared_list.task_id}"
    assigned = client.patch(task, json={"assignees": [bob.id, owner.id]}, headers=owner.headers)
    assert assigned.status_code == 200
    assert client.delete("/api/auth/me", headers=bob.headers).status_code == 204
    after = client.get(task, headers=owner.headers).json()["data"]
    assert after["assignees"] == [owner.id]
    lists = client.get("/api/lists", headers=owner.headers).json()["data"]
    assert [entry["role"] for entry in lists] == ["owner"]
