"""Writes by href (issue 62): the deliberate breaks "ignore If-Match", "let a viewer PUT" and
"drop X- properties" each fail a test here on the first DAV request that can see them (the
rows are made through REST first, so that request is the test's first over DAV), and an
update's `RELATED-TO;RELTYPE=PARENT` moves the task as a PATCH's `parent_id` would
(specs/caldav.md, "Objects")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy import text as sql_text

from backend.services.calendar.dav_objects import DavObjectService
from tests.conftest import Account
from tests.dav.test_objects import derived_path, put, signed_in, task_by_id, vtodo
from tests.sharing.helpers import join, make_list, make_task

STALE = '"o' + "0" * 39 + '"'


def test_a_stale_if_match_put_is_412_and_changes_nothing(
    client: TestClient, alice: Account
) -> None:
    """Break "ignore If-Match": the first DAV request, a PUT with a stale tag, is 204."""
    task_id = make_task(client, alice, "Water the plants")
    before = task_by_id(client, alice, task_id)
    headers = signed_in(client, alice)
    path = derived_path(None, task_id)
    body = vtodo(f"task-{task_id}@task-api", "Water the roses")
    answer = put(client, path, body, headers, **{"If-Match": STALE})
    assert answer.status_code == 412, answer.text
    assert task_by_id(client, alice, task_id) == before
    gone = client.delete(path, headers={**headers, "If-Match": STALE})
    assert gone.status_code == 412, gone.text
    assert task_by_id(client, alice, task_id) == before


def test_a_viewers_put_and_delete_are_403_and_change_nothing(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """Break "let a viewer PUT": the first DAV request, a viewer's PUT, is a 2xx."""
    list_id = make_list(client, alice, "Garden")
    task_id = make_task(client, alice, "Prune the roses", list_id=list_id)
    join(client, alice, bob, list_id, "viewer")
    before = task_by_id(client, alice, task_id)
    viewer = signed_in(client, bob)
    path = derived_path(list_id, task_id)
    answer = put(client, path, vtodo(f"task-{task_id}@task-api", "Viewer was here"), viewer)
    assert answer.status_code == 403, answer.text
    assert task_by_id(client, alice, task_id) == before
    created = put(client, f"/dav/calendars/{list_id}/new.ics", vtodo("new"), viewer)
    assert created.status_code == 403, created.text
    assert client.delete(path, headers=viewer).status_code == 403
    listed = client.get(f"/api/tasks?list_id={list_id}", headers=alice.headers).json()["data"]
    assert [t["id"] for t in listed] == [task_id] and task_by_id(client, alice, task_id) == before


def test_a_create_under_if_none_match_is_refused_as_any_put(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """A create under `If-None-Match: *` writes without a lookup first: a viewer's, and one in
    a list the caller cannot read or that does not exist, get the bytes a PUT without it gets."""
    garden, shed = make_list(client, alice, "Garden"), make_list(client, alice, "Shed")
    join(client, alice, bob, garden, "viewer")
    viewer = signed_in(client, bob)
    for list_id, status in ((garden, 403), (shed, 404), (999_999_999, 404)):
        path = f"/dav/calendars/{list_id}/new.ics"
        plain = put(client, path, vtodo("new"), viewer)
        created = put(client, path, vtodo("new"), viewer, **{"If-None-Match": "*"})
        assert (plain.status_code, created.status_code) == (status, status), created.text
        assert created.content == plain.content
    assert client.get(f"/api/tasks?list_id={garden}", headers=alice.headers).json()["data"] == []


# What we do not model: an X- property, an unknown parameter on a property we model, an unknown
# property and an unknown component, each to come back byte for byte.
UNMODELLED = (
    "X-EVOLUTION-HINT:y\r\nX-MOZ-LASTACK:20261101T000000Z\r\n"
    "DESCRIPTION;X-ALTREP-HINT=phone:Bring gloves\r\nLOCATION:Garden\r\n"
    "BEGIN:X-CLIENT-DATA\r\nX-NOTE:kept\r\nEND:X-CLIENT-DATA\r\n"
)
KEPT_LINES = (
    b"X-EVOLUTION-HINT:y\r\n",
    b"X-MOZ-LASTACK:20261101T000000Z\r\n",
    b"DESCRIPTION;X-ALTREP-HINT=phone:Bring gloves\r\n",
    b"LOCATION:Garden\r\n",
    b"BEGIN:X-CLIENT-DATA\r\nX-NOTE:kept\r\nEND:X-CLIENT-DATA\r\n",
)


def test_what_we_do_not_model_comes_back_also_after_a_rest_patch(
    client: TestClient, alice: Account
) -> None:
    """Break "drop X- properties": the first GET after the PUT misses a kept line."""
    task_id = make_task(client, alice, "Weed the beds")
    headers = signed_in(client, alice)
    path = derived_path(None, task_id)
    written = put(client, path, vtodo(f"task-{task_id}@task-api", "Weed", UNMODELLED), headers)
    assert written.status_code == 204, written.text
    served = client.get(path, headers=headers).content
    assert all(line in served for line in KEPT_LINES), served.decode()
    patched = client.patch(
        f"/api/tasks/{task_id}", json={"title": "Weed the roses"}, headers=alice.headers
    )
    assert patched.status_code == 200, patched.text
    served = client.get(path, headers=headers).content
    assert all(line in served for line in KEPT_LINES), served.decode()
    assert b"SUMMARY:Weed the roses" in served


def _related(parent: str | None) -> str:
    return "" if parent is None else f"RELATED-TO;RELTYPE=PARENT:{parent}\r\n"


def test_an_updates_parent_moves_the_task_as_a_patch_would(
    client: TestClient, alice: Account, register: Callable[..., Account]
) -> None:
    """RELATED-TO;RELTYPE=PARENT on an update: a task of the same collection moves the task
    under it; none moves it to the top level where the client's last object named one; a UID
    the collection does not hold (another collection's task, or nothing) moves nothing."""
    list_id = make_list(client, alice, "Trip")
    other = make_list(client, alice, "Work")
    parent = make_task(client, alice, "Pack", list_id=list_id)
    elsewhere = make_task(client, alice, "Report", list_id=other)
    task_id = make_task(client, alice, "Socks", list_id=list_id)
    headers = signed_in(client, alice)
    path = derived_path(list_id, task_id)
    uid = f"task-{task_id}@task-api"

    def write(related: str | None) -> dict[str, Any]:
        answer = put(client, path, vtodo(uid, "Socks", _related(related)), headers)
        assert answer.status_code == 204, answer.text
        return task_by_id(client, alice, task_id)

    assert write(f"task-{parent}@task-api")["parent_id"] == parent
    # Another collection's task, or a UID nothing holds: the task stays where it is.
    kept = write(f"task-{elsewhere}@task-api")
    assert (kept["parent_id"], kept["list_id"]) == (parent, list_id)
    assert write("not-held-anywhere")["parent_id"] == parent
    # Served as it is: under its parent (our field over the client's line).
    served = client.get(path, headers=headers).content
    assert f"RELATED-TO;RELTYPE=PARENT:task-{parent}@task-api".encode() in served
    # None, where the client's last object named a parent: to the top level of the list.
    top = write(None)
    assert (top["parent_id"], top["list_id"]) == (None, list_id)
    # A client that never named a parent (one that drops RELATED-TO, as Thunderbird and
    # Apple do) leaves a subtask made elsewhere where it is.
    sub = make_task(client, alice, "Passport", parent_id=parent)
    written = put(
        client, derived_path(list_id, sub), vtodo(f"task-{sub}@task-api", "Passport"), headers
    )
    assert written.status_code == 204, written.text
    assert task_by_id(client, alice, sub)["parent_id"] == parent


def test_a_task_changed_between_lookup_and_write_is_412_only_with_if_match(
    client: TestClient, alice: Account, db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write names the version its lookup read: another write landing in between (made
    here, at that moment, on the database directly) makes an If-Match PUT `412`, nothing
    written; without If-Match, the PUT looks up again and is written (never a spurious 412,
    as a PATCH is never one). A subtask: its tag does not vouch for it, so its write looks
    it up first (tests/dav/test_vouched_writes.py: the one-message write)."""
    parent = make_task(client, alice, "Garden")
    task_id = make_task(client, alice, "Water the plants", parent_id=parent)
    headers = signed_in(client, alice)
    path = derived_path(None, task_id)
    tag = client.get(path, headers=headers).headers["etag"]
    original = DavObjectService.begin_write
    landed: list[str] = []

    def meanwhile(self: DavObjectService) -> None:
        if not landed:  # once, between the first lookup and its write
            landed.append("x")
            with db_engine.begin() as conn:
                conn.execute(
                    sql_text(
                        "UPDATE tasks SET title = 'Changed meanwhile', version = version + 1 "
                        "WHERE id = :id"
                    ),
                    {"id": task_id},
                )
        original(self)

    monkeypatch.setattr(DavObjectService, "begin_write", meanwhile)
    body = vtodo(f"task-{task_id}@task-api", "Water the roses")
    assert put(client, path, body, headers, **{"If-Match": tag}).status_code == 412
    assert task_by_id(client, alice, task_id)["title"] == "Changed meanwhile"
    landed.clear()
    answer = put(client, path, body, headers)
    assert answer.status_code == 204, answer.text
    assert task_by_id(client, alice, task_id)["title"] == "Water the roses"
