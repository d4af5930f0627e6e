"""Tasks of a shared list: what each role may do with them, over real PostgreSQL with rate
limiting on. A stranger's answers are byte-identical to a missing task's or list's; a member
below editor gets 403 FORBIDDEN and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.sharing.conftest import SharedList

Grant = Callable[[SharedList, Account, str | None], None]
MISSING = 2_000_000_000


def test_a_member_sees_the_list_with_its_role_and_its_tasks(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    grant(shared_list, bob, "viewer")
    lists = client.get("/api/lists", headers=bob.headers).json()["data"]
    assert [(entry["id"], entry["role"], entry["task_count"]) for entry in lists] == [
        (shared_list.list_id, "viewer", 1)
    ]
    one = client.get(f"/api/lists/{shared_list.list_id}", headers=bob.headers)
    assert one.status_code == 200
    assert one.json()["data"]["role"] == "viewer"
    task = client.get(f"/api/tasks/{shared_list.task_id}", headers=bob.headers)
    assert task.status_code == 200
    assert task.json()["data"]["title"] == "Shared task"
    owner_view = client.get(f"/api/lists/{shared_list.list_id}", headers=shared_list.owner.headers)
    assert owner_view.json()["data"]["role"] == "owner"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/tasks/{task}", None),
        ("PATCH", "/api/tasks/{task}", {"title": "x"}),
        ("PATCH", "/api/tasks/{task}/complete", {"completed": True}),
        ("DELETE", "/api/tasks/{task}", None),
        ("GET", "/api/tasks/{task}/subtree", None),
        ("GET", "/api/lists/{list}", None),
        ("PATCH", "/api/lists/{list}", {"name": "Renamed"}),
        ("DELETE", "/api/lists/{list}", None),
    ],
)
def test_a_stranger_gets_what_a_missing_resource_gets(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    real = path.format(task=shared_list.task_id, list=shared_list.list_id)
    missing = path.format(task=MISSING, list=MISSING)
    answer = client.request(method, real, json=body, headers=bob.headers)
    nothing = client.request(method, missing, json=body, headers=bob.headers)
    assert answer.status_code == 404
    assert answer.content == nothing.content


@pytest.mark.parametrize("role", ["viewer", "commenter"])
def test_a_member_below_editor_cannot_change_tasks(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant, role: str
) -> None:
    grant(shared_list, bob, role)
    task = f"/api/tasks/{shared_list.task_id}"
    before = client.get(task, headers=shared_list.owner.headers)
    for method, path, body in (
        ("PATCH", task, {"title": "x"}),
        ("PATCH", f"{task}/complete", {"completed": True}),
        ("DELETE", task, None),
        ("POST", "/api/tasks", {"title": "new", "list_id": shared_list.list_id}),
        ("POST", "/api/tasks", {"title": "sub", "parent_id": shared_list.task_id}),
        ("PATCH", f"/api/lists/{shared_list.list_id}", {"name": "Renamed"}),
        ("DELETE", f"/api/lists/{shared_list.list_id}", None),
    ):
        answer = client.request(method, path, json=body, headers=bob.headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "FORBIDDEN"
    after = client.get(task, headers=shared_list.owner.headers)
    assert after.content == before.content
    assert after.headers["ETag"] == before.headers["ETag"]
    listed = client.get(
        f"/api/tasks?list_id={shared_list.list_id}", headers=shared_list.owner.headers
    )
    assert len(listed.json()["data"]) == 1


def test_an_editor_changes_creates_and_deletes_the_lists_tasks(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    grant(shared_list, bob, "editor")
    task = f"/api/tasks/{shared_list.task_id}"
    changed = client.patch(task, json={"title": "Changed by bob"}, headers=bob.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["user_id"] == shared_list.owner.id  # the owner's space
    made = client.post(
        "/api/tasks", json={"title": "Bob's", "list_id": shared_list.list_id}, headers=bob.headers
    )
    assert made.status_code == 201, made.text
    assert made.json()["data"]["user_id"] == shared_list.owner.id
    sub = client.post(
        "/api/tasks", json={"title": "Sub", "parent_id": shared_list.task_id}, headers=bob.headers
    )
    assert sub.status_code == 201, sub.text
    assert sub.json()["data"]["list_id"] == shared_list.list_id
    completed = client.patch(f"{task}/complete", json={"completed": True}, headers=bob.headers)
    assert completed.status_code == 200
    assert completed.json()["data"]["completed"] is True
    # The owner sees every change, the subtask completed with its parent.
    owner = shared_list.owner.headers
    seen = client.get(f"/api/tasks/{sub.json()['data']['id']}", headers=owner).json()["data"]
    assert seen["completed"] is True
    gone = client.delete(f"/api/tasks/{made.json()['data']['id']}", headers=bob.headers)
    assert gone.status_code == 204
    assert client.get("/api/lists", headers=owner).json()["data"][0]["task_count"] == 2


def test_a_task_moves_only_between_lists_of_one_owner(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    grant(shared_list, bob, "editor")
    own = client.post("/api/lists", json={"name": "Bob's own"}, headers=bob.headers)
    own_id = own.json()["data"]["id"]
    moved = client.patch(
        f"/api/tasks/{shared_list.task_id}", json={"list_id": own_id}, headers=bob.headers
    )
    assert moved.status_code == 422, moved.text
    assert moved.json()["error"]["details"][0]["field"] == "body.list_id"
    mine = client.post("/api/tasks", json={"title": "Mine"}, headers=bob.headers)
    into = client.patch(
        f"/api/tasks/{mine.json()['data']['id']}",
        json={"list_id": shared_list.list_id},
        headers=bob.headers,
    )
    assert into.status_code == 422, into.text
    # Within the shared list, an editor orders its tasks.
    second = client.post(
        "/api/tasks", json={"title": "Second", "list_id": shared_list.list_id}, headers=bob.headers
    )
    reorder = client.post(
        f"/api/tasks/{second.json()['data']['id']}/move",
        json={"after_id": shared_list.task_id},
        headers=bob.headers,
    )
    assert reorder.status_code == 200, reorder.text


def test_a_removed_member_loses_access_on_its_next_request(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    grant(shared_list, bob, "editor")
    task = f"/api/tasks/{shared_list.task_id}"
    assert client.get(task, headers=bob.headers).status_code == 200
    grant(shared_list, bob, None)
    missing = client.get(f"/api/tasks/{MISSING}", headers=bob.headers)
    gone = client.get(task, headers=bob.headers)
    assert gone.status_code == 404
    assert gone.content == missing.content
    assert client.get("/api/lists", headers=bob.headers).json()["data"] == []
    grant(shared_list, bob, "viewer")  # downgraded: reads, no writes
    assert client.patch(task, json={"title": "x"}, headers=bob.headers).status_code == 403


def test_a_members_listing_interleaves_its_own_and_shared_tasks_in_order(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    owner = shared_list.owner
    grant(shared_list, bob, "viewer")
    titles = []
    for n in range(3):
        for who, headers, body in (
            ("alice", owner.headers, {"list_id": shared_list.list_id}),
            ("bob", bob.headers, {}),
        ):
            title = f"{who} {n}"
            made = client.post("/api/tasks", json={"title": title, **body}, headers=headers)
            assert made.status_code == 201, made.text
            titles.append(title)
    alone = client.post("/api/tasks", json={"title": "alice alone"}, headers=owner.headers)
    assert alone.status_code == 201
    # Newest first, across both arms, two at a time: every task once, in order.
    seen, cursor = [], None
    while True:
        query = "/api/tasks?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query, headers=bob.headers).json()
        seen += [task["title"] for task in page["data"]]
        cursor = page["meta"].get("next_cursor")
        if not cursor:
            break
    assert seen == [*reversed(titles), "Shared task"]
    in_list = client.get(
        f"/api/tasks?list_id={shared_list.list_id}&sort=title&order=asc", headers=bob.headers
    ).json()["data"]
    assert [task["title"] for task in in_list] == ["alice 0", "alice 1", "alice 2", "Shared task"]
    stats = client.get("/api/tasks/stats", headers=bob.headers).json()["data"]
    assert stats["total"] == 7
    by_list = [(entry["name"], entry["total"]) for entry in stats["by_list"]]
    assert by_list == [("Team", 4), (None, 3)]


_BULK_OPERATIONS: list[dict[str, object]] = [
    {"op": "complete"},
    {"op": "reopen"},
    {"op": "delete"},
    {"op": "set_priority", "priority": "high"},
    {"op": "add_tag", "tag": "mine"},
    {"op": "remove_tag", "tag": "kept"},
    {"op": "move", "list_id": None},
    {"op": "move", "list_id": "LIST"},
]


def _bulk(operation: dict[str, object], task_id: int, list_id: int) -> dict[str, object]:
    values = {k: list_id if v == "LIST" else v for k, v in operation.items()}
    return {"operations": [{**values, "id": task_id}]}


@pytest.mark.parametrize("role", ["viewer", "commenter"])
def test_a_bulk_operation_below_editor_is_403_before_any_check_of_its_values(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant, role: str
) -> None:
    """Issue 49, 2: permission first (a reader below editor: 403 FORBIDDEN, naming the
    operation), then the values (a full task's tags: 422 only for a writer)."""
    owner = shared_list.owner
    task = f"/api/tasks/{shared_list.task_id}"
    tags = {"tags": ["kept", *(f"t{n}" for n in range(19))]}  # 20: full
    assert client.patch(task, json=tags, headers=owner.headers).status_code == 200
    grant(shared_list, bob, role)
    before = client.get(task, headers=owner.headers)
    for operation in _BULK_OPERATIONS:
        body = _bulk(operation, shared_list.task_id, shared_list.list_id)
        answer = client.post("/api/tasks/bulk", json=body, headers=bob.headers)
        assert answer.status_code == 403, (operation, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "FORBIDDEN", (operation, error)
        assert error["details"][0]["field"] == "body.operations.0", error
        assert f"({role})" in error["message"], error
    after = client.get(task, headers=owner.headers)
    assert after.content == before.content
    # A writer gets the value's error: the task is full.
    grant(shared_list, bob, "editor")
    body = _bulk({"op": "add_tag", "tag": "mine"}, shared_list.task_id, shared_list.list_id)
    full = client.post("/api/tasks/bulk", json=body, headers=bob.headers)
    assert full.status_code == 422, full.text
    assert "at most 20 tags" in full.json()["error"]["message"]


def test_a_strangers_bulk_operation_is_a_missing_tasks_404_byte_for_byte(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    for operation in _BULK_OPERATIONS:
        real = _bulk(operation, shared_list.task_id, shared_list.list_id)
        missing = _bulk(operation, MISSING, shared_list.list_id)
        answer = client.post("/api/tasks/bulk", json=real, headers=bob.headers)
        nothing = client.post("/api/tasks/bulk", json=missing, headers=bob.headers)
        assert answer.status_code == 404, (operation, answer.text)
        assert answer.content == nothing.content, operation


def test_a_viewers_bulk_refusal_names_its_operation_and_undoes_the_ones_before(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    grant(shared_list, bob, "viewer")
    mine = client.post("/api/tasks", json={"title": "Bob's"}, headers=bob.headers)
    own = mine.json()["data"]["id"]
    steps = [
        {"op": "complete", "id": own},
        {"op": "add_tag", "id": shared_list.task_id, "tag": "x"},
    ]
    answer = client.post("/api/tasks/bulk", json={"operations": steps}, headers=bob.headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["details"][0]["field"] == "body.operations.1"
    assert client.get(f"/api/tasks/{own}", headers=bob.headers).json()["data"]["completed"] is False
