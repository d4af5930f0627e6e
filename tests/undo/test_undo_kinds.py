"""Each kind of activity entry undone (issue 53, "Undo"; specs/api-contract.md, "Undo"):
an update's fields back, a completion and a reopening, a reorder, a schedule; the kinds undo
does not revert answer 422, a deletion is restored from the trash. Over real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account
from tests.sharing.conftest import SharedList
from tests.sharing.helpers import get, make_list, make_task
from tests.undo.helpers import entries, last_entry, stored, undo


def test_an_update_goes_back_to_its_old_values_and_is_recorded(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task_id = make_task(client, alice, "Buy milk", priority="low", tags=["home"])
    before = stored(db_engine, task_id)
    changed = client.patch(
        f"/api/tasks/{task_id}",
        json={"title": "Buy oat milk", "priority": "high", "tags": ["shop"]},
        headers=alice.headers,
    )
    assert changed.status_code == 200, changed.text
    entry = last_entry(client, alice, task_id, "task.updated")

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    task = response.json()["data"]
    assert (task["title"], task["priority"], task["tags"]) == ("Buy milk", "low", ["home"])
    after = stored(db_engine, task_id)
    assert before is not None and after is not None
    assert response.headers["ETag"] == f'"{task_id}-{after["version"]}"'
    skip = {"version", "updated_at"}
    assert {k: v for k, v in after.items() if k not in skip} == {
        k: v for k, v in before.items() if k not in skip
    }
    # The undo is a change like any other: recorded, by its caller, old and new.
    recorded = last_entry(client, alice, task_id, "task.updated")
    assert recorded["id"] > entry["id"] and recorded["actor_id"] == alice.id
    assert recorded["changes"]["title"] == ["Buy oat milk", "Buy milk"]


def test_a_completion_is_undone_to_open_and_a_reopening_to_completed(
    client: TestClient, alice: Account
) -> None:
    task_id = make_task(client, alice, "Water plants")
    done = client.patch(f"/api/tasks/{task_id}/complete", headers=alice.headers)
    assert done.json()["data"]["completed"] is True
    completed_at = done.json()["data"]["completed_at"]
    completion = last_entry(client, alice, task_id, "task.completed")

    reopened = undo(client, alice, completion["id"])
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["data"]["completed"] is False
    assert reopened.json()["data"]["completed_at"] is None
    reopening = last_entry(client, alice, task_id, "task.reopened")
    assert reopening["actor_id"] == alice.id

    again = undo(client, alice, reopening["id"])
    assert again.status_code == 200, again.text
    assert again.json()["data"]["completed"] is True
    assert again.json()["data"]["completed_at"] == completed_at


def test_a_reorder_is_undone_to_its_old_position(client: TestClient, alice: Account) -> None:
    list_id = make_list(client, alice)
    first = make_task(client, alice, "First", list_id=list_id)
    second = make_task(client, alice, "Second", list_id=list_id)
    old = client.get(f"/api/tasks/{second}", headers=alice.headers).json()["data"]["position"]
    moved = client.post(
        f"/api/tasks/{second}/move", json={"after_id": first}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["position"] != old
    entry = last_entry(client, alice, second, "task.updated")
    assert set(entry["changes"]) == {"position"}

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    assert response.json()["data"]["position"] == old


def test_a_due_date_and_recurrence_change_is_undone_as_a_whole_schedule(
    client: TestClient, alice: Account
) -> None:
    task_id = make_task(client, alice, "Standup", due_date="2030-01-07T09:00:00Z")
    before = client.get(f"/api/tasks/{task_id}", headers=alice.headers).json()["data"]
    changed = client.patch(
        f"/api/tasks/{task_id}",
        json={"recurrence": "FREQ=WEEKLY", "due_date": "2030-01-08T09:00:00Z"},
        headers=alice.headers,
    )
    assert changed.status_code == 200, changed.text
    entry = last_entry(client, alice, task_id, "task.updated")

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    task = response.json()["data"]
    for field in ("due_date", "recurrence", "series_start", "next_due_date", "time_zone"):
        assert task[field] == before[field], field


def test_a_creation_a_list_a_member_an_invitation_and_a_comment_are_not_undone(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Callable[[SharedList, Account, str | None], None],
    db_engine: Engine,
) -> None:
    alice, task_id = shared_list.owner, shared_list.task_id
    grant(shared_list, bob, "editor")
    invited = client.post(
        f"/api/lists/{shared_list.list_id}/invitations",
        json={"role": "viewer"},
        headers=alice.headers,
    )
    assert invited.status_code == 201, invited.text
    comment = client.post(
        f"/api/tasks/{task_id}/comments", json={"body": "Hi"}, headers=alice.headers
    )
    assert comment.status_code == 201, comment.text
    items = client.get("/api/activity", headers=alice.headers).json()["data"]
    kinds = {item["event"]: item["id"] for item in items}
    count = entries(db_engine)
    events = (
        "task.created",
        "list.created",
        "member.added",
        "invitation.created",
        "comment.created",
    )
    for event in events:
        response = undo(client, alice, kinds[event])
        assert response.status_code == 422, (event, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert (
        "delete the task" in undo(client, alice, kinds["task.created"]).json()["error"]["message"]
    )
    assert entries(db_engine) == count


def test_a_move_between_lists_goes_back_with_its_subtasks(
    client: TestClient, alice: Account
) -> None:
    home, work = make_list(client, alice, "Home"), make_list(client, alice, "Work")
    task_id = make_task(client, alice, "Call", list_id=home)
    step = make_task(client, alice, "Find the number", parent_id=task_id)
    moved = client.patch(f"/api/tasks/{task_id}", json={"list_id": work}, headers=alice.headers)
    assert moved.status_code == 200, moved.text
    entry = last_entry(client, alice, task_id, "task.updated")
    assert "list_id" in entry["changes"]

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    assert response.json()["data"]["list_id"] == home
    subtask = client.get(f"/api/tasks/{step}", headers=alice.headers).json()["data"]
    assert (subtask["list_id"], subtask["parent_id"]) == (home, task_id)
    recorded = last_entry(client, alice, task_id, "task.updated")
    assert recorded["id"] > entry["id"] and recorded["changes"]["list_id"] == [work, home]


def test_a_move_under_a_parent_goes_back_to_the_top_level(
    client: TestClient, alice: Account
) -> None:
    parent = make_task(client, alice, "Trip")
    task_id = make_task(client, alice, "Pack")
    moved = client.post(
        f"/api/tasks/{task_id}/move", json={"parent_id": parent}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    entry = last_entry(client, alice, task_id, "task.updated")

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    assert response.json()["data"]["parent_id"] is None
    assert (
        client.get(f"/api/tasks/{parent}", headers=alice.headers).json()["data"]["subtask_count"]
        == 0
    )


def test_a_move_goes_back_to_its_old_place_among_its_siblings_or_last_if_taken(
    client: TestClient, alice: Account
) -> None:
    home, work = make_list(client, alice, "Home"), make_list(client, alice, "Work")
    first, middle, last = (make_task(client, alice, t, list_id=home) for t in "ABC")

    def order() -> list[int]:
        page = client.get(
            "/api/tasks",
            params={"list_id": home, "parent_id": "none", "sort": "position"},
            headers=alice.headers,
        )
        return [task["id"] for task in page.json()["data"]]

    before = order()
    assert set(before) == {first, middle, last}
    client.patch(f"/api/tasks/{middle}", json={"list_id": work}, headers=alice.headers)
    entry = last_entry(client, alice, middle, "task.updated")
    response = undo(client, alice, entry["id"])
    assert response.status_code == 200, response.text
    assert order() == before

    client.patch(f"/api/tasks/{middle}", json={"list_id": work}, headers=alice.headers)
    entry = last_entry(client, alice, middle, "task.updated")
    old = entry["changes"]["position"][0]
    # Between its old neighbours, evenly spaced, a new task takes exactly its old position.
    taken = make_task(client, alice, "D", list_id=home)
    moved = client.post(
        f"/api/tasks/{taken}/move", json={"after_id": before[0]}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["position"] == old
    response = undo(client, alice, entry["id"])
    assert response.status_code == 200, response.text
    assert order()[-1] == middle


def test_a_subtask_moved_out_goes_back_under_its_parent_in_the_parents_list_now(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """The undo moves a task back under the parent it left; a parent moved to another list
    since takes it there (a subtask is in its parent's list), its subtree with it."""
    home, work, later = (make_list(client, alice, name) for name in ("Home", "Work", "Later"))
    parent = make_task(client, alice, "Trip", list_id=home)
    task_id = make_task(client, alice, "Pack", parent_id=parent)
    step = make_task(client, alice, "Socks", parent_id=task_id)
    moved = client.post(
        f"/api/tasks/{task_id}/move",
        json={"list_id": work, "parent_id": None},
        headers=alice.headers,
    )
    assert moved.status_code == 200, moved.text
    entry = last_entry(client, alice, task_id, "task.updated")
    assert (
        client.patch(
            f"/api/tasks/{parent}", json={"list_id": later}, headers=alice.headers
        ).status_code
        == 200
    )
    count = entries(db_engine)

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    task = response.json()["data"]
    assert (task["parent_id"], task["list_id"]) == (parent, later)
    subtask = client.get(f"/api/tasks/{step}", headers=alice.headers).json()["data"]
    assert (subtask["parent_id"], subtask["list_id"]) == (task_id, later)
    trip = client.get(f"/api/tasks/{parent}", headers=alice.headers).json()["data"]
    assert trip["subtask_count"] == 1  # its direct subtasks
    assert entries(db_engine) > count


def test_a_moves_undo_after_a_later_move_of_the_other_field_is_a_409(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A move is undone only from where it put the task: moved under a parent in its list,
    then carried to another list with that parent, the undo is refused (the later change of
    its list is kept), nothing written."""
    home, work = make_list(client, alice, "Home"), make_list(client, alice, "Work")
    parent = make_task(client, alice, "Trip", list_id=home)
    task_id = make_task(client, alice, "Pack", list_id=home)
    moved = client.post(
        f"/api/tasks/{task_id}/move", json={"parent_id": parent}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    entry = last_entry(client, alice, task_id, "task.updated")
    assert "list_id" not in entry["changes"]
    carried = client.patch(f"/api/tasks/{parent}", json={"list_id": work}, headers=alice.headers)
    assert carried.status_code == 200, carried.text
    before, count = stored(db_engine, task_id), entries(db_engine)

    response = undo(client, alice, entry["id"])

    assert response.status_code == 409, response.text
    details = {d["field"]: (d["current"], d["entry"]) for d in response.json()["error"]["details"]}
    assert details["list_id"] == (work, home)
    assert stored(db_engine, task_id) == before and entries(db_engine) == count


def test_a_later_move_that_kept_the_position_still_makes_a_moves_undo_a_409(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """Later moves that changed only the field the entry did not (the position kept, as a
    first child and a lone top-level task keep the same number): the undo still sees the task
    elsewhere than the move put it, and writes nothing."""
    home, work = make_list(client, alice, "Home"), make_list(client, alice, "Work")
    # A list change, then made a subtask in that list.
    moved = make_task(client, alice, "A", list_id=home)
    client.post(f"/api/tasks/{moved}/move", json={"list_id": work}, headers=alice.headers)
    first = last_entry(client, alice, moved, "task.updated")
    under = make_task(client, alice, "B", list_id=work)
    parented = client.post(
        f"/api/tasks/{moved}/move", json={"parent_id": under}, headers=alice.headers
    )
    assert parented.status_code == 200, parented.text
    # A parent change, then moved to another list.
    make_task(client, alice, "C", list_id=work)
    parent = make_task(client, alice, "D", list_id=home)
    child = make_task(client, alice, "E", parent_id=parent)
    client.post(f"/api/tasks/{child}/move", json={"parent_id": None}, headers=alice.headers)
    second = last_entry(client, alice, child, "task.updated")
    listed = client.post(f"/api/tasks/{child}/move", json={"list_id": work}, headers=alice.headers)
    assert listed.status_code == 200, listed.text

    for task_id, entry in ((moved, first), (child, second)):
        before, count = stored(db_engine, task_id), entries(db_engine)
        response = undo(client, alice, entry["id"])
        assert response.status_code == 409, response.text
        assert stored(db_engine, task_id) == before and entries(db_engine) == count


def test_a_subtasks_list_change_made_by_its_parents_move_is_not_undone_alone(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    home, work = make_list(client, alice, "Home"), make_list(client, alice, "Work")
    parent = make_task(client, alice, "Trip", list_id=home)
    child = make_task(client, alice, "Pack", parent_id=parent)
    carried = client.patch(f"/api/tasks/{parent}", json={"list_id": work}, headers=alice.headers)
    assert carried.status_code == 200, carried.text
    entry = last_entry(client, alice, child, "task.updated")
    assert set(entry["changes"]) >= {"list_id"} and "parent_id" not in entry["changes"]

    for later in (None, {"parent_id": None}):
        if later is not None:  # taken out from under its parent since: still its parent's move
            out = client.post(f"/api/tasks/{child}/move", json=later, headers=alice.headers)
            assert out.status_code == 200, out.text
        before, count = stored(db_engine, child), entries(db_engine)
        response = undo(client, alice, entry["id"])
        assert response.status_code == 422, response.text
        assert "moved with its parent" in response.json()["error"]["message"]
        assert stored(db_engine, child) == before and entries(db_engine) == count


def test_a_moves_undo_takes_if_match_and_a_stale_tag_changes_nothing(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    home, work = make_list(client, alice, "Home"), make_list(client, alice, "Work")
    task_id = make_task(client, alice, "Call", list_id=home)
    client.patch(f"/api/tasks/{task_id}", json={"list_id": work}, headers=alice.headers)
    entry = last_entry(client, alice, task_id, "task.updated")
    etag = client.get(f"/api/tasks/{task_id}", headers=alice.headers).headers["ETag"]
    before, count = stored(db_engine, task_id), entries(db_engine)

    stale = undo(client, alice, entry["id"], **{"If-Match": f'"{task_id}-1"'})
    other = undo(client, alice, entry["id"], **{"If-Match": f'"{task_id + 1}-2"'})

    assert (stale.status_code, other.status_code) == (412, 412), (stale.text, other.text)
    assert stored(db_engine, task_id) == before and entries(db_engine) == count
    response = undo(client, alice, entry["id"], **{"If-Match": etag})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["list_id"] == home


def test_a_move_back_under_a_parent_since_deleted_changes_nothing(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    parent = make_task(client, alice, "Trip")
    task_id = make_task(client, alice, "Pack", parent_id=parent)
    moved = client.post(
        f"/api/tasks/{task_id}/move", json={"parent_id": None}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    entry = last_entry(client, alice, task_id, "task.updated")
    assert client.delete(f"/api/tasks/{parent}", headers=alice.headers).status_code == 204
    before, count = stored(db_engine, task_id), entries(db_engine)

    response = undo(client, alice, entry["id"])

    assert response.status_code == 404, response.text
    assert response.json()["error"]["details"][0]["field"] == "body.parent_id"
    assert stored(db_engine, task_id) == before and entries(db_engine) == count


def test_a_move_moved_again_since_is_a_409_with_nothing_changed(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    home, work, later = (make_list(client, alice, name) for name in ("Home", "Work", "Later"))
    task_id = make_task(client, alice, "Call", list_id=home)
    client.patch(f"/api/tasks/{task_id}", json={"list_id": work}, headers=alice.headers)
    entry = last_entry(client, alice, task_id, "task.updated")
    client.patch(f"/api/tasks/{task_id}", json={"list_id": later}, headers=alice.headers)
    before, count = stored(db_engine, task_id), entries(db_engine)

    response = undo(client, alice, entry["id"])

    assert response.status_code == 409, response.text
    details = {d["field"]: (d["current"], d["entry"]) for d in response.json()["error"]["details"]}
    assert details["list_id"] == (later, work)
    assert stored(db_engine, task_id) == before and entries(db_engine) == count


def test_a_move_back_into_a_list_since_deleted_changes_nothing(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    home, work = make_list(client, alice, "Home"), make_list(client, alice, "Work")
    task_id = make_task(client, alice, "Call", list_id=home)
    client.patch(f"/api/tasks/{task_id}", json={"list_id": work}, headers=alice.headers)
    entry = last_entry(client, alice, task_id, "task.updated")
    assert client.delete(f"/api/lists/{home}", headers=alice.headers).status_code == 204
    before = stored(db_engine, task_id)

    response = undo(client, alice, entry["id"])

    assert response.status_code in (404, 422), response.text
    assert stored(db_engine, task_id) == before


def test_a_deletion_is_undone_by_a_restore_and_a_second_undo_is_409(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task_id = make_task(client, alice, "Gone")
    before = stored(db_engine, task_id)
    assert client.delete(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 204
    entry = last_entry(client, alice, task_id, "task.deleted")

    response = undo(client, alice, entry["id"])

    assert response.status_code == 200, response.text
    assert response.json()["data"]["id"] == task_id
    assert response.json()["data"]["title"] == "Gone"
    back = stored(db_engine, task_id)
    assert back is not None and before is not None
    assert {k: back[k] for k in ("title", "list_id", "parent_id", "completed")} == {
        k: before[k] for k in ("title", "list_id", "parent_id", "completed")
    }
    # The trash gave it back: the same entry undone again finds no trashed task.
    again = undo(client, alice, entry["id"])
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "CONFLICT"
    assert stored(db_engine, task_id) is not None


def test_undoing_a_deletion_with_subtasks_restores_the_whole_task_whichever_entry(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A task deleted with its subtasks records a deletion per task, the subtasks' last (the
    cascade runs after the parent's row): the newest entry is a subtask's, and undoing it
    restores the deletion it was part of, the whole task, answering with the subtask, as any
    write of the caller's (the restored tasks' entries name the caller)."""
    parent = make_task(client, alice, "Parent")
    child = make_task(client, alice, "Child", parent_id=parent)
    grandchild = make_task(client, alice, "Grandchild", parent_id=child)
    assert client.delete(f"/api/tasks/{parent}", headers=alice.headers).status_code == 204
    entry = get(client, alice, "/api/activity", limit=1)["data"][0]
    assert entry["event"] == "task.deleted" and entry["object_id"] in (child, grandchild)
    response = undo(client, alice, entry["id"])
    assert response.status_code == 200, response.text
    assert response.json()["data"]["id"] == entry["object_id"]
    for task_id in (parent, child, grandchild):
        assert stored(db_engine, task_id) is not None
    assert client.get("/api/trash", headers=alice.headers).json()["data"] == []
    newest = get(client, alice, "/api/activity", limit=3)["data"]
    assert {(e["event"], e["object_id"], e["actor_id"]) for e in newest} == {
        ("task.created", task_id, alice.id) for task_id in (parent, child, grandchild)
    }
    # Undone already: the same entry again finds nothing to restore.
    again = undo(client, alice, entry["id"])
    assert again.status_code == 409, again.text
