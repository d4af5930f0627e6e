"""Assignees: a task's owner or members of its list, set by an editor; a removed member is
unassigned from that list's tasks only, in the removal's transaction."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.sharing.conftest import SharedList

Grant = Callable[[SharedList, Account, str | None], None]


def test_an_editor_assigns_members_and_only_members(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    register: Callable[..., Account],
    grant: Grant,
) -> None:
    carol, dave = register("carol@example.com"), register("dave@example.com")
    grant(shared_list, bob, "editor")
    grant(shared_list, carol, "viewer")
    owner = shared_list.owner
    task = f"/api/tasks/{shared_list.task_id}"
    assigned = client.patch(
        task, json={"assignees": [carol.id, owner.id, carol.id]}, headers=bob.headers
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["data"]["assignees"] == [carol.id, owner.id]
    before = client.get(task, headers=owner.headers)
    for outsider in (dave.id, "no-such-user"):
        refused = client.patch(task, json={"assignees": [outsider]}, headers=bob.headers)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == "body.assignees"
    assert client.get(task, headers=owner.headers).content == before.content
    # A viewer may not assign; a new task in the list may be created assigned.
    assert client.patch(task, json={"assignees": []}, headers=carol.headers).status_code == 403
    made = client.post(
        "/api/tasks",
        json={"title": "For carol", "list_id": shared_list.list_id, "assignees": [carol.id]},
        headers=bob.headers,
    )
    assert made.status_code == 201, made.text
    assert made.json()["data"]["assignees"] == [carol.id]
    wrong = client.post(
        "/api/tasks",
        json={"title": "For dave", "list_id": shared_list.list_id, "assignees": [dave.id]},
        headers=bob.headers,
    )
    assert wrong.status_code == 422, wrong.text


def test_a_personal_task_is_assigned_to_its_owner_only(
    client: TestClient, alice: Account, bob: Account
) -> None:
    mine = client.post(
        "/api/tasks", json={"title": "Mine", "assignees": [alice.id]}, headers=alice.headers
    )
    assert mine.status_code == 201, mine.text
    assert mine.json()["data"]["assignees"] == [alice.id]
    other = client.post(
        "/api/tasks", json={"title": "x", "assignees": [bob.id]}, headers=alice.headers
    )
    assert other.status_code == 422
    patched = client.patch(
        f"/api/tasks/{mine.json()['data']['id']}",
        json={"assignees": [bob.id]},
        headers=alice.headers,
    )
    assert patched.status_code == 422


def test_removal_unassigns_from_that_lists_tasks_only(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    register: Callable[..., Account],
    grant: Grant,
) -> None:
    owner = shared_list.owner
    other = client.post("/api/lists", json={"name": "Other"}, headers=owner.headers)
    other_list = SharedList(owner=owner, list_id=other.json()["data"]["id"], task_id=0)
    elsewhere = client.post(
        "/api/tasks",
        json={"title": "Elsewhere", "list_id": other_list.list_id},
        headers=owner.headers,
    ).json()["data"]["id"]
    grant(shared_list, bob, "editor")
    grant(other_list, bob, "editor")
    task = f"/api/tasks/{shared_list.task_id}"
    assert (
        client.patch(task, json={"assignees": [bob.id]}, headers=owner.headers).status_code == 200
    )
    kept = client.patch(
        f"/api/tasks/{elsewhere}", json={"assignees": [bob.id]}, headers=owner.headers
    )
    assert kept.status_code == 200
    etag = client.get(task, headers=owner.headers).headers["ETag"]
    grant(shared_list, bob, None)
    after = client.get(task, headers=owner.headers)
    assert after.json()["data"]["assignees"] == []
    assert after.headers["ETag"] != etag  # the change is a change: its version moved on
    assert client.get(f"/api/tasks/{elsewhere}", headers=owner.headers).json()["data"][
        "assignees"
    ] == [bob.id]


def test_the_listing_filters_by_assignee(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    owner = shared_list.owner
    grant(shared_list, bob, "editor")
    mine = client.post(
        "/api/tasks",
        json={"title": "For bob", "list_id": shared_list.list_id, "assignees": [bob.id]},
        headers=owner.headers,
    )
    assert mine.status_code == 201, mine.text
    client.post(
        "/api/tasks", json={"title": "Own, mine", "assignees": [bob.id]}, headers=bob.headers
    )

    def titles(query: str, who: Account) -> list[str]:
        answer = client.get(f"/api/tasks?{query}&sort=title", headers=who.headers)
        assert answer.status_code == 200, answer.text
        return [task["title"] for task in answer.json()["data"]]

    assert titles("assignee=me", bob) == ["For bob", "Own, mine"]
    assert titles("assignee=none", bob) == ["Shared task"]
    assert titles(f"assignee={bob.id}", owner) == ["For bob"]
    assert titles("assignee=me", owner) == []
    too_long = client.get("/api/tasks?assignee=" + "x" * 300, headers=bob.headers)
    assert too_long.status_code == 422


def test_a_move_keeps_only_the_assignees_of_the_new_place(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    register: Callable[..., Account],
    grant: Grant,
) -> None:
    """A task that changes lists keeps its owner and the new list's members as assignees,
    in the move's own answer (PATCH, the move route, bulk), its subtasks too."""
    carol = register("carol@example.com")
    owner = shared_list.owner
    other = client.post("/api/lists", json={"name": "Other"}, headers=owner.headers)
    other_list = SharedList(owner=owner, list_id=other.json()["data"]["id"], task_id=0)
    grant(shared_list, bob, "editor")
    grant(shared_list, carol, "editor")
    grant(other_list, bob, "editor")  # bob is in both lists, carol in the first only
    everyone = [carol.id, owner.id, bob.id]

    def assigned_task(**fields: object) -> int:
        made = client.post(
            "/api/tasks",
            json={"title": "t", "list_id": shared_list.list_id, "assignees": everyone, **fields},
            headers=owner.headers,
        )
        assert made.status_code == 201, made.text
        assert made.json()["data"]["assignees"] == everyone
        task_id: int = made.json()["data"]["id"]
        return task_id

    def assignees(task_id: int) -> list[str]:
        got = client.get(f"/api/tasks/{task_id}", headers=owner.headers)
        value: list[str] = got.json()["data"]["assignees"]
        return value

    parent = assigned_task()
    child = assigned_task(parent_id=parent)
    moved = client.patch(
        f"/api/tasks/{parent}", json={"list_id": other_list.list_id}, headers=owner.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["assignees"] == [owner.id, bob.id]  # the answer says it
    assert assignees(child) == [owner.id, bob.id]  # the subtree moved with it
    # The move route and a bulk move, to no list: its owner only.
    routed = assigned_task()
    answer = client.post(f"/api/tasks/{routed}/move", json={"list_id": None}, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    assert assignees(routed) == [owner.id]
    bulked = assigned_task()
    step = [{"op": "move", "id": bulked, "list_id": other_list.list_id}]
    applied = client.post("/api/tasks/bulk", json={"operations": step}, headers=owner.headers)
    assert applied.status_code == 200, applied.text
    assert assignees(bulked) == [owner.id, bob.id]
    # A move that names new assignees of the new list keeps exactly those.
    named = assigned_task()
    both = client.patch(
        f"/api/tasks/{named}",
        json={"list_id": other_list.list_id, "assignees": [bob.id]},
        headers=owner.headers,
    )
    assert both.status_code == 200, both.text
    assert both.json()["data"]["assignees"] == [bob.id]
