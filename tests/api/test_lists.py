"""Lists (issue 24, item 1): create, read, rename, recolour, reorder and delete them, their
counts, their ETags, their limits, and their tasks (the listing's `list_id` filter, stats by
list, deleting a list deletes its tasks)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.models.task_list import LISTS_PER_USER
from tests.conftest import Account


def make_list(client: TestClient, account: Account, name: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/lists", json={"name": name, **extra}, headers=account.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["data"]
    return created


def make_task(client: TestClient, account: Account, title: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/tasks", json={"title": title, **extra}, headers=account.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["data"]
    return created


def test_create_returns_201_location_etag_and_the_list(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/api/lists", json={"name": "  Groceries ", "color": "#2E7D32"}, headers=alice.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()["data"]
    assert response.headers["Location"] == f"/api/lists/{created['id']}"
    assert response.headers["ETag"] == f'"{created["id"]}-1"'
    assert created["name"] == "Groceries"  # trimmed
    assert created["color"] == "#2e7d32"  # lower-cased
    assert (created["task_count"], created["open_task_count"]) == (0, 0)
    assert created["user_id"] == alice.id
    assert set(created) == {
        "id",
        "user_id",
        "name",
        "color",
        "position",
        "task_count",
        "open_task_count",
        "role",
        "created_at",
        "updated_at",
    }
    assert created["role"] == "owner"
    got = client.get(f"/api/lists/{created['id']}", headers=alice.headers)
    assert got.json()["data"] == created
    assert got.headers["ETag"] == response.headers["ETag"]


def test_names_are_unique_per_user_ignoring_case(
    client: TestClient, alice: Account, bob: Account
) -> None:
    first = make_list(client, alice, "Straße")
    for same in ("straße", "STRASSE", "strasse", "Stra\u00dfe"):
        answer = client.post("/api/lists", json={"name": same}, headers=alice.headers)
        assert answer.status_code == 409, (same, answer.text)
        assert answer.json()["error"]["details"][0]["field"] == "body.name"
    # Another user may have the same name; renaming a list to its own name in another case is
    # fine, to another list's name is not.
    make_list(client, bob, "Straße")
    renamed = client.patch(
        f"/api/lists/{first['id']}", json={"name": "STRASSE"}, headers=alice.headers
    )
    assert renamed.status_code == 200 and renamed.json()["data"]["name"] == "STRASSE"
    other = make_list(client, alice, "Work")
    clash = client.patch(
        f"/api/lists/{other['id']}", json={"name": "straße"}, headers=alice.headers
    )
    assert clash.status_code == 409
    assert (
        client.get(f"/api/lists/{other['id']}", headers=alice.headers).json()["data"]["name"]
        == "Work"
    )


def test_lists_are_in_their_order_and_move(client: TestClient, alice: Account) -> None:
    a, b, c = (make_list(client, alice, name) for name in "abc")
    names = lambda: [
        x["name"] for x in client.get("/api/lists", headers=alice.headers).json()["data"]
    ]
    assert names() == ["a", "b", "c"]  # a new list goes last
    moved = client.post(
        f"/api/lists/{c['id']}/move", json={"before_id": a["id"]}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.headers["ETag"] == f'"{c["id"]}-2"'
    assert names() == ["c", "a", "b"]
    client.post(f"/api/lists/{c['id']}/move", json={"after_id": a["id"]}, headers=alice.headers)
    assert names() == ["a", "c", "b"]
    client.post(f"/api/lists/{a['id']}/move", json={}, headers=alice.headers)
    assert names() == ["c", "b", "a"]
    # Many moves into the same gap: respaced when it closes, the order is always right.
    for n in range(40):
        mover = (b, a)[n % 2]
        client.post(
            f"/api/lists/{mover['id']}/move", json={"after_id": c["id"]}, headers=alice.headers
        )
        expected = ["c", "b", "a"] if mover is b else ["c", "a", "b"]
        assert names() == expected
    listing = client.get("/api/lists", headers=alice.headers).json()
    positions = [x["position"] for x in listing["data"]]
    assert positions == sorted(set(positions)) and listing["meta"] == {"count": 3}
    for body, field in (({"after_id": a["id"]}, "after_id"), ({"before_id": a["id"]}, "before_id")):
        self_anchor = client.post(f"/api/lists/{a['id']}/move", json=body, headers=alice.headers)
        assert self_anchor.status_code == 422
        assert self_anchor.json()["error"]["details"][0]["field"] == f"body.{field}"
    both = {"after_id": b["id"], "before_id": c["id"]}
    assert (
        client.post(f"/api/lists/{a['id']}/move", json=both, headers=alice.headers).status_code
        == 422
    )
    missing = client.post(
        f"/api/lists/{a['id']}/move", json={"after_id": 10**9}, headers=alice.headers
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["details"][0]["field"] == "body.after_id"


def test_patch_put_and_if_match(client: TestClient, alice: Account) -> None:
    created = make_list(client, alice, "Home", color="#112233")
    url = f"/api/lists/{created['id']}"
    recoloured = client.patch(url, json={"color": None}, headers=alice.headers)
    assert recoloured.json()["data"]["color"] is None
    assert recoloured.json()["data"]["name"] == "Home"
    assert client.patch(url, json={"name": None}, headers=alice.headers).status_code == 422
    stale = client.put(
        url, json={"name": "House"}, headers={**alice.headers, "If-Match": f'"{created["id"]}-1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["message"].startswith("The list has changed")
    current = client.get(url, headers=alice.headers).headers["ETag"]
    replaced = client.put(
        url, json={"name": "House"}, headers={**alice.headers, "If-Match": current}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["data"]["color"] is None  # cleared by the PATCH above, and kept
    # A list sent back whole (read-only fields included) is accepted.
    whole = {**replaced.json()["data"], "name": "Cottage"}
    assert client.put(url, json=whole, headers=alice.headers).json()["data"]["name"] == "Cottage"
    deleted = client.delete(url, headers={**alice.headers, "If-Match": current})
    assert deleted.status_code == 412
    # A task's form of tag (version, then subtask counts) is no list's tag.
    latest = client.get(url, headers=alice.headers).headers["ETag"].strip('"')
    as_task = client.delete(url, headers={**alice.headers, "If-Match": f'"{latest}-0-0"'})
    assert as_task.status_code == 412
    assert client.delete(url, headers={**alice.headers, "If-Match": "*"}).status_code == 204
    assert client.get(url, headers=alice.headers).status_code == 404
    assert client.delete(url, headers=alice.headers).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "a\u0000b"},
        {"name": "line\nbreak"},
        {"name": "bidi \u202e"},
        {"name": 5},
        {"name": "ok", "color": "green"},
        {"name": "ok", "color": "#12345"},
        {"name": "ok", "color": "#1234567"},
        {"name": "ok", "unknown": 1},
        {},
    ],
)
def test_invalid_list_bodies_are_422(client: TestClient, alice: Account, body: Any) -> None:
    answer = client.post("/api/lists", json=body, headers=alice.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("list_id", ["0", "-1", "abc", "1.5", "5_0", str(2**53), str(2**64)])
def test_bad_list_ids_are_422(client: TestClient, alice: Account, list_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        answer = client.request(method, f"/api/lists/{list_id}", json={}, headers=alice.headers)
        assert answer.status_code == 422, (method, answer.text)
        assert answer.json()["error"]["details"][0]["field"] == "path.list_id"


def test_a_list_has_its_tasks(client: TestClient, alice: Account) -> None:
    groceries = make_list(client, alice, "Groceries")
    work = make_list(client, alice, "Work")
    milk = make_task(client, alice, "milk", list_id=groceries["id"])
    eggs = make_task(client, alice, "eggs", list_id=groceries["id"], completed=True)
    step = make_task(client, alice, "organic", parent_id=milk["id"])
    loose = make_task(client, alice, "loose")
    assert (milk["list_id"], step["list_id"], loose["list_id"]) == (groceries["id"],) * 2 + (None,)
    assert step["parent_id"] == milk["id"]

    def ids(query: str) -> list[int]:
        page = client.get(f"/api/tasks?{query}", headers=alice.headers)
        assert page.status_code == 200, page.text
        return [t["id"] for t in page.json()["data"]]

    assert set(ids(f"list_id={groceries['id']}")) == {milk["id"], eggs["id"], step["id"]}
    assert ids(f"list_id={work['id']}") == []
    assert ids("list_id=none") == [loose["id"]]
    assert set(ids(f"list_id={groceries['id']}&parent_id=none")) == {milk["id"], eggs["id"]}
    assert ids(f"parent_id={milk['id']}") == [step["id"]]
    assert set(ids("parent_id=none")) == {milk["id"], eggs["id"], loose["id"]}
    for bad in ("list_id=abc", "list_id=0", "list_id=-1", "parent_id=None", f"list_id={2**63}"):
        assert client.get(f"/api/tasks?{bad}", headers=alice.headers).status_code == 422, bad

    listed = {x["id"]: x for x in client.get("/api/lists", headers=alice.headers).json()["data"]}
    assert (listed[groceries["id"]]["task_count"], listed[groceries["id"]]["open_task_count"]) == (
        3,
        2,
    )
    assert (listed[work["id"]]["task_count"], listed[work["id"]]["open_task_count"]) == (0, 0)
    stats = client.get("/api/tasks/stats", headers=alice.headers).json()["data"]
    assert stats["by_list"] == [
        {"list_id": groceries["id"], "name": "Groceries", "total": 3, "pending": 2, "completed": 1},
        {"list_id": work["id"], "name": "Work", "total": 0, "pending": 0, "completed": 0},
        {"list_id": None, "name": None, "total": 1, "pending": 1, "completed": 0},
    ]


def test_deleting_a_list_deletes_its_tasks_and_records_each_once(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """Every deleted task (subtasks at every depth included) is one `deleted` change in the
    feed, and the list's deletion one `list.deleted` event, in the same transaction."""
    doomed = make_list(client, alice, "Doomed")
    kept = make_list(client, alice, "Kept")
    top = make_task(client, alice, "top", list_id=doomed["id"])
    child = make_task(client, alice, "child", parent_id=top["id"])
    grandchild = make_task(client, alice, "grandchild", parent_id=child["id"])
    other = make_task(client, alice, "other", list_id=doomed["id"], completed=True)
    survivor = make_task(client, alice, "survivor", list_id=kept["id"])
    cursor = client.get("/api/tasks", headers=alice.headers).json()["meta"]["changes_cursor"]
    assert client.delete(f"/api/lists/{doomed['id']}", headers=alice.headers).status_code == 204
    changes = client.get(
        "/api/tasks/changes", params={"cursor": cursor}, headers=alice.headers
    ).json()["data"]
    deleted = [c["task_id"] for c in changes if c["type"] == "deleted"]
    assert sorted(deleted) == sorted([top["id"], child["id"], grandchild["id"], other["id"]])
    assert len(changes) == 4  # nothing else, and list events are not task changes
    remaining = [t["id"] for t in client.get("/api/tasks", headers=alice.headers).json()["data"]]
    assert remaining == [survivor["id"]]
    with db_engine.connect() as conn:
        events = conn.execute(
            text("SELECT type, list_id, task_id FROM task_events WHERE user_id = :u ORDER BY id"),
            {"u": alice.id},
        ).all()
    assert [e.type for e in events].count("list.deleted") == 1
    assert [e.task_id for e in events if e.type == "deleted"] == deleted


def test_the_list_limit(client: TestClient, alice: Account, db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task_lists (user_id, name, name_key, position) "
                "SELECT :u, 'l' || n, 'l' || n, n FROM generate_series(1, :count) AS n"
            ),
            {"u": alice.id, "count": LISTS_PER_USER},
        )
    refused = client.post("/api/lists", json={"name": "one more"}, headers=alice.headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "LIMIT_REACHED"
    # A name taken is still a 409 at the limit.
    assert client.post("/api/lists", json={"name": "L1"}, headers=alice.headers).status_code == 409
    assert len(client.get("/api/lists", headers=alice.headers).json()["data"]) == LISTS_PER_USER


def test_the_user_id_paths_serve_lists(client: TestClient, alice: Account, bob: Account) -> None:
    made = client.post(f"/api/{alice.id}/lists", json={"name": "Mine"}, headers=alice.headers)
    assert (
        made.status_code == 201
        and made.headers["Location"] == f"/api/lists/{made.json()['data']['id']}"
    )
    own = client.get(f"/api/{alice.id}/lists", headers=alice.headers)
    assert own.json() == client.get("/api/lists", headers=alice.headers).json()
    foreign = client.get(f"/api/{alice.id}/lists", headers=bob.headers)
    assert foreign.status_code == 404
    assert foreign.json()["error"]["message"] == "List not found"
