"""Priority, due dates, tags, filters, sorting, cursor pagination, bulk, clear, stats."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account

Task = dict[str, Any]


def create(client: TestClient, user: Account, **body: Any) -> Task:
    body.setdefault("title", "Task")
    response = client.post("/api/tasks", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def ids(client: TestClient, user: Account, query: str = "") -> list[int]:
    response = client.get(f"/api/tasks?limit=500&{query}", headers=user.headers)
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["data"]]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


NOW = datetime.now(UTC)
PAST = NOW - timedelta(days=2)
FUTURE = NOW + timedelta(days=2)


# --- fields -------------------------------------------------------------------------------


def test_new_fields_have_defaults(client: TestClient, alice: Account) -> None:
    task = create(client, alice)
    assert task["priority"] == "none"
    assert task["due_date"] is None and task["tags"] == [] and task["is_overdue"] is False


def test_due_date_accepts_offsets_and_plain_dates(client: TestClient, alice: Account) -> None:
    task = create(client, alice, due_date="2030-06-01T10:00:00+02:00")
    assert task["due_date"] == "2030-06-01T08:00:00Z"
    assert task["all_day"] is False
    task = create(client, alice, due_date="2030-06-01")  # a day (tests/api/test_due_days.py)
    assert task["due_date"] == "2030-06-01" and task["all_day"] is True


@pytest.mark.parametrize(
    "due", ["2030-06-01T10:00:00", "tomorrow", "2030-02-30", "0001-01-01T00:00:00+14:00", 1e20]
)
def test_bad_due_dates_are_422(client: TestClient, alice: Account, due: Any) -> None:
    response = client.post(
        "/api/tasks", json={"title": "x", "due_date": due}, headers=alice.headers
    )
    assert response.status_code == 422


def test_is_overdue_is_derived(client: TestClient, alice: Account) -> None:
    late = create(client, alice, due_date=iso(PAST))
    assert late["is_overdue"] is True
    assert create(client, alice, due_date=iso(FUTURE))["is_overdue"] is False
    assert create(client, alice, due_date=iso(PAST), completed=True)["is_overdue"] is False
    done = client.patch(f"/api/tasks/{late['id']}/complete", headers=alice.headers).json()
    assert done["data"]["is_overdue"] is False


def test_tags_are_trimmed_lowercased_and_deduplicated(client: TestClient, alice: Account) -> None:
    task = create(client, alice, tags=[" Work ", "work", "HOME", "home", "Ünïcode"])
    assert task["tags"] == ["work", "home", "ünïcode"]


@pytest.mark.parametrize(
    "tags", [[""], ["   "], ["x" * 33], [f"t{i}" for i in range(21)], ["a\u0000"], "work", [1]]
)
def test_bad_tags_are_422(client: TestClient, alice: Account, tags: Any) -> None:
    response = client.post("/api/tasks", json={"title": "x", "tags": tags}, headers=alice.headers)
    assert response.status_code == 422


def test_put_resets_and_patch_keeps_new_fields(client: TestClient, alice: Account) -> None:
    task = create(client, alice, priority="high", due_date="2030-01-01", tags=["a"])
    patched = client.patch(
        f"/api/tasks/{task['id']}", json={"title": "renamed"}, headers=alice.headers
    ).json()["data"]
    assert (patched["priority"], patched["due_date"], patched["tags"]) == (
        "high",
        "2030-01-01",
        ["a"],
    )
    cleared = client.patch(
        f"/api/tasks/{task['id']}", json={"due_date": None, "tags": []}, headers=alice.headers
    ).json()["data"]
    assert cleared["due_date"] is None and cleared["tags"] == []
    replaced = client.put(
        f"/api/tasks/{task['id']}",
        json={"title": "fresh", "priority": "low"},
        headers=alice.headers,
    ).json()["data"]
    # PUT merges: what it does not name (the cleared due date and tags) stays as stored.
    assert (replaced["priority"], replaced["due_date"], replaced["tags"]) == ("low", None, [])


@pytest.mark.parametrize("body", [{"priority": None}, {"tags": None}, {"priority": "urgent"}])
def test_patch_rejects_bad_new_fields(client: TestClient, alice: Account, body: dict) -> None:
    task = create(client, alice)
    response = client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert response.status_code == 422


# --- filters ------------------------------------------------------------------------------


@pytest.fixture
def catalogue(client: TestClient, alice: Account, bob: Account) -> dict[str, Task]:
    """Alice's tasks with distinct traits, and look-alikes of Bob's that must never show."""
    tasks = {
        "late_high": create(
            client,
            alice,
            title="Pay rent",
            priority="high",
            due_date=iso(PAST),
            tags=["home", "money"],
        ),
        "soon_low": create(
            client,
            alice,
            title="Buy 100% juice",
            priority="low",
            due_date=iso(FUTURE),
            tags=["home"],
        ),
        "done_medium": create(
            client,
            alice,
            title="File taxes",
            priority="medium",
            due_date=iso(PAST),
            tags=["money"],
            completed=True,
            description="under_score and back\\slash",
        ),
        "plain": create(client, alice, title="Call mum"),
    }
    for task in tasks.values():
        create(
            client,
            bob,
            title=task["title"],
            priority=task["priority"],
            due_date=task["due_date"],
            tags=task["tags"],
            completed=task["completed"],
            description=task["description"],
        )
    return tasks


def _stable_id(query: str) -> str:
    """The case's id with its times named, not printed: xdist's workers each collect the suite
    (a few seconds apart) and must agree on every test's id."""
    return query.replace(iso(NOW), "NOW").replace(iso(FUTURE + timedelta(days=1)), "FUTURE+1d")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=pending", {"late_high", "soon_low", "plain"}),
        ("status=completed", {"done_medium"}),
        ("priority=high", {"late_high"}),
        ("priority=high&priority=low", {"late_high", "soon_low"}),
        ("tag=home", {"late_high", "soon_low"}),
        ("tag=HOME&tag=money", {"late_high"}),
        ("tag=nothing", set()),
        ("overdue=true", {"late_high"}),
        ("overdue=false", {"soon_low", "done_medium", "plain"}),
        (f"due_before={iso(NOW)}", {"late_high", "done_medium"}),
        (f"due_after={iso(NOW)}", {"soon_low"}),
        ("q=RENT", {"late_high"}),
        ("q=100%25", {"soon_low"}),
        ("q=%25", {"soon_low"}),
        ("q=_", {"done_medium"}),
        ("q=\\", {"done_medium"}),
        ("q=under_score", {"done_medium"}),
        ("q=nomatch", set()),
        ("status=pending&tag=home&priority=low", {"soon_low"}),
        ("tag=money&overdue=false", {"done_medium"}),
        (f"status=pending&due_before={iso(FUTURE + timedelta(days=1))}&q=pay", {"late_high"}),
    ],
    ids=lambda value: _stable_id(value) if isinstance(value, str) else None,
)
def test_filters_alone_and_combined_never_show_other_users(
    client: TestClient,
    alice: Account,
    catalogue: dict[str, Task],
    query: str,
    expected: set[str],
) -> None:
    by_id = {t["id"]: name for name, t in catalogue.items()}
    response = client.get(f"/api/tasks?{query}&include_total=true", headers=alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {by_id.get(t["id"], "FOREIGN") for t in body["data"]} == expected
    assert body["meta"]["total"] == len(expected)


def test_updated_since_returns_changed_tasks(
    client: TestClient, alice: Account, catalogue: dict[str, Task]
) -> None:
    changed = client.patch(
        f"/api/tasks/{catalogue['plain']['id']}", json={"title": "Call dad"}, headers=alice.headers
    ).json()["data"]
    since = changed["updated_at"]
    assert ids(client, alice, f"updated_since={since}") == [changed["id"]]


# --- sorting ------------------------------------------------------------------------------


@pytest.fixture
def sortable(client: TestClient, alice: Account) -> list[Task]:
    specs = [
        {"title": "b", "priority": "high", "due_date": "2030-01-02"},
        {"title": "B", "priority": "low", "due_date": None},
        {"title": "a", "priority": "high", "due_date": "2030-01-01"},
        {"title": "c", "priority": "none", "due_date": "2030-01-02"},
        {"title": "a", "priority": "medium", "due_date": None},
    ]
    return [create(client, alice, **spec) for spec in specs]


def _expected(tasks: list[Task], key: Callable[[Task], Any], reverse: bool) -> list[int]:
    # Python's sort is stable; sort by id first (in the same direction) for the tie-break.
    ordered = sorted(tasks, key=lambda t: t["id"], reverse=reverse)
    return [t["id"] for t in sorted(ordered, key=key, reverse=reverse)]


RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("created", lambda t: t["created_at"]),
        ("updated", lambda t: t["updated_at"]),
        ("title", lambda t: t["title"].lower()),
        ("priority", lambda t: RANK[t["priority"]]),
    ],
)
def test_each_sort_key_both_ways_with_id_tiebreak(
    client: TestClient, alice: Account, sortable: list[Task], sort: str, key: Any, order: str
) -> None:
    expected = _expected(sortable, key, reverse=order == "desc")
    assert ids(client, alice, f"sort={sort}&order={order}") == expected
    for page_size in (1, 2, 3):
        assert walk(client, alice, f"sort={sort}&order={order}&limit={page_size}") == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_due_date_sort_puts_undated_tasks_last_both_ways(
    client: TestClient, alice: Account, sortable: list[Task], order: str
) -> None:
    reverse = order == "desc"
    dated = [t for t in sortable if t["due_date"]]
    undated = [t for t in sortable if not t["due_date"]]
    expected = _expected(dated, lambda t: t["due_date"], reverse) + [
        t["id"] for t in sorted(undated, key=lambda t: t["id"], reverse=reverse)
    ]
    assert ids(client, alice, f"sort=due_date&order={order}") == expected
    for page_size in (1, 2, 4):
        assert walk(client, alice, f"sort=due_date&order={order}&limit={page_size}") == expected


def test_default_orders(client: TestClient, alice: Account, sortable: list[Task]) -> None:
    for sort, reverse in [
        ("created", True),
        ("updated", True),
        ("title", False),
        ("priority", True),
        ("due_date", False),
    ]:
        explicit = ids(client, alice, f"sort={sort}&order={'desc' if reverse else 'asc'}")
        assert ids(client, alice, f"sort={sort}") == explicit, sort


# --- cursor pagination --------------------------------------------------------------------


def walk(client: TestClient, user: Account, query: str) -> list[int]:
    """Follow next_cursor (checking the Link header agrees) until the end."""
    seen: list[int] = []
    url = f"/api/tasks?{query}"
    for _ in range(1000):
        response = client.get(url, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [t["id"] for t in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            assert "link" not in response.headers
            return seen
        link = response.headers["link"]
        assert link.startswith("</api/tasks?") and link.endswith('>; rel="next"')
        url = link[1 : link.index(">")]
    raise AssertionError("pagination did not end")


def test_link_header_and_next_cursor_agree(client: TestClient, alice: Account) -> None:
    for i in range(3):
        create(client, alice, title=f"t{i}")
    first = client.get("/api/tasks?limit=2&status=pending", headers=alice.headers)
    cursor = first.json()["meta"]["next_cursor"]
    via_cursor = client.get(
        f"/api/tasks?limit=2&status=pending&cursor={cursor}", headers=alice.headers
    )
    link = first.headers["link"]
    via_link = client.get(link[1 : link.index(">")], headers=alice.headers)
    assert via_cursor.json() == via_link.json()
    assert via_cursor.json()["meta"]["count"] == 1


@pytest.fixture
def paged(client: TestClient, alice: Account) -> str:
    for i in range(3):
        create(client, alice, title=f"t{i}", tags=["x"])
    cursor = client.get("/api/tasks?limit=1&tag=x", headers=alice.headers).json()["meta"]
    return str(cursor["next_cursor"])


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # end edited
        lambda c: c[:5] + ("A" if c[5] != "A" else "B") + c[6:],  # start edited
        lambda c: c[:-3],  # truncated
        lambda c: c + "A",  # extended
        lambda c: c + ".extra",
        lambda c: "not-base64!.x",
    ],
)
def test_tampered_cursor_is_422(
    client: TestClient, alice: Account, paged: str, change: Callable[[str], str]
) -> None:
    response = client.get(f"/api/tasks?limit=1&tag=x&cursor={change(paged)}", headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "query.cursor"


@pytest.mark.parametrize(
    "query", ["limit=1&tag=x&sort=title", "limit=1&tag=x&order=asc", "limit=1&tag=y", "limit=1"]
)
def test_cursor_from_another_query_is_422(
    client: TestClient, alice: Account, paged: str, query: str
) -> None:
    response = client.get(f"/api/tasks?{query}&cursor={paged}", headers=alice.headers)
    assert response.status_code == 422


def test_cursor_from_another_user_is_422(client: TestClient, bob: Account, paged: str) -> None:
    response = client.get(f"/api/tasks?limit=1&tag=x&cursor={paged}", headers=bob.headers)
    assert response.status_code == 422


def test_limit_changes_are_allowed_between_pages(
    client: TestClient, alice: Account, paged: str
) -> None:
    response = client.get(f"/api/tasks?limit=5&tag=x&cursor={paged}", headers=alice.headers)
    assert response.status_code == 200 and response.json()["meta"]["count"] == 2


# --- bulk -------------------------------------------------------------------------------------


def test_bulk_applies_in_order_with_per_item_results(client: TestClient, alice: Account) -> None:
    a, b, c = (create(client, alice, title=t) for t in "abc")
    operations = [
        {"op": "complete", "id": a["id"]},
        {"op": "set_priority", "id": b["id"], "priority": "high"},
        {"op": "add_tag", "id": b["id"], "tag": " Urgent "},
        {"op": "add_tag", "id": b["id"], "tag": "urgent"},
        {"op": "delete", "id": c["id"]},
        {"op": "reopen", "id": a["id"]},
        {"op": "remove_tag", "id": b["id"], "tag": "missing"},
    ]
    response = client.post(
        "/api/tasks/bulk", json={"operations": operations}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]["results"]
    assert [(r["index"], r["op"], r["id"]) for r in results] == [
        (i, op["op"], op["id"]) for i, op in enumerate(operations)
    ]
    assert results[0]["task"]["completed"] is True
    assert results[2]["task"]["tags"] == ["urgent"] and results[3]["task"]["tags"] == ["urgent"]
    assert results[4]["task"] is None
    assert results[5]["task"]["completed"] is False
    assert sorted(ids(client, alice)) == sorted([a["id"], b["id"]])


@pytest.mark.parametrize("bad", ["foreign", "missing", "deleted_twice", "too_many_tags"])
def test_bulk_is_all_or_nothing(client: TestClient, alice: Account, bob: Account, bad: str) -> None:
    mine = create(client, alice, title="mine", tags=[f"t{i}" for i in range(20)])
    theirs = create(client, bob, title="theirs")
    before = client.get("/api/tasks", headers=alice.headers).json()["data"]
    failing = {
        "foreign": {"op": "delete", "id": theirs["id"]},
        "missing": {"op": "complete", "id": 999_999},
        "deleted_twice": {"op": "delete", "id": mine["id"]},
        "too_many_tags": {"op": "add_tag", "id": mine["id"], "tag": "one-more"},
    }[bad]
    operations = [
        {"op": "complete", "id": mine["id"]},
        {"op": "set_priority", "id": mine["id"], "priority": "high"},
        *([{"op": "delete", "id": mine["id"]}] if bad == "deleted_twice" else []),
        failing,
    ]
    response = client.post(
        "/api/tasks/bulk", json={"operations": operations}, headers=alice.headers
    )
    expected_status = 422 if bad == "too_many_tags" else 404
    assert response.status_code == expected_status, response.text
    assert (
        response.json()["error"]["details"][0]["field"] == f"body.operations.{len(operations) - 1}"
    )
    assert client.get("/api/tasks", headers=alice.headers).json()["data"] == before
    assert client.get(f"/api/tasks/{theirs['id']}", headers=bob.headers).status_code == 200


def test_bulk_foreign_id_looks_like_a_missing_one(
    client: TestClient, alice: Account, bob: Account
) -> None:
    theirs = create(client, bob)
    foreign = client.post(
        "/api/tasks/bulk",
        json={"operations": [{"op": "complete", "id": theirs["id"]}]},
        headers=alice.headers,
    )
    missing = client.post(
        "/api/tasks/bulk",
        json={"operations": [{"op": "complete", "id": theirs["id"] + 1000}]},
        headers=alice.headers,
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


@pytest.mark.parametrize(
    "body",
    [
        {"operations": []},
        {"operations": [{"op": "complete", "id": 1}] * 101},
        {"operations": [{"op": "explode", "id": 1}]},
        {"operations": [{"op": "set_priority", "id": 1}]},
        {"operations": [{"op": "add_tag", "id": 1, "tag": ""}]},
        {"operations": [{"op": "complete", "id": 0}]},
        {"operations": [{"op": "complete", "id": 1, "extra": True}]},
        {"ops": []},
    ],
)
def test_bulk_rejects_malformed_batches(client: TestClient, alice: Account, body: dict) -> None:
    response = client.post("/api/tasks/bulk", json=body, headers=alice.headers)
    assert response.status_code == 422


# --- clear completed and stats --------------------------------------------------------------


def test_clear_completed_deletes_only_the_callers_completed_tasks(
    client: TestClient, alice: Account, bob: Account
) -> None:
    keep = create(client, alice, title="open")
    create(client, alice, title="done 1", completed=True)
    create(client, alice, title="done 2", completed=True)
    bobs = create(client, bob, title="bob done", completed=True)
    response = client.delete("/api/tasks/completed", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == {"data": {"deleted": 2}}
    assert ids(client, alice) == [keep["id"]]
    assert client.get(f"/api/tasks/{bobs['id']}", headers=bob.headers).status_code == 200
    again = client.delete("/api/tasks/completed/", headers=alice.headers)
    assert again.json() == {"data": {"deleted": 0}}


def test_stats_count_only_the_callers_tasks(
    client: TestClient, alice: Account, bob: Account, catalogue: dict[str, Task]
) -> None:
    response = client.get("/api/tasks/stats", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "total": 4,
            "pending": 3,
            "completed": 1,
            "overdue": 1,
            "by_priority": {"none": 1, "low": 1, "medium": 1, "high": 1},
            "by_list": [{"list_id": None, "name": None, "total": 4, "pending": 3, "completed": 1}],
        }
    }
    create(client, bob, title="extra bob")
    assert client.get("/api/tasks/stats", headers=alice.headers).json()["data"]["total"] == 4
    assert client.get("/api/tasks/stats", headers=bob.headers).json()["data"]["total"] == 5


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/tasks/stats"), ("DELETE", "/api/tasks/completed"), ("POST", "/api/tasks/bulk")],
)
def test_new_routes_need_a_token(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"operations": [{"op": "delete", "id": 1}]})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_long_non_ascii_sort_keys_still_page(client: TestClient, alice: Account) -> None:
    titles = ["Ж" * 200, "Ж" * 199 + "Я", "😀" * 200]
    created = [create(client, alice, title=t, tags=["ünïcode"]) for t in titles]
    query = f"sort=title&limit=1&tag=ünïcode&q={'Ж' * 60}"
    assert sorted(walk(client, alice, query)) == sorted(t["id"] for t in created[:2])
    assert len(walk(client, alice, "sort=title&limit=1")) == 3


def test_a_task_sent_back_whole_is_accepted(client: TestClient, alice: Account) -> None:
    task = create(client, alice, title="round trip", due_date=iso(PAST), tags=["x"])
    assert task["is_overdue"] is True
    replaced = client.put(
        f"/api/tasks/{task['id']}", json={**task, "title": "edited"}, headers=alice.headers
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["data"]["title"] == "edited"


def test_link_header_is_readable_cross_origin(client: TestClient, alice: Account) -> None:
    for i in range(2):
        create(client, alice, title=f"t{i}")
    response = client.get(
        "/api/tasks?limit=1", headers={**alice.headers, "Origin": "http://localhost:3000"}
    )
    assert "link" in response.headers["access-control-expose-headers"].lower()
