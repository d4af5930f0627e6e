"""Reminders are private to the user who set them (issue 39, migration 0034): in a shared list a
task's `reminders` are the caller's own; a member's fire for that member; none reaches another
user through the task, the feed, the activity, a listing's search or MCP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.services.delivery.reminders import fire_due
from tests.chat.conftest import chat, chat_app, model  # noqa: F401  (the chat fixtures)
from tests.chat.fake_model import FakeModel, call, say
from tests.chat.test_chat import send
from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc
from tests.sharing.conftest import SharedList
from tests.sharing.helpers import add_member, drain_feed, get, make_list

Grant = Callable[[SharedList, Account, str | None], None]

DUE = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
OWNERS = [{"minutes_before_due": 60}]
MEMBERS = [{"minutes_before_due": 15}]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def task(client: TestClient, account: Account, task_id: int) -> dict[str, Any]:
    data: dict[str, Any] = get(client, account, f"/api/tasks/{task_id}")["data"]
    return data


def patch(client: TestClient, account: Account, task_id: int, **body: Any) -> dict[str, Any]:
    answer = client.patch(f"/api/tasks/{task_id}", json=body, headers=account.headers)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def schedule(engine: Engine, task_id: int) -> set[tuple[str | None, datetime]]:
    """Who each unsent reminder of the task is for (NULL: its owner), and when."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT recipient_id, remind_at FROM task_reminders "
                "WHERE task_id = :t AND fired_at IS NULL"
            ),
            {"t": task_id},
        ).all()
    return {(row.recipient_id, row.remind_at) for row in rows}


def member_rows(engine: Engine) -> set[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT task_id, member_id FROM task_member_reminders")).all()
    return {(row.task_id, row.member_id) for row in rows}


def stored(engine: Engine, task_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT reminders FROM tasks WHERE id = :t"), {"t": task_id}
        ).scalar_one()


def setup(client: TestClient, shared: SharedList, bob: Account, grant: Grant) -> int:
    """Alice's shared task due at DUE with her reminders; bob an editor with his own."""
    grant(shared, bob, "editor")
    patch(client, shared.owner, shared.task_id, due_date=iso(DUE), reminders=OWNERS)
    mine = patch(client, bob, shared.task_id, reminders=MEMBERS)
    assert mine["reminders"] == MEMBERS
    return shared.task_id


def test_a_members_reminders_are_its_own_and_fire_for_it(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    register: Callable[..., Account],
    grant: Grant,
    db_engine: Engine,
    settings: Settings,
) -> None:
    alice, carol = shared_list.owner, register("carol@example.com")
    task_id = setup(client, shared_list, bob, grant)
    grant(shared_list, carol, "viewer")
    assert task(client, alice, task_id)["reminders"] == OWNERS
    assert task(client, bob, task_id)["reminders"] == MEMBERS
    assert task(client, carol, task_id)["reminders"] == []
    assert stored(db_engine, task_id) == OWNERS
    # A viewer may not set any (PATCH needs an editor), as before.
    refused = client.patch(
        f"/api/tasks/{task_id}", json={"reminders": MEMBERS}, headers=carol.headers
    )
    assert refused.status_code == 403
    # PUT merges as PATCH does: bob's own again. The same instant for two users: two reminders.
    put = client.put(f"/api/tasks/{task_id}", json={"reminders": OWNERS}, headers=bob.headers)
    assert put.status_code == 200 and put.json()["data"]["reminders"] == OWNERS, put.text
    assert task(client, alice, task_id)["reminders"] == OWNERS
    assert schedule(db_engine, task_id) == {
        (None, DUE - timedelta(minutes=60)),
        (bob.id, DUE - timedelta(minutes=60)),
    }
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_reminders SET remind_at = clock_timestamp()"))
    assert fire_due(db_engine, settings).sent == 2
    with db_engine.connect() as conn:
        sent = conn.execute(
            text("SELECT user_id, task FROM task_events WHERE type = 'reminder'")
        ).all()
    assert sorted(row.user_id for row in sent) == sorted([alice.id, bob.id])
    assert {row.task["user_id"] for row in sent} == {alice.id, bob.id}
    # Cleared: bob's row goes, alice's stay.
    assert patch(client, bob, task_id, reminders=[])["reminders"] == []
    assert member_rows(db_engine) == set()
    assert task(client, alice, task_id)["reminders"] == OWNERS


def test_a_member_creates_a_task_with_its_reminders(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant, db_engine: Engine
) -> None:
    grant(shared_list, bob, "editor")
    made = client.post(
        "/api/tasks",
        json={
            "title": "Bob's",
            "list_id": shared_list.list_id,
            "due_date": iso(DUE),
            "reminders": MEMBERS,
        },
        headers=bob.headers,
    )
    assert made.status_code == 201, made.text
    created = made.json()["data"]
    assert created["reminders"] == MEMBERS
    assert created["user_id"] == shared_list.owner.id
    assert task(client, shared_list.owner, created["id"])["reminders"] == []
    assert task(client, bob, created["id"])["reminders"] == MEMBERS
    assert stored(db_engine, created["id"]) == []
    assert schedule(db_engine, created["id"]) == {(bob.id, DUE - timedelta(minutes=15))}


def test_completion_reopening_and_a_new_due_date_move_each_users_reminders(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant, db_engine: Engine
) -> None:
    task_id = setup(client, shared_list, bob, grant)
    both = {(None, DUE - timedelta(minutes=60)), (bob.id, DUE - timedelta(minutes=15))}
    assert schedule(db_engine, task_id) == both
    patch(client, shared_list.owner, task_id, completed=True)
    assert schedule(db_engine, task_id) == set()
    patch(client, bob, task_id, completed=False)
    assert schedule(db_engine, task_id) == both
    later = DUE + timedelta(days=1)
    patch(client, bob, task_id, due_date=iso(later))
    assert schedule(db_engine, task_id) == {
        (None, later - timedelta(minutes=60)),
        (bob.id, later - timedelta(minutes=15)),
    }
    assert task(client, shared_list.owner, task_id)["reminders"] == OWNERS
    assert task(client, bob, task_id)["reminders"] == MEMBERS


def test_losing_the_list_or_the_task_leaving_it_drops_a_members_reminders(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    register: Callable[..., Account],
    grant: Grant,
    db_engine: Engine,
) -> None:
    alice, carol = shared_list.owner, register("carol@example.com")
    task_id = setup(client, shared_list, bob, grant)
    grant(shared_list, carol, "editor")
    patch(client, carol, task_id, reminders=[{"minutes_before_due": 5}])
    other = client.post(
        "/api/tasks",
        json={"title": "Other", "list_id": shared_list.list_id},
        headers=alice.headers,
    ).json()["data"]["id"]
    patch(client, carol, other, due_date=iso(DUE), reminders=MEMBERS)
    assert member_rows(db_engine) == {(task_id, bob.id), (task_id, carol.id), (other, carol.id)}
    # Bob leaves: his rows and his schedule go in that transaction.
    left = client.delete(f"/api/lists/{shared_list.list_id}/members/{bob.id}", headers=bob.headers)
    assert left.status_code == 204, left.text
    assert member_rows(db_engine) == {(task_id, carol.id), (other, carol.id)}
    assert all(recipient != bob.id for recipient, _ in schedule(db_engine, task_id))
    # A task moved out of the shared list keeps only its owner's.
    patch(client, alice, other, list_id=None)
    assert member_rows(db_engine) == {(task_id, carol.id)}
    assert schedule(db_engine, other) == set()
    # Carol removed by the owner.
    removed = client.delete(
        f"/api/lists/{shared_list.list_id}/members/{carol.id}", headers=alice.headers
    )
    assert removed.status_code == 204, removed.text
    assert member_rows(db_engine) == set()
    assert schedule(db_engine, task_id) == {(None, DUE - timedelta(minutes=60))}


def test_a_transfer_keeps_each_owners_reminders_their_own(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant, db_engine: Engine
) -> None:
    alice = shared_list.owner
    task_id = setup(client, shared_list, bob, grant)
    alice_cursor = drain_feed(client, alice)[1]
    bob_cursor = drain_feed(client, bob)[1]
    moved = client.post(
        f"/api/lists/{shared_list.list_id}/transfer",
        json={"user_id": bob.id},
        headers=alice.headers,
    )
    assert moved.status_code == 200, moved.text
    assert task(client, bob, task_id)["reminders"] == MEMBERS
    assert task(client, alice, task_id)["reminders"] == OWNERS
    assert stored(db_engine, task_id) == MEMBERS
    assert member_rows(db_engine) == {(task_id, alice.id)}
    assert schedule(db_engine, task_id) == {
        (None, DUE - timedelta(minutes=15)),
        (alice.id, DUE - timedelta(minutes=60)),
    }
    # Neither reads the other's through the feed the transfer wrote.
    for account, cursor, theirs in ((alice, alice_cursor, MEMBERS), (bob, bob_cursor, OWNERS)):
        seen = json.dumps(drain_feed(client, account, cursor)[0])
        assert json.dumps(theirs)[1:-1] not in seen, (account.email, seen)


def test_an_account_handover_makes_the_heirs_reminders_the_tasks(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant, db_engine: Engine
) -> None:
    task_id = setup(client, shared_list, bob, grant)
    assert client.delete("/api/auth/me", headers=shared_list.owner.headers).status_code == 204
    assert task(client, bob, task_id)["reminders"] == MEMBERS
    assert stored(db_engine, task_id) == MEMBERS
    assert member_rows(db_engine) == set()
    assert schedule(db_engine, task_id) == {(None, DUE - timedelta(minutes=15))}


def test_a_series_next_occurrence_carries_each_users_reminders(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant, db_engine: Engine
) -> None:
    alice = shared_list.owner
    grant(shared_list, bob, "editor")
    at = DUE - timedelta(hours=5)
    made = client.post(
        "/api/tasks",
        json={
            "title": "Daily",
            "list_id": shared_list.list_id,
            "due_date": iso(DUE),
            "recurrence": "FREQ=DAILY",
            "reminders": OWNERS,
        },
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    first = made.json()["data"]["id"]
    patch(client, bob, first, reminders=[{"at": iso(at)}])
    # Completed by the member, then by the owner: each user's reminders move a day each time.
    second = patch(client, bob, first, completed=True)
    assert second["completed"] is True
    listed = get(client, bob, "/api/tasks", list_id=shared_list.list_id, status="pending")
    [nxt] = [t for t in listed["data"] if t["previous_task_id"] == first]
    assert nxt["user_id"] == alice.id
    assert nxt["reminders"] == [{"at": iso(at + timedelta(days=1))}]
    assert task(client, alice, nxt["id"])["reminders"] == OWNERS
    patch(client, alice, nxt["id"], completed=True)
    listed = get(client, bob, "/api/tasks", list_id=shared_list.list_id, status="pending")
    [third] = [t for t in listed["data"] if t["previous_task_id"] == nxt["id"]]
    assert third["reminders"] == [{"at": iso(at + timedelta(days=2))}]
    assert task(client, alice, third["id"])["reminders"] == OWNERS


def test_no_user_reads_anothers_reminders_anywhere(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    """The task, a listing and its search, the change feed, the activity and MCP: alice's
    reminders (60 minutes) never reach bob, bob's (15) never reach alice."""
    alice = shared_list.owner
    grant(shared_list, bob, "editor")
    alice_cursor = drain_feed(client, alice)[1]
    bob_cursor = drain_feed(client, bob)[1]
    setup(client, shared_list, bob, grant)
    patch(client, alice, shared_list.task_id, title="Shared task, renamed")
    for account, theirs, cursor in ((alice, 15, alice_cursor), (bob, 60, bob_cursor)):
        seen = [
            task(client, account, shared_list.task_id),
            get(client, account, "/api/tasks", q="renamed"),
            get(client, account, "/api/tasks", list_id=shared_list.list_id),
            drain_feed(client, account, cursor)[0],
            get(client, account, "/api/activity"),
            get(client, account, f"/api/lists/{shared_list.list_id}/activity"),
            _mcp_task(client, account, shared_list.task_id),
        ]
        text_seen = json.dumps(seen)
        assert f'"minutes_before_due": {theirs}' not in text_seen, (account.email, text_seen)
    # The feed still shows each its own.
    assert f'"minutes_before_due": {15}' in json.dumps(drain_feed(client, bob, bob_cursor)[0])


def test_a_listing_shows_each_caller_its_own_reminders(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    """A listing's two arms each read one side (issue 49): the owner's own arm the task's
    column, the member's arm the member's row; each caller sees its own, not none."""
    alice = shared_list.owner
    task_id = setup(client, shared_list, bob, grant)
    for account, own in ((alice, OWNERS), (bob, MEMBERS)):
        for query in ({}, {"list_id": shared_list.list_id}):
            listed = get(client, account, "/api/tasks", **query)["data"]
            [seen] = [t for t in listed if t["id"] == task_id]
            assert seen["reminders"] == own, (account.email, query, seen["reminders"])


def _mcp_task(client: TestClient, account: Account, task_id: int) -> Any:
    """The task as the MCP tool `get_task` returns it (raw JSON-RPC on the app's /mcp)."""
    result = call_tool_rpc(client, "/mcp", account.token, "get_task", {"task_id": task_id})
    assert not result.get("isError"), result
    return result


def test_a_new_member_is_granted_the_tasks_without_the_owners_reminders(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    """`access.granted` (the joining member's feed) holds the member's own reminders: none."""
    alice = shared_list.owner
    patch(client, alice, shared_list.task_id, due_date=iso(DUE), reminders=OWNERS)
    cursor = drain_feed(client, bob)[1]
    grant(shared_list, bob, "editor")
    granted = [c for c in drain_feed(client, bob, cursor)[0] if c["task_id"] == shared_list.task_id]
    assert granted and all(c["task"]["reminders"] == [] for c in granted), granted


def _changes(engine: Engine, task_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM task_events WHERE task_id = :t AND type = 'updated'"),
                {"t": task_id},
            ).scalar_one()
        )


def test_a_member_moving_a_task_with_its_reminders_sets_only_its_own(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant, db_engine: Engine
) -> None:
    """A PATCH that moves a task to another list writes its subtree in the same statement: the
    member's reminders go on the task it names only, in the move's message (the schedule a
    reminder fires from follows at the commit); the subtree's and the owner's stay, and
    neither user's reaches the other through the feed or the activity. A move refused
    writes none; a move with `[]` clears the member's."""
    alice = shared_list.owner
    grant(shared_list, bob, "editor")
    second = make_list(client, alice, "Second")
    add_member(db_engine, alice, second, bob, "editor")
    patch(client, alice, shared_list.task_id, due_date=iso(DUE), reminders=OWNERS)
    child = client.post(
        "/api/tasks",
        json={"title": "Child", "parent_id": shared_list.task_id, "due_date": iso(DUE),
              "reminders": OWNERS},
        headers=alice.headers,
    ).json()["data"]["id"]  # fmt: skip
    alice_cursor = drain_feed(client, alice)[1]
    # Refused by the move itself (a list bob only views; the message commits all the same):
    # no row of bob's.
    viewed = make_list(client, alice, "Viewed")
    add_member(db_engine, alice, viewed, bob, "viewer")
    refused = client.patch(
        f"/api/tasks/{shared_list.task_id}",
        json={"list_id": viewed, "reminders": MEMBERS, "due_date": iso(DUE)},
        headers=bob.headers,
    )
    assert refused.status_code == 403, refused.text
    assert member_rows(db_engine) == set()
    before = _changes(db_engine, shared_list.task_id)
    moved = patch(
        client, bob, shared_list.task_id, list_id=second, reminders=MEMBERS, due_date=iso(DUE)
    )
    assert (moved["list_id"], moved["reminders"]) == (second, MEMBERS)
    # One write of the task (one change recorded), as a member's PATCH without a move.
    assert _changes(db_engine, shared_list.task_id) == before + 1
    assert task(client, bob, shared_list.task_id)["reminders"] == MEMBERS
    assert task(client, alice, shared_list.task_id)["reminders"] == OWNERS
    assert task(client, bob, child)["list_id"] == second
    assert task(client, bob, child)["reminders"] == []
    assert task(client, alice, child)["reminders"] == OWNERS
    assert member_rows(db_engine) == {(shared_list.task_id, bob.id)}
    assert schedule(db_engine, shared_list.task_id) == {
        (None, DUE - timedelta(minutes=60)),
        (bob.id, DUE - timedelta(minutes=15)),
    }
    assert schedule(db_engine, child) == {(None, DUE - timedelta(minutes=60))}
    seen = json.dumps(
        [
            drain_feed(client, alice, alice_cursor)[0],
            get(client, alice, "/api/activity"),
            get(client, alice, f"/api/lists/{second}/activity"),
        ]
    )
    assert '"minutes_before_due": 15' not in seen, seen
    # Back, clearing bob's: his row and his schedule go, alice's stay.
    back = patch(client, bob, shared_list.task_id, list_id=shared_list.list_id, reminders=[])
    assert (back["list_id"], back["reminders"]) == (shared_list.list_id, [])
    assert member_rows(db_engine) == set()
    assert schedule(db_engine, shared_list.task_id) == {(None, DUE - timedelta(minutes=60))}
    assert task(client, alice, shared_list.task_id)["reminders"] == OWNERS


def test_chat_reads_and_sets_the_callers_own(
    chat: TestClient,  # noqa: F811  (the chat fixtures, imported above)
    model: FakeModel,  # noqa: F811
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Grant,
) -> None:
    """The agent's tools are the MCP tools over the same service: bob's agent sets bob's
    reminders and reads no one else's."""
    alice, task_id = shared_list.owner, shared_list.task_id
    grant(shared_list, bob, "editor")
    patch(client, alice, task_id, due_date=iso(DUE), reminders=OWNERS)
    model.script(
        call(
            "update_task",
            {"task_id": task_id, "reminders": MEMBERS},
            ("get_task", {"task_id": task_id}),
            ("list_tasks", {}),
        ),
        say("Done."),
    )
    answer = send(chat, bob, "remind me a quarter of an hour before")
    assert [c["outcome"] for c in answer["tool_calls"]] == ["ok", "ok", "ok"], answer
    assert '"minutes_before_due": 60' not in json.dumps(answer)
    assert '"minutes_before_due": 15' in json.dumps(answer)
    assert task(client, bob, task_id)["reminders"] == MEMBERS
    assert task(client, alice, task_id)["reminders"] == OWNERS


def test_a_members_agent_moving_a_task_sets_its_own_at_the_commit(
    chat: TestClient,  # noqa: F811  (the chat fixtures, imported above)
    model: FakeModel,  # noqa: F811
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Grant,
    db_engine: Engine,
) -> None:
    """A chat turn holds its tool's commit (its record commits with the write): the move
    cannot commit in its message, so the member's reminders ride with the COMMIT, from the
    stored task (`own_reminders`' second form): replacing its row, then clearing it."""
    setup(client, shared_list, bob, grant)
    alice = shared_list.owner
    task_id = shared_list.task_id
    second = make_list(client, alice, "Second")
    add_member(db_engine, alice, second, bob, "editor")
    later = [{"minutes_before_due": 5}]
    for list_id, reminders in ((second, later), (shared_list.list_id, [])):
        model.script(
            call(
                "update_task",
                {"task_id": task_id, "list_id": list_id, "reminders": reminders},
            ),
            say("Done."),
        )
        answer = send(chat, bob, "move it")
        assert [c["outcome"] for c in answer["tool_calls"]] == ["ok"], answer
        mine = task(client, bob, task_id)
        assert (mine["list_id"], mine["reminders"]) == (list_id, reminders)
        assert task(client, alice, task_id)["reminders"] == OWNERS
        expected = {(None, DUE - timedelta(minutes=60))}
        if reminders:
            expected.add((bob.id, DUE - timedelta(minutes=5)))
        assert schedule(db_engine, task_id) == expected
    assert member_rows(db_engine) == set()


def test_a_member_restoring_or_undoing_a_deletion_is_not_shown_the_owners_reminders(
    client: TestClient, shared_list: SharedList, bob: Account, grant: Grant
) -> None:
    """The trash's restore (REST, MCP) and a deletion's undo answer with the restored task: a
    member's answer carries its own reminders, restored with the task, never the owner's
    (`task_trash_restore` returns the caller's own for a member)."""
    task_id = setup(client, shared_list, bob, grant)
    alice = shared_list.owner
    for restore in ("rest", "mcp", "undo"):
        gone = client.delete(f"/api/tasks/{task_id}", headers=alice.headers)
        assert gone.status_code == 204, gone.text
        if restore == "rest":
            answer = client.post(f"/api/trash/{task_id}/restore", headers=bob.headers)
            assert answer.status_code == 200, answer.text
            shown = answer.json()["data"]["reminders"]
        elif restore == "mcp":
            result = call_tool_rpc(client, "/mcp", bob.token, "restore_task", {"trash_id": task_id})
            assert result["isError"] is False, result
            shown = task(client, bob, task_id)["reminders"]
            assert "minutes_before_due" not in json.dumps(result)
        else:
            entry = next(
                item
                for item in get(client, bob, "/api/activity", limit=50)["data"]
                if item["object_id"] == task_id and item["event"] == "task.deleted"
            )
            grant(shared_list, bob, "admin")  # another member's deletion: admin+
            answer = client.post(f"/api/activity/{entry['id']}/undo", headers=bob.headers)
            assert answer.status_code == 200, answer.text
            shown = answer.json()["data"]["reminders"]
        assert shown == MEMBERS, restore
        assert task(client, alice, task_id)["reminders"] == OWNERS
        assert task(client, bob, task_id)["reminders"] == MEMBERS
