"""PUTs with no precondition (issue 70; specs/caldav.md, "Cost"): the most common client save
(no etag kept) is one message where the task is as the PUT assumes (no rule, its parent kept,
the zone its body is read on: `DavObjectService.name_plain`), and a create with its claim
where the name is free. Every other case is refused in that message, nothing written, and
answered as a lookup answers it: each test here is one such case and its answer."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy import text as sql_text

from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, derived_path, put, signed_in, task_by_id, vtodo
from tests.sharing.helpers import join, make_list, make_task


def _count(db_engine: Engine) -> int:
    with db_engine.connect() as conn:
        return int(conn.execute(sql_text("SELECT count(*) FROM tasks")).scalar_one())


def test_a_put_with_no_precondition_updates_a_kept_object_and_a_derived_one(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A client's object (its name, its X- property) and a task no client wrote, each written
    back with no If-Match: the update, the object kept, no second task."""
    headers = signed_in(client, alice)
    path = NO_LIST + "mine.ics"
    assert put(client, path, vtodo("mine", "First", "X-OURS:kept\r\n"), headers).status_code == 201
    before = client.get(path, headers=headers)
    tasks = _count(db_engine)
    body = vtodo("mine", "Second", "X-OURS:again\r\nDUE:20261201T090000Z\r\n")
    assert put(client, path, body, headers).status_code == 204
    after = client.get(path, headers=headers)
    assert b"SUMMARY:Second" in after.content and b"X-OURS:again" in after.content
    assert after.headers["ETag"] != before.headers["ETag"]
    assert _count(db_engine) == tasks
    task_id = int(after.headers["ETag"].strip('"').partition("-")[0])
    task = task_by_id(client, alice, task_id)
    assert (task["title"], task["due_date"]) == ("Second", "2026-12-01T09:00:00Z")
    rest = make_task(client, alice, "Rest")
    answer = put(
        client, derived_path(None, rest), vtodo(f"task-{rest}@task-api", "Renamed"), headers
    )
    assert answer.status_code == 204, answer.text
    assert task_by_id(client, alice, rest)["title"] == "Renamed"
    assert _count(db_engine) == tasks + 1


def test_a_floating_due_is_read_on_the_tasks_zone_whatever_was_assumed(
    client: TestClient, alice: Account
) -> None:
    """The message assumes UTC for a floating DUE; a task on another zone refuses it with its
    zone, and the body is read again on that zone: the same values a lookup reads."""
    headers = signed_in(client, alice)
    berlin = make_task(
        client, alice, "Call", due_date="2026-12-01T08:00:00Z", time_zone="Europe/Berlin"
    )
    floating = vtodo(f"task-{berlin}@task-api", "Call", "DUE:20261202T100000\r\n")
    assert put(client, derived_path(None, berlin), floating, headers).status_code == 204
    task = task_by_id(client, alice, berlin)
    assert (task["due_date"], task["time_zone"]) == ("2026-12-02T09:00:00Z", "Europe/Berlin")
    dated = vtodo(f"task-{berlin}@task-api", "Call", "DUE;VALUE=DATE:20261205\r\n")
    assert put(client, derived_path(None, berlin), dated, headers).status_code == 204
    task = task_by_id(client, alice, berlin)  # a day, on the task's clock (its zone kept)
    assert (task["due_date"], task["all_day"], task["time_zone"]) == (
        "2026-12-05",
        True,
        "Europe/Berlin",
    )
    utc = make_task(client, alice, "Mail")
    floating = vtodo(f"task-{utc}@task-api", "Mail", "DUE:20261202T100000\r\n")
    assert put(client, derived_path(None, utc), floating, headers).status_code == 204
    task = task_by_id(client, alice, utc)
    assert (task["due_date"], task["time_zone"]) == ("2026-12-02T10:00:00Z", "UTC")
    # A DUE naming a zone is read on it, and the task takes it (as a PATCH of both).
    named = vtodo(f"task-{utc}@task-api", "Mail", "DUE;TZID=America/New_York:20261203T100000\r\n")
    assert put(client, derived_path(None, utc), named, headers).status_code == 204
    task = task_by_id(client, alice, utc)
    assert (task["due_date"], task["time_zone"]) == ("2026-12-03T15:00:00Z", "America/New_York")
    # No DUE on a task with a zone: the zone stays.
    bare = vtodo(f"task-{berlin}@task-api", "Call later")
    assert put(client, derived_path(None, berlin), bare, headers).status_code == 204
    task = task_by_id(client, alice, berlin)
    assert (task["title"], task["due_date"], task["time_zone"]) == (
        "Call later",
        None,
        "Europe/Berlin",
    )


def test_a_subtask_stays_under_its_parent_unless_the_clients_object_named_it(
    client: TestClient, alice: Account
) -> None:
    """A body naming no parent: a subtask no client wrote (or whose client never named its
    parent) stays where it is; one whose client's last object named a parent moves to the
    top level (the parent rule: the lookup's way)."""
    headers = signed_in(client, alice)
    parent = make_task(client, alice, "Trip")
    sub = make_task(client, alice, "Pack", parent_id=parent)
    answer = put(
        client, derived_path(None, sub), vtodo(f"task-{sub}@task-api", "Pack bags"), headers
    )
    assert answer.status_code == 204, answer.text
    assert (
        task_by_id(client, alice, sub)["title"],
        task_by_id(client, alice, sub)["parent_id"],
    ) == (
        "Pack bags",
        parent,
    )
    path = NO_LIST + "child.ics"
    named = vtodo("child", "Child", f"RELATED-TO;RELTYPE=PARENT:task-{parent}@task-api\r\n")
    assert put(client, path, named, headers).status_code == 201
    listed = client.get("/api/tasks", headers=alice.headers).json()["data"]
    assert next(t for t in listed if t["title"] == "Child")["parent_id"] == parent
    dropped = put(client, path, vtodo("child", "Child, alone"), headers)
    assert dropped.status_code == 204, dropped.text
    listed = client.get("/api/tasks", headers=alice.headers).json()["data"]
    assert next(t for t in listed if t["title"] == "Child, alone")["parent_id"] is None


def test_a_series_written_without_its_rule_goes_the_lookups_way(
    client: TestClient, alice: Account
) -> None:
    """A recurring task refuses the assumption (nothing written in that message); the lookup
    classifies the PUT against its series, as before."""
    headers = signed_in(client, alice)
    series = make_task(
        client, alice, "Water", due_date="2026-12-01T09:00:00Z", recurrence="FREQ=DAILY"
    )
    body = vtodo(f"task-{series}@task-api", "Water well", "DUE:20261201T090000Z\r\n")
    answer = put(client, derived_path(None, series), body, headers)
    assert answer.status_code == 204, answer.text
    task = task_by_id(client, alice, series)
    assert task["title"] == "Water well"


def test_refusals_with_no_precondition_are_the_lookups_and_write_nothing(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """A viewer's PUT (an existing name and a new one) is 403, a list the caller cannot read
    and one that does not exist 404, a changed UID and a UID another object holds 403
    `no-uid-conflict`, a revoked password 401: nothing written."""
    from tests.api.test_app_passwords import basic, create

    list_id = make_list(client, alice, "Garden")
    task_id = make_task(client, alice, "Prune", list_id=list_id)
    join(client, alice, bob, list_id, "viewer")
    viewer = signed_in(client, bob)
    body = vtodo(f"task-{task_id}@task-api", "Viewer was here")
    hidden = make_list(client, alice, "Shed")
    secret = make_task(client, alice, "Secret", list_id=hidden)
    before = task_by_id(client, alice, task_id)
    tasks = _count(db_engine)
    assert put(client, derived_path(list_id, task_id), body, viewer).status_code == 403
    fresh = put(client, f"/dav/calendars/{list_id}/fresh.ics", vtodo("fresh"), viewer)
    assert fresh.status_code == 403, fresh.text
    stranger = put(client, derived_path(hidden, secret), vtodo(f"task-{secret}@task-api"), viewer)
    assert stranger.status_code == 404, stranger.text
    assert put(client, f"/dav/calendars/{hidden}/new.ics", vtodo("n"), viewer).status_code == 404
    assert put(client, "/dav/calendars/999999/new.ics", vtodo("n"), viewer).status_code == 404
    owner = signed_in(client, alice)
    renamed = put(client, derived_path(list_id, task_id), vtodo("another-uid", "Prune"), owner)
    assert renamed.status_code == 403 and b"no-uid-conflict" in renamed.content
    kept = f"/dav/calendars/{list_id}/kept.ics"
    assert put(client, kept, vtodo("kept-uid", "Kept"), owner).status_code == 201
    tasks += 1
    held = put(client, f"/dav/calendars/{list_id}/other.ics", vtodo("kept-uid", "Twin"), owner)
    assert held.status_code == 403 and b"no-uid-conflict" in held.content
    made = create(client, alice)
    revoked = basic(made["username"], made["password"])
    assert (
        client.get(derived_path(list_id, task_id), headers=revoked).status_code == 200
    )  # verified
    gone = client.delete(f"/api/app-passwords/{made['id']}", headers=alice.headers)
    assert gone.status_code in (200, 204)
    assert put(client, derived_path(list_id, task_id), body, revoked).status_code == 401
    late = put(client, f"/dav/calendars/{list_id}/late.ics", vtodo("late"), revoked)
    assert late.status_code == 401, late.text
    assert task_by_id(client, alice, task_id) == before
    assert task_by_id(client, alice, secret)["title"] == "Secret"
    assert _count(db_engine) == tasks


def test_a_new_name_with_no_precondition_is_created_once_and_written_again(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """A free name: the assumption refused ("free"), then the create with its claim; the
    same PUT again (a retry) is the update of that task, one task."""
    headers = signed_in(client, alice)
    list_id = make_list(client, alice, "Garden")
    path = f"/dav/calendars/{list_id}/new.ics"
    tasks = _count(db_engine)
    body = vtodo("new-uid", "New", "X-OURS:kept\r\n")
    assert put(client, path, body, headers).status_code == 201
    assert put(client, path, body, headers).status_code == 204
    assert _count(db_engine) == tasks + 1
    served = client.get(path, headers=headers)
    assert b"X-OURS:kept" in served.content
    listed = client.get(f"/api/tasks?list_id={list_id}", headers=alice.headers).json()["data"]
    assert [t["title"] for t in listed] == ["New"]
