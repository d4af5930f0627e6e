"""Undo's guards (issue 53, "Undo"): a later change of the same field makes it a 409 with the
current values and nothing changed; who may undo what in a shared list (its author, or an
admin or the owner for another's change; 404 for what the caller cannot see); If-Match,
Idempotency-Key and bad ids. Over real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.sharing.conftest import SharedList
from tests.undo.helpers import entries, last_entry, stored, undo


def _rename(client: TestClient, account: Account, task_id: int, title: str) -> None:
    response = client.patch(f"/api/tasks/{task_id}", json={"title": title}, headers=account.headers)
    assert response.status_code == 200, response.text


def _all_tasks(db_engine: Engine) -> list[dict[str, object]]:
    with db_engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM tasks ORDER BY id")).all()
    return [dict(row._mapping) for row in rows]


def test_a_reorder_whose_old_place_was_taken_since_is_a_409_saying_so(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """S2 moved before S1, then S3 added last under the same parent takes S2's old position:
    the undo cannot put S2 back there (sibling positions are unique), and says why."""
    h = alice.headers
    parent = client.post("/api/tasks", json={"title": "P"}, headers=h).json()["data"]["id"]
    first, second = (
        client.post("/api/tasks", json={"title": t, "parent_id": parent}, headers=h).json()["data"]
        for t in ("S1", "S2")
    )
    moved = client.post(
        f"/api/tasks/{second['id']}/move", json={"before_id": first["id"]}, headers=h
    )
    assert moved.status_code == 200, moved.text
    entry = last_entry(client, alice, second["id"], "task.updated")
    third = client.post("/api/tasks", json={"title": "S3", "parent_id": parent}, headers=h)
    assert third.json()["data"]["position"] == second["position"]
    before, count = _all_tasks(db_engine), entries(db_engine)

    response = undo(client, alice, entry["id"])

    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["message"].startswith("Another task took this task's old place")
    assert error["details"] == [
        {
            "field": "position",
            "message": "another task holds this place since",
            "type": "conflict",
            "current": moved.json()["data"]["position"],
            "entry": second["position"],
        }
    ]
    assert _all_tasks(db_engine) == before
    assert entries(db_engine) == count


def test_a_later_change_of_the_same_field_makes_it_a_409_with_nothing_changed(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    made = client.post("/api/tasks", json={"title": "Draft"}, headers=alice.headers)
    task_id = made.json()["data"]["id"]
    _rename(client, alice, task_id, "Second")
    entry = last_entry(client, alice, task_id, "task.updated")
    _rename(client, alice, task_id, "Third")
    before, count = _all_tasks(db_engine), entries(db_engine)

    response = undo(client, alice, entry["id"])

    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "CONFLICT"
    assert error["details"] == [
        {
            "field": "title",
            "message": "changed since this entry",
            "type": "conflict",
            "current": "Third",
            "entry": "Second",
        }
    ]
    assert _all_tasks(db_engine) == before
    assert entries(db_engine) == count


def test_a_later_change_of_another_field_does_not_stop_it(
    client: TestClient, alice: Account
) -> None:
    made = client.post("/api/tasks", json={"title": "Draft"}, headers=alice.headers)
    task_id = made.json()["data"]["id"]
    _rename(client, alice, task_id, "Second")
    entry = last_entry(client, alice, task_id, "task.updated")
    patched = client.patch(
        f"/api/tasks/{task_id}", json={"priority": "high"}, headers=alice.headers
    )
    assert patched.status_code == 200

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    assert (response.json()["data"]["title"], response.json()["data"]["priority"]) == (
        "Draft",
        "high",
    )
    # Undone once, it is the later change now: a second undo of it is a 409.
    again = undo(client, alice, entry["id"])
    assert again.status_code == 409, again.text


def test_an_admin_undoes_a_members_change_in_a_shared_list(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    carol: Account,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    grant(shared_list, bob, "editor")
    grant(shared_list, carol, "admin")
    _rename(client, bob, shared_list.task_id, "Bob's title")
    entry = last_entry(client, bob, shared_list.task_id, "task.updated")
    assert entry["actor_id"] == bob.id

    response = undo(client, carol, entry["id"])

    assert response.status_code == 200, response.text
    assert response.json()["data"]["title"] == "Shared task"
    recorded = last_entry(client, shared_list.owner, shared_list.task_id, "task.updated")
    assert recorded["actor_id"] == carol.id


def test_the_owner_undoes_a_members_change_and_an_editor_its_own(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    grant(shared_list, bob, "editor")
    _rename(client, bob, shared_list.task_id, "First")
    first = last_entry(client, bob, shared_list.task_id, "task.updated")
    assert undo(client, bob, first["id"]).status_code == 200
    _rename(client, bob, shared_list.task_id, "Again")
    again = last_entry(client, bob, shared_list.task_id, "task.updated")
    response = undo(client, shared_list.owner, again["id"])
    assert response.status_code == 200, response.text
    assert response.json()["data"]["title"] == "Shared task"


@pytest.mark.parametrize("role", ["editor", "commenter", "viewer"])
def test_a_member_below_admin_may_not_undo_anothers_change(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    carol: Account,
    grant: Callable[[SharedList, Account, str | None], None],
    db_engine: Engine,
    role: str,
) -> None:
    grant(shared_list, bob, "editor")
    grant(shared_list, carol, role)
    _rename(client, bob, shared_list.task_id, "Bob's title")
    entry = last_entry(client, bob, shared_list.task_id, "task.updated")
    before = stored(db_engine, shared_list.task_id)

    response = undo(client, carol, entry["id"])

    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert stored(db_engine, shared_list.task_id) == before


def test_a_viewer_may_not_undo_even_its_own_change_once_demoted(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    grant(shared_list, bob, "editor")
    _rename(client, bob, shared_list.task_id, "Bob's title")
    entry = last_entry(client, bob, shared_list.task_id, "task.updated")
    grant(shared_list, bob, "viewer")

    response = undo(client, bob, entry["id"])

    assert response.status_code == 403, response.text


def test_a_stranger_and_a_removed_member_get_a_missing_entrys_404(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    carol: Account,
    grant: Callable[[SharedList, Account, str | None], None],
    db_engine: Engine,
) -> None:
    grant(shared_list, bob, "admin")
    _rename(client, shared_list.owner, shared_list.task_id, "Owner's title")
    entry = last_entry(client, shared_list.owner, shared_list.task_id, "task.updated")
    private = client.post("/api/tasks", json={"title": "Mine"}, headers=shared_list.owner.headers)
    _rename(client, shared_list.owner, private.json()["data"]["id"], "Mine, renamed")
    private_entry = last_entry(
        client, shared_list.owner, private.json()["data"]["id"], "task.updated"
    )
    grant(shared_list, bob, None)
    with db_engine.connect() as conn:
        missing = conn.execute(text("SELECT max(id) + 1000 FROM task_events")).scalar_one()
    expected = undo(client, carol, missing)
    assert expected.status_code == 404

    for caller, entry_id in ((carol, entry["id"]), (bob, entry["id"]), (bob, private_entry["id"])):
        response = undo(client, caller, entry_id)
        assert response.status_code == 404, response.text
        assert response.content == expected.content


def test_a_task_moved_out_of_reach_answers_as_a_deleted_one_saying_both(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    """An editor's change, whose task the owner then moved to a private list or deleted: the
    undo answers the same bytes either way (nothing tells the two apart), and the message
    names both, not "it was deleted" (issue 61, item 8)."""
    owner = shared_list.owner
    grant(shared_list, bob, "editor")
    private_list = client.post("/api/lists", json={"name": "Private"}, headers=owner.headers)
    assert private_list.status_code == 201, private_list.text
    made = client.post(
        "/api/tasks",
        json={"title": "Deleted", "list_id": shared_list.list_id},
        headers=owner.headers,
    )
    deleted = made.json()["data"]["id"]
    moved = shared_list.task_id
    _rename(client, bob, moved, "Bob's title")
    _rename(client, bob, deleted, "Bob's too")
    moved_entry = last_entry(client, bob, moved, "task.updated")
    deleted_entry = last_entry(client, bob, deleted, "task.updated")
    away = client.patch(
        f"/api/tasks/{moved}",
        json={"list_id": private_list.json()["data"]["id"]},
        headers=owner.headers,
    )
    assert away.status_code == 200, away.text
    assert client.delete(f"/api/tasks/{deleted}", headers=owner.headers).status_code == 204

    out_of_reach = undo(client, bob, moved_entry["id"])
    gone = undo(client, bob, deleted_entry["id"])

    assert out_of_reach.status_code == gone.status_code == 409, out_of_reach.text
    assert out_of_reach.content == gone.content
    assert out_of_reach.json()["error"]["message"] == (
        "The task no longer exists or is out of your reach"
    )


def test_if_match_names_the_tasks_etag(client: TestClient, alice: Account) -> None:
    made = client.post("/api/tasks", json={"title": "Draft"}, headers=alice.headers)
    task_id = made.json()["data"]["id"]
    _rename(client, alice, task_id, "Second")
    entry = last_entry(client, alice, task_id, "task.updated")
    etag = client.get(f"/api/tasks/{task_id}", headers=alice.headers).headers["ETag"]

    stale = undo(client, alice, entry["id"], **{"If-Match": f'"{task_id}-1"'})
    assert stale.status_code == 412, stale.text
    other = undo(client, alice, entry["id"], **{"If-Match": f'"{task_id + 1}-2"'})
    assert other.status_code == 412, other.text
    response = undo(client, alice, entry["id"], **{"If-Match": etag})
    assert response.status_code == 200, response.text


def test_an_idempotency_key_replays_the_first_answer(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    made = client.post("/api/tasks", json={"title": "Draft"}, headers=alice.headers)
    task_id = made.json()["data"]["id"]
    _rename(client, alice, task_id, "Second")
    entry = last_entry(client, alice, task_id, "task.updated")
    key = {"Idempotency-Key": "undo-1"}

    first = undo(client, alice, entry["id"], **key)
    count = entries(db_engine)
    replay = undo(client, alice, entry["id"], **key)

    assert first.status_code == replay.status_code == 200, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == first.content
    assert entries(db_engine) == count  # no second write
    _rename(client, alice, task_id, "Third")
    other = last_entry(client, alice, task_id, "task.updated")
    mismatch = undo(client, alice, other["id"], **key)
    assert mismatch.status_code == 422, mismatch.text
    assert mismatch.json()["error"]["code"] == "IDEMPOTENCY_KEY_MISMATCH"


BAD_IDS = ["0", "-1", "abc", "1.5", "1e3", "%00", "1%002", "99999999999999999999", "+1", "5_0"]


@pytest.mark.parametrize("entry_id", BAD_IDS)
def test_bad_ids_are_a_422_and_change_nothing(
    client: TestClient, alice: Account, db_engine: Engine, entry_id: str
) -> None:
    client.post("/api/tasks", json={"title": "Keep"}, headers=alice.headers)
    count = entries(db_engine)
    response = undo(client, alice, entry_id)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert entries(db_engine) == count


def test_a_body_is_refused_and_no_token_is_a_401(client: TestClient, alice: Account) -> None:
    made = client.post("/api/tasks", json={"title": "Draft"}, headers=alice.headers)
    _rename(client, alice, made.json()["data"]["id"], "Second")
    entry = last_entry(client, alice, made.json()["data"]["id"], "task.updated")
    assert client.post(f"/api/activity/{entry['id']}/undo").status_code == 401
    bad = client.post(f"/api/activity/{entry['id']}/undo", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_an_admin_moves_a_members_move_back_in_a_shared_list(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    carol: Account,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    grant(shared_list, bob, "editor")
    grant(shared_list, carol, "admin")
    owner = shared_list.owner
    body = {"title": "Parent", "list_id": shared_list.list_id}
    parent = client.post("/api/tasks", json=body, headers=owner.headers).json()["data"]["id"]
    moved = client.post(
        f"/api/tasks/{shared_list.task_id}/move", json={"parent_id": parent}, headers=bob.headers
    )
    assert moved.status_code == 200, moved.text
    entry = last_entry(client, bob, shared_list.task_id, "task.updated")

    assert undo(client, owner, entry["id"] + 10_000).status_code == 404
    response = undo(client, carol, entry["id"])

    assert response.status_code == 200, response.text
    assert response.json()["data"]["parent_id"] is None
    assert response.json()["data"]["list_id"] == shared_list.list_id


def test_another_members_deletion_is_undone_by_an_admin_not_an_editor(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    carol: Account,
    grant: Callable[[SharedList, Account, str | None], None],
    db_engine: Engine,
) -> None:
    grant(shared_list, bob, "editor")
    grant(shared_list, carol, "editor")
    gone = client.delete(f"/api/tasks/{shared_list.task_id}", headers=bob.headers)
    assert gone.status_code == 204, gone.text
    entry = last_entry(client, bob, shared_list.task_id, "task.deleted")

    refused = undo(client, carol, entry["id"])

    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "FORBIDDEN"
    assert stored(db_engine, shared_list.task_id) is None
    grant(shared_list, carol, "admin")
    restored = undo(client, carol, entry["id"])
    assert restored.status_code == 200, restored.text
    assert stored(db_engine, shared_list.task_id) is not None


def _reminders(db_engine: Engine, task_id: int) -> tuple[Any, list[tuple[Any, ...]], list[Any]]:
    """The task's own reminders, its members' rows, and the reminders scheduled for it."""
    with db_engine.connect() as conn:
        own = conn.scalar(text("SELECT reminders FROM tasks WHERE id = :id"), {"id": task_id})
        members = conn.execute(
            text(
                "SELECT member_id, reminders FROM task_member_reminders WHERE task_id = :id "
                "ORDER BY member_id"
            ),
            {"id": task_id},
        ).all()
        scheduled = conn.scalars(
            text(
                "SELECT remind_at FROM task_reminders WHERE task_id = :id "
                "AND recipient_id IS NULL ORDER BY remind_at"
            ),
            {"id": task_id},
        ).all()
    return own, [tuple(row) for row in members], list(scheduled)


def test_the_owner_undoes_a_change_of_its_reminders_which_are_rescheduled(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    due = {"due_date": "2999-01-01T09:00:00Z"}
    made = client.post(
        "/api/tasks",
        json={"title": "Dentist", **due, "reminders": [{"minutes_before_due": 60}]},
        headers=alice.headers,
    )
    task_id = made.json()["data"]["id"]
    before = _reminders(db_engine, task_id)
    changed = client.patch(
        f"/api/tasks/{task_id}",
        json={"reminders": [{"minutes_before_due": 10}]},
        headers=alice.headers,
    )
    assert changed.status_code == 200, changed.text
    entry = last_entry(client, alice, task_id, "task.updated")
    assert set(entry["changes"]) == {"reminders"}
    assert _reminders(db_engine, task_id) != before

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    assert response.json()["data"]["reminders"] == [{"minutes_before_due": 60}]
    assert _reminders(db_engine, task_id) == before


def test_a_reminders_undo_after_the_due_date_changed_is_a_409(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    made = client.post(
        "/api/tasks",
        json={"title": "Dentist", "due_date": "2999-01-01T09:00:00Z"},
        headers=alice.headers,
    )
    task_id = made.json()["data"]["id"]
    body = {"reminders": [{"minutes_before_due": 10}]}
    assert client.patch(f"/api/tasks/{task_id}", json=body, headers=alice.headers).is_success
    entry = last_entry(client, alice, task_id, "task.updated")
    later = {"due_date": "2999-02-01T09:00:00Z"}
    assert client.patch(f"/api/tasks/{task_id}", json=later, headers=alice.headers).is_success
    before, count = stored(db_engine, task_id), entries(db_engine)

    response = undo(client, alice, entry["id"])

    assert response.status_code == 409, response.text
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert "due_date" in fields
    assert stored(db_engine, task_id) == before and entries(db_engine) == count


def test_an_admin_may_not_undo_the_owners_reminders_and_its_undo_writes_none_of_them(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    carol: Account,
    grant: Callable[[SharedList, Account, str | None], None],
    db_engine: Engine,
) -> None:
    """The owner's reminders are its own: an admin's undo of the owner's change to them is a
    422, and its undo of a member's title change leaves every reminder as it was (a write of
    the column by a member would be the member's own reminders)."""
    grant(shared_list, bob, "admin")
    grant(shared_list, carol, "editor")
    owner, task_id = shared_list.owner, shared_list.task_id
    owners = {"due_date": "2999-01-01T09:00:00Z", "reminders": [{"minutes_before_due": 30}]}
    assert client.patch(f"/api/tasks/{task_id}", json=owners, headers=owner.headers).is_success
    entry = last_entry(client, owner, task_id, "task.updated")
    before = _reminders(db_engine, task_id)

    refused = undo(client, bob, entry["id"])

    assert refused.status_code == 422, refused.text
    assert "owner's own" in refused.json()["error"]["message"]
    assert _reminders(db_engine, task_id) == before
    renamed = client.patch(
        f"/api/tasks/{task_id}", json={"title": "Carol's"}, headers=carol.headers
    )
    assert renamed.status_code == 200, renamed.text
    theirs = last_entry(client, bob, task_id, "task.updated")
    response = undo(client, bob, theirs["id"])
    assert response.status_code == 200, response.text
    assert response.json()["data"]["reminders"] == []  # Bob's own: none
    assert _reminders(db_engine, task_id) == before
