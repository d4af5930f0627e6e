"""Writes whose `If-Match` tag vouches for the task (issue 70; specs/caldav.md, "Cost"): a task
with no rule and no parent is tagged `"<id>-<version>.<zone>.<digest>"`, and an update or a
DELETE naming that tag is one message with no lookup, the tag tested by the database where
the object is served. Each refusal here is the one a lookup would answer, nothing written."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy import text as sql_text

from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, derived_path, put, signed_in, task_by_id, vtodo
from tests.sharing.helpers import join, make_list, make_task

VOUCHING = re.compile(r'"([0-9]+)-([0-9]+)\.([A-Za-z0-9_+/-]+)\.[0-9a-f]{32}"')
OPAQUE = re.compile(r'"o[0-9a-f]{39}"')


def _version(client: TestClient, who: Account, task_id: int) -> int:
    """The task's version, from its REST ETag (`"<id>-<version>"`)."""
    tag = client.get(f"/api/tasks/{task_id}", headers=who.headers).headers["ETag"]
    return int(tag.strip('"').rpartition("-")[2])


def _tag(client: TestClient, path: str, headers: dict[str, str]) -> str:
    got = client.get(path, headers=headers)
    assert got.status_code == 200, got.text
    return str(got.headers["ETag"])


def test_only_a_task_with_no_rule_and_no_parent_has_a_vouching_tag(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    plain = make_task(client, alice, "Plain", time_zone="Europe/Berlin")
    parent = make_task(client, alice, "Trip")
    sub = make_task(client, alice, "Pack", parent_id=parent)
    series = make_task(
        client, alice, "Water", due_date="2026-12-01T09:00:00Z", recurrence="FREQ=DAILY"
    )
    tag = _tag(client, derived_path(None, plain), headers)
    match = VOUCHING.fullmatch(tag)
    assert match is not None, tag
    version = _version(client, alice, plain)
    assert match.groups() == (str(plain), str(version), "Europe/Berlin")
    for opaque in (sub, series):
        assert OPAQUE.fullmatch(_tag(client, derived_path(None, opaque), headers))
    # The tag moves with the task (a REST edit) and with its object (a PUT), as it did.
    edited = client.patch(f"/api/tasks/{plain}", json={"title": "Edited"}, headers=alice.headers)
    assert edited.status_code == 200
    after = _tag(client, derived_path(None, plain), headers)
    assert after != tag
    written = put(
        client, derived_path(None, plain), vtodo(f"task-{plain}@task-api", "Put"), headers
    )
    assert written.status_code == 204, written.text
    assert _tag(client, derived_path(None, plain), headers) not in (tag, after)


def test_an_update_and_a_delete_under_a_current_tag_write_in_one_message(
    client: TestClient, alice: Account
) -> None:
    """A client's object (its name, its X- property) updated and deleted by tag."""
    headers = signed_in(client, alice)
    path = NO_LIST + "mine.ics"
    created = put(
        client, path, vtodo("mine", "First", "X-OURS:kept\r\n"), headers, **{"If-None-Match": "*"}
    )
    assert created.status_code == 201, created.text
    tag = _tag(client, path, headers)
    assert VOUCHING.fullmatch(tag), tag
    body = vtodo("mine", "Second", "X-OURS:kept\r\nDUE:20261201T090000Z\r\n")
    updated = put(client, path, body, headers, **{"If-Match": tag})
    assert updated.status_code == 204, updated.text
    served = client.get(path, headers=headers)
    assert b"SUMMARY:Second" in served.content and b"X-OURS:kept" in served.content
    task_id = int(VOUCHING.fullmatch(tag).group(1))  # type: ignore[union-attr]
    task = task_by_id(client, alice, task_id)
    assert task["title"] == "Second" and task["due_date"] == "2026-12-01T09:00:00Z"
    # The tag before the update is stale now: 412 for both, nothing written.
    assert (
        put(client, path, vtodo("mine", "Third"), headers, **{"If-Match": tag}).status_code == 412
    )
    assert client.delete(path, headers={**headers, "If-Match": tag}).status_code == 412
    assert task_by_id(client, alice, task_id)["title"] == "Second"
    current = served.headers["ETag"]
    gone = client.delete(path, headers={**headers, "If-Match": current})
    assert gone.status_code == 204, gone.text
    assert client.get(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 404
    trash = client.get("/api/trash", headers=alice.headers).json()["data"]
    assert task_id in [t["id"] for t in trash]


def test_a_forged_or_borrowed_tag_is_412_and_changes_nothing(
    client: TestClient, alice: Account
) -> None:
    """The digest is tested, not only the id and version the tag shows; another object's
    current tag names another object."""
    headers = signed_in(client, alice)
    one, two = make_task(client, alice, "One"), make_task(client, alice, "Two")
    before = task_by_id(client, alice, one)
    forged = f'"{one}-{_version(client, alice, one)}.UTC.{"0" * 32}"'
    borrowed = _tag(client, derived_path(None, two), headers)
    for tag in (forged, borrowed):
        body = vtodo(f"task-{one}@task-api", "Changed")
        assert (
            put(client, derived_path(None, one), body, headers, **{"If-Match": tag}).status_code
            == 412
        )
        assert (
            client.delete(derived_path(None, one), headers={**headers, "If-Match": tag}).status_code
            == 412
        )
    assert task_by_id(client, alice, one) == before
    assert task_by_id(client, alice, two)["title"] == "Two"


def test_refusals_under_a_current_tag_are_the_lookups(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """A viewer's write, a changed UID, a list the caller cannot read: the answers a write
    without a vouching tag gets, nothing written."""
    list_id = make_list(client, alice, "Garden")
    task_id = make_task(client, alice, "Prune", list_id=list_id)
    join(client, alice, bob, list_id, "viewer")
    viewer = signed_in(client, bob)
    path = derived_path(list_id, task_id)
    tag = _tag(client, path, viewer)
    before = task_by_id(client, alice, task_id)
    body = vtodo(f"task-{task_id}@task-api", "Viewer was here")
    assert put(client, path, body, viewer, **{"If-Match": tag}).status_code == 403
    assert client.delete(path, headers={**viewer, "If-Match": tag}).status_code == 403
    owner = signed_in(client, alice)
    renamed = put(client, path, vtodo("another-uid", "Prune"), owner, **{"If-Match": tag})
    assert renamed.status_code == 403 and b"no-uid-conflict" in renamed.content
    other = make_list(client, alice, "Shed")  # Bob cannot read it: the missing one's 404
    moved = put(client, derived_path(other, task_id), body, viewer, **{"If-Match": tag})
    assert moved.status_code == 404, moved.text
    assert task_by_id(client, alice, task_id) == before


def test_a_vouched_update_reads_the_body_on_the_tasks_clock_and_keeps_its_zone(
    client: TestClient, alice: Account
) -> None:
    """A floating DUE is read in the task's zone, which the tag carries, as a lookup would
    read it; a UTC DUE leaves the zone as it is."""
    headers = signed_in(client, alice)
    task_id = make_task(
        client, alice, "Call", due_date="2026-12-01T08:00:00Z", time_zone="Europe/Berlin"
    )
    path = derived_path(None, task_id)
    tag = _tag(client, path, headers)
    assert ".Europe/Berlin." in tag
    floating = vtodo(f"task-{task_id}@task-api", "Call", "DUE:20261202T100000\r\n")
    assert put(client, path, floating, headers, **{"If-Match": tag}).status_code == 204
    task = task_by_id(client, alice, task_id)
    assert (task["due_date"], task["time_zone"]) == ("2026-12-02T09:00:00Z", "Europe/Berlin")
    utc = vtodo(f"task-{task_id}@task-api", "Call", "DUE:20261203T100000Z\r\n")
    tag = _tag(client, path, headers)
    assert put(client, path, utc, headers, **{"If-Match": tag}).status_code == 204
    task = task_by_id(client, alice, task_id)
    assert (task["due_date"], task["time_zone"]) == ("2026-12-03T10:00:00Z", "Europe/Berlin")


def test_a_body_naming_a_parent_under_a_vouching_tag_moves_the_task(
    client: TestClient, alice: Account
) -> None:
    """What the one message does not write (a parent, a rule) goes the lookup's way."""
    headers = signed_in(client, alice)
    parent = make_task(client, alice, "Trip")
    task_id = make_task(client, alice, "Pack")
    path = derived_path(None, task_id)
    body = vtodo(
        f"task-{task_id}@task-api", "Pack", f"RELATED-TO;RELTYPE=PARENT:task-{parent}@task-api\r\n"
    )
    assert (
        put(client, path, body, headers, **{"If-Match": _tag(client, path, headers)}).status_code
        == 204
    )
    assert task_by_id(client, alice, task_id)["parent_id"] == parent
    water = make_task(client, alice, "Water")
    ruled = vtodo(
        f"task-{water}@task-api", "Water", "DUE:20261201T090000Z\r\nRRULE:FREQ=WEEKLY\r\n"
    )
    tag = _tag(client, derived_path(None, water), headers)
    assert VOUCHING.fullmatch(tag)
    answer = put(client, derived_path(None, water), ruled, headers, **{"If-Match": tag})
    assert answer.status_code == 204, answer.text
    assert task_by_id(client, alice, water)["recurrence"] == "FREQ=WEEKLY"


def test_the_tag_moves_with_whatever_the_body_is_made_of(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """Each thing `render` reads, changed alone on the database (no version bumped): the
    tag moves; nothing changed, it stays."""
    headers = signed_in(client, alice)
    parent_path = NO_LIST + "parent.ics"
    made = put(client, parent_path, vtodo("parent"), headers, **{"If-None-Match": "*"})
    assert made.status_code == 201, made.text
    path = NO_LIST + "child.ics"
    child = vtodo("child", "Child", "RELATED-TO;RELTYPE=PARENT:parent\r\n")
    assert put(client, path, child, headers, **{"If-None-Match": "*"}).status_code == 201
    seen = [_tag(client, path, headers)]
    assert seen[0] == _tag(client, path, headers)  # the same values, the same tag
    changes = (
        "UPDATE task_dav_objects SET body = body || ' ' WHERE name = 'child.ics'",
        "UPDATE tasks SET updated_at = updated_at + interval '1 second' WHERE title = 'Child'",
        "UPDATE tasks SET position = position + 1 WHERE title = 'Child'",
        "UPDATE tasks SET reminders = '[{\"minutes_before_due\": 5}]' WHERE title = 'Child'",
        # The parent's object no longer served: the child names its parent's derived UID.
        "UPDATE task_dav_objects SET served = false WHERE name = 'parent.ics'",
    )
    for change in changes:
        with db_engine.begin() as conn:
            conn.execute(sql_text(change))
        seen.append(_tag(client, path, headers))
        assert len(set(seen)) == len(seen), change
    assert b"RELATED-TO;RELTYPE=PARENT:task-" in client.get(path, headers=headers).content


def test_a_delete_without_if_match_is_one_message_and_refuses_as_a_lookup(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """A DELETE naming no version (issue 70): the name's task named to the delete in the
    delete's own message. A viewer's is 403, a stranger's and a missing name's 404, a
    revoked password's 401, nothing deleted; a kept name and a derived one both go."""
    from tests.api.test_app_passwords import basic, create

    list_id = make_list(client, alice, "Garden")
    task_id = make_task(client, alice, "Prune", list_id=list_id)
    join(client, alice, bob, list_id, "viewer")
    viewer = signed_in(client, bob)
    path = derived_path(list_id, task_id)
    assert client.delete(path, headers=viewer).status_code == 403
    hidden = make_list(client, alice, "Shed")
    secret = make_task(client, alice, "Secret", list_id=hidden)
    assert client.delete(derived_path(hidden, secret), headers=viewer).status_code == 404
    owner = signed_in(client, alice)
    assert client.delete(derived_path(list_id, 0), headers=owner).status_code == 404
    made = create(client, alice)
    revoked = basic(made["username"], made["password"])
    assert client.get(path, headers=revoked).status_code == 200  # verified: a hit next
    gone = client.delete(f"/api/app-passwords/{made['id']}", headers=alice.headers)
    assert gone.status_code in (200, 204)
    assert client.delete(path, headers=revoked).status_code == 401
    assert task_by_id(client, alice, task_id)["title"] == "Prune"
    assert task_by_id(client, alice, secret)["title"] == "Secret"
    assert client.delete(path, headers=owner).status_code == 204
    assert client.get(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 404
    kept = NO_LIST + "mine.ics"
    assert put(client, kept, vtodo("mine-uid", "Mine"), owner).status_code == 201
    assert client.delete(kept, headers=owner).status_code == 204
    assert client.get(kept, headers=owner).status_code == 404
    assert client.delete(kept, headers=owner).status_code == 404
    trash = client.get("/api/trash", headers=alice.headers).json()["data"]
    assert {"Prune", "Mine"} <= {each["title"] for each in trash}
