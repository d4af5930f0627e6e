"""Saved filters (issue 53): `/api/filters` and `GET /api/tasks?filter=` (specs/api-contract.md,
"Saved filters")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.responses import EXAMPLES
from backend.contracts.task_listing import listing_query
from backend.db.sender import Sender
from backend.models.names import NAME_MAX_LENGTH
from backend.services.tasks.saved_filters import saved_queries
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_listing import TaskListQuery
from backend.services.tasks.task_statements import listing_still_empty
from tests.conftest import Account, count_rows
from tests.mcp.conftest import call_tool_rpc
from tests.sharing.conftest import SharedList


def make_filter(client: TestClient, account: Account, name: str, **query: Any) -> dict:
    made = client.post("/api/filters", json={"name": name, "query": query}, headers=account.headers)
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == f"/api/filters/{made.json()['data']['id']}"
    return made.json()["data"]


def add(client: TestClient, account: Account, title: str, **fields: Any) -> int:
    made = client.post("/api/tasks", json={"title": title, **fields}, headers=account.headers)
    assert made.status_code == 201, made.text
    return int(made.json()["data"]["id"])


def titles(client: TestClient, account: Account, path: str = "/api/tasks", **params: Any) -> list:
    got = client.get(path, params=params, headers=account.headers)
    assert got.status_code == 200, got.text
    return [task["title"] for task in got.json()["data"]]


def test_create_read_list_change_delete(client: TestClient, alice: Account) -> None:
    made = make_filter(client, alice, "Urgent", priority=["high"], status="pending")
    assert made["name"] == "Urgent"
    assert made["query"] == {"priority": ["high"], "status": "pending"}
    path = f"/api/filters/{made['id']}"
    assert client.get(path, headers=alice.headers).json()["data"] == made
    other = make_filter(client, alice, "all of them")
    listed = client.get("/api/filters", headers=alice.headers).json()
    assert [f["name"] for f in listed["data"]] == ["all of them", "Urgent"]  # by name
    assert listed["meta"] == {"count": 2}
    assert other["query"] == {}

    renamed = client.patch(path, json={"name": "Hot"}, headers=alice.headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["data"]["query"] == made["query"]  # a rename keeps the query
    changed = client.patch(path, json={"query": {"tag": ["work"]}}, headers=alice.headers)
    assert changed.json()["data"]["name"] == "Hot"
    assert changed.json()["data"]["query"] == {"tag": ["work"]}  # replaced whole
    replaced = client.put(path, json={"name": "Plain"}, headers=alice.headers)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["data"]["name"] == "Plain" and replaced.json()["data"]["query"] == {}

    assert client.delete(path, headers=alice.headers).status_code == 204
    missing = client.get(path, headers=alice.headers)
    assert missing.status_code == 404
    assert missing.json() == EXAMPLES["filter_not_found"].example()["value"]
    assert client.delete(path, headers=alice.headers).status_code == 404
    assert client.patch(path, json={"name": "x"}, headers=alice.headers).status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "done"}, "status"),
        ({"priority": ["urgent"]}, "priority"),
        ({"priority": "high"}, "priority"),  # a JSON array, as the listing repeats the key
        ({"tag": ["a"] * 11}, "tag"),  # the listing's bound on values
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "50"}, "limit"),  # a JSON integer
        ({"limit": True}, "limit"),
        ({"list_id": 0}, "list_id"),
        ({"list_id": "some"}, "list_id"),
        ({"parent_id": 2**63}, "parent_id"),
        ({"due_before": "tomorrow"}, "due_before"),
        ({"q": "x" * 201}, "q"),
        ({"q": "nul\x00byte"}, "q"),
        ({"tag": ["bad\x00tag"]}, "tag"),
        ({"overdue": "yes"}, "overdue"),
        # Every flag a strict JSON boolean (issue 61, item 8): include_total took these.
        ({"include_total": "yes"}, "include_total"),
        ({"include_total": "on"}, "include_total"),
        ({"include_total": 1}, "include_total"),
        ({"include_total": "true"}, "include_total"),
        ({"recurring": 1}, "recurring"),
        ({"sort": "random"}, "sort"),
        ({"cursor": "abc"}, "cursor"),  # a page is no part of a filter
        ({"filter": 3}, "filter"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_query_the_listing_refuses_is_refused_when_saved(
    client: TestClient, alice: Account, query: dict, field: str
) -> None:
    refused = client.post(
        "/api/filters", json={"name": "bad", "query": query}, headers=alice.headers
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert any(d["field"].startswith(f"body.query.{field}") for d in error["details"]), error
    assert client.get("/api/filters", headers=alice.headers).json()["data"] == []


def test_the_listing_refuses_the_same_values(client: TestClient, alice: Account) -> None:
    """The rules are the listing's: what the save refused, `GET /api/tasks` refuses too."""
    for params in ({"status": "done"}, {"limit": "0"}, {"q": "x" * 201}, {"sort": "random"}):
        assert client.get("/api/tasks", params=params, headers=alice.headers).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * (NAME_MAX_LENGTH + 1)},
        {"name": "two\nlines"},
        {"name": "nul\x00"},
        {"name": 7},
        {"name": None},
        {},
        {"name": "ok", "query": "status=pending"},
        {"name": "ok", "query": None},
        {"name": "ok", "id": 5},
    ],
)
def test_bad_bodies_are_422_and_change_nothing(
    client: TestClient, alice: Account, body: dict
) -> None:
    refused = client.post("/api/filters", json=body, headers=alice.headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.get("/api/filters", headers=alice.headers).json()["data"] == []


def test_bad_ids_and_patch_nulls(client: TestClient, alice: Account) -> None:
    made = make_filter(client, alice, "Mine")
    for bad in ("0", "-1", "abc", "1.0", str(2**63), "9" * 40):
        assert client.get(f"/api/filters/{bad}", headers=alice.headers).status_code == 422
        assert (
            client.get("/api/tasks", params={"filter": bad}, headers=alice.headers).status_code
            == 422
        )
    for body in ({"name": None}, {"query": None}, {"query": {"status": 1}}):
        refused = client.patch(f"/api/filters/{made['id']}", json=body, headers=alice.headers)
        assert refused.status_code == 422, refused.text
    assert client.get(f"/api/filters/{made['id']}", headers=alice.headers).json()["data"] == made


def test_another_users_filter_is_a_missing_one(
    client: TestClient, alice: Account, bob: Account
) -> None:
    mine = make_filter(client, alice, "Mine", status="pending")
    path = f"/api/filters/{mine['id']}"
    missing = client.get("/api/filters/999999", headers=bob.headers)
    for answer in (
        client.get(path, headers=bob.headers),
        client.patch(path, json={"name": "stolen"}, headers=bob.headers),
        client.put(path, json={"name": "stolen"}, headers=bob.headers),
        client.delete(path, headers=bob.headers),
        client.get("/api/tasks", params={"filter": mine["id"]}, headers=bob.headers),
    ):
        assert answer.status_code == 404
        assert answer.json() == missing.json()
    assert client.get("/api/filters", headers=bob.headers).json()["data"] == []
    assert client.get(path, headers=alice.headers).json()["data"] == mine


def test_applying_a_filter_and_overriding_its_parameters(
    client: TestClient, alice: Account
) -> None:
    add(client, alice, "high work", priority="high", tags=["work"])
    add(client, alice, "high home", priority="high", tags=["home"])
    add(client, alice, "low work", priority="low", tags=["work"])
    done = add(client, alice, "high work done", priority="high", tags=["work"])
    client.patch(f"/api/tasks/{done}/complete", headers=alice.headers)
    urgent = make_filter(client, alice, "Urgent", priority=["high"], status="pending", sort="title")
    fid = urgent["id"]
    assert titles(client, alice, filter=fid) == ["high home", "high work"]
    # A parameter sent beside it replaces the filter's own; the others stay.
    assert titles(client, alice, filter=fid, status="completed") == ["high work done"]
    assert titles(client, alice, filter=fid, priority="low") == ["low work"]
    assert titles(client, alice, filter=fid, tag="work") == ["high work"]
    assert titles(client, alice, filter=fid, order="desc") == ["high work", "high home"]
    # The twin path applies it too.
    assert titles(client, alice, f"/api/{alice.id}/tasks", filter=fid) == [
        "high home",
        "high work",
    ]
    # Its pages follow its cursor.
    first = client.get("/api/tasks", params={"filter": fid, "limit": 1}, headers=alice.headers)
    cursor = first.json()["meta"]["next_cursor"]
    second = client.get(
        "/api/tasks", params={"filter": fid, "limit": 1, "cursor": cursor}, headers=alice.headers
    )
    assert second.status_code == 200, second.text
    assert [t["title"] for t in second.json()["data"]] == ["high work"]


def test_a_changed_filter_is_applied_as_it_is_now(
    client: TestClient, alice: Account, setup_engine: Engine
) -> None:
    """Another replica may have changed or deleted it: what this process last read is only
    used while the filter still holds that query."""
    add(client, alice, "open", priority="high")
    closed = add(client, alice, "closed", priority="high")
    client.patch(f"/api/tasks/{closed}/complete", headers=alice.headers)
    fid = make_filter(client, alice, "F", status="pending")["id"]
    assert titles(client, alice, filter=fid) == ["open"]
    # Changed behind this process's back (as another replica would).
    with setup_engine.begin() as conn:
        conn.execute(
            text("UPDATE saved_filters SET query = CAST(:q AS jsonb) WHERE id = :id"),
            {"id": fid, "q": '{"status": "completed"}'},
        )
    assert titles(client, alice, filter=fid) == ["closed"]
    with setup_engine.begin() as conn:
        conn.execute(
            text("UPDATE saved_filters SET query = CAST(:q AS jsonb) WHERE id = :id"),
            {"id": fid, "q": '{"priority": ["low"]}'},
        )
    assert titles(client, alice, filter=fid) == []
    assert saved_queries.get(alice.id, fid).query == {"priority": ["low"]}  # type: ignore[union-attr]
    with setup_engine.begin() as conn:
        conn.execute(text("DELETE FROM saved_filters WHERE id = :id"), {"id": fid})
    gone = client.get("/api/tasks", params={"filter": fid}, headers=alice.headers)
    assert gone.status_code == 404
    assert gone.json() == EXAMPLES["filter_not_found"].example()["value"]


def test_a_filter_first_applied_on_a_process_makes_the_users_other_filters_known(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """A process that never read a user's filters (a replica started since) reads them all in
    the round trip one would take: the user's next filter applies in one round trip."""
    first = make_filter(client, alice, "Urgent", priority=["high"])["id"]
    second = make_filter(client, alice, "Someday", priority=["low"])["id"]
    theirs = make_filter(client, bob, "Bob's", status="pending")["id"]
    for user_id, filter_id in ((alice.id, first), (alice.id, second), (bob.id, theirs)):
        saved_queries.forget(user_id, filter_id)
    add(client, alice, "fix the leak", priority="high")

    assert titles(client, alice, filter=first) == ["fix the leak"]

    assert saved_queries.get(alice.id, second).query == {"priority": ["low"]}  # type: ignore[union-attr]
    assert saved_queries.get(bob.id, theirs) is None  # another user's: not read
    missing = client.get("/api/tasks", params={"filter": theirs}, headers=alice.headers)
    assert missing.status_code == 404
    assert missing.json() == EXAMPLES["filter_not_found"].example()["value"]


def test_a_list_the_user_loses_matches_nothing(
    client: TestClient,
    bob: Account,
    shared_list: SharedList,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    grant(shared_list, bob, "viewer")
    add(client, bob, "bob's own")
    fid = make_filter(client, bob, "Team", list_id=shared_list.list_id)["id"]
    assert titles(client, bob, filter=fid) == ["Shared task"]
    grant(shared_list, bob, None)  # removed from the list
    assert titles(client, bob, filter=fid) == []
    # The filter stays, unchanged; without its list it is the rest of the query.
    assert client.get(f"/api/filters/{fid}", headers=bob.headers).status_code == 200
    assert titles(client, bob, filter=fid, list_id="none") == ["bob's own"]


def test_deleting_the_account_deletes_its_filters(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    make_filter(client, alice, "Mine")
    assert client.delete("/api/auth/me", headers=alice.headers).status_code == 204
    assert count_rows(db_engine, "saved_filters") == 0


def test_an_empty_pages_second_read_counts_a_changed_filter_as_a_row(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """An empty first page reads the feed position again with proof that the page is still
    empty (`listing_still_empty`); a filter changed in between must not pass for that proof:
    the page's query, applied with the query the filter no longer holds, answers "a row
    appeared" (so the page is read again and says the filter changed)."""
    fid = make_filter(client, alice, "F", status="pending")["id"]
    shape_of = lambda stored: listing_query(tags=["none-has-it"], saved=(fid, stored, None))
    current, stale = shape_of({"status": "pending"}), shape_of({"status": "completed"})

    def appeared(query: TaskListQuery) -> bool:
        statement = listing_still_empty(query.shape(feed_position=True))
        with db_engine.connect() as conn:
            service = TaskService(Sender(conn, ""), alice.id)  # type: ignore[arg-type]
            _, found = service._read(statement, **query.values()).one()
        return bool(found)

    assert appeared(current) is False
    assert appeared(stale) is True


def test_a_filter_named_by_an_agent_is_the_one_that_holds_the_name_now(
    client: TestClient, alice: Account, setup_engine: Engine
) -> None:
    """MCP `list_tasks` by a filter's name uses the name as this process last read it, and the
    page holds only while the name still names that filter: renamed behind this process's back
    (another replica) and the name given to another filter, the other filter applies."""
    add(client, alice, "fix the leak", priority="high")
    add(client, alice, "paint", priority="low")
    urgent = make_filter(client, alice, "Urgent", priority=["high"])["id"]

    def by_name(name: str) -> Any:
        result = call_tool_rpc(client, "/mcp", alice.token, "list_tasks", {"filter": name})
        return result["structuredContent"] if not result["isError"] else result

    assert [t["title"] for t in by_name("urgent")["tasks"]] == ["fix the leak"]
    with setup_engine.begin() as conn:
        conn.execute(
            text("UPDATE saved_filters SET name = 'Old', name_key = 'old' WHERE id = :id"),
            {"id": urgent},
        )
        conn.execute(
            text(
                "INSERT INTO saved_filters (user_id, name, name_key, query) "
                "VALUES (:user, 'Urgent', 'urgent', CAST(:q AS jsonb))"
            ),
            {"user": alice.id, "q": '{"priority": ["low"]}'},
        )
    assert [t["title"] for t in by_name("Urgent")["tasks"]] == ["paint"]
    assert [t["title"] for t in by_name("old")["tasks"]] == ["fix the leak"]
    with setup_engine.begin() as conn:
        conn.execute(text("DELETE FROM saved_filters WHERE name_key = 'urgent'"))
    gone = call_tool_rpc(client, "/mcp", alice.token, "list_tasks", {"filter": "urgent"})
    assert gone["isError"] is True and "Filter not found" in gone["content"][0]["text"]
