"""A collection's own writes over real HTTP (issue 70; specs/api-contract.md, "CalDAV"):
PROPPATCH renames and recolours a list (207, one propstat per property, all or nothing),
DELETE trashes it, with REST's roles and refusals (the role matrix sends both for every
standing: tests/sharing/test_role_matrix.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, signed_in
from tests.sharing.helpers import join, make_list, make_task

D = "{DAV:}"
A = "{http://apple.com/ns/ical/}"


def _proppatch(client: TestClient, path: str, headers: dict[str, str], inner: str) -> Any:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:A="http://apple.com/ns/ical/" xmlns:X="urn:x-other:">{inner}</D:propertyupdate>'
    )
    return client.request("PROPPATCH", path, content=body, headers=headers)


def _statuses(answer: Any) -> dict[str, str]:
    """Each property's status in a PROPPATCH's 207."""
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    found: dict[str, str] = {}
    for propstat in root.iter(f"{D}propstat"):
        status = (propstat.findtext(f"{D}status") or "").split()[1]
        for prop in propstat.find(f"{D}prop") or []:
            assert prop.tag not in found, prop.tag
            found[prop.tag] = status
    return found


def _list(client: TestClient, who: Account, list_id: int) -> dict[str, Any]:
    got = client.get(f"/api/lists/{list_id}", headers=who.headers)
    assert got.status_code == 200, got.text
    return dict(got.json()["data"])


def test_proppatch_renames_and_recolours_with_a_propstat_per_property(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    list_id = make_list(client, alice, "Errands")
    path = f"/dav/calendars/{list_id}/"
    answer = _proppatch(
        client,
        path,
        headers,
        "<D:set><D:prop><D:displayname>Chores</D:displayname>"
        "<A:calendar-color>#2E7D32FF</A:calendar-color></D:prop></D:set>",
    )
    assert _statuses(answer) == {f"{D}displayname": "200", f"{A}calendar-color": "200"}
    assert {k: _list(client, alice, list_id)[k] for k in ("name", "color")} == {
        "name": "Chores",
        "color": "#2e7d32",
    }
    # Removing the colour clears it.
    cleared = _proppatch(
        client, path, headers, "<D:remove><D:prop><A:calendar-color/></D:prop></D:remove>"
    )
    assert _statuses(cleared) == {f"{A}calendar-color": "200"}
    assert _list(client, alice, list_id)["color"] is None


def test_proppatch_is_all_or_nothing(client: TestClient, alice: Account) -> None:
    """A property we do not write (403), or a value the list rules refuse (409): the others
    are 424 and nothing changes."""
    headers = signed_in(client, alice)
    list_id = make_list(client, alice, "Errands")
    path = f"/dav/calendars/{list_id}/"
    unknown = _proppatch(
        client,
        path,
        headers,
        "<D:set><D:prop><D:displayname>Chores</D:displayname><X:order>3</X:order></D:prop></D:set>",
    )
    assert _statuses(unknown) == {f"{D}displayname": "424", "{urn:x-other:}order": "403"}
    bad = _proppatch(
        client,
        path,
        headers,
        "<D:set><D:prop><D:displayname>Chores</D:displayname>"
        "<A:calendar-color>red</A:calendar-color></D:prop></D:set>",
    )
    assert _statuses(bad) == {f"{D}displayname": "424", f"{A}calendar-color": "409"}
    unnamed = _proppatch(
        client, path, headers, "<D:remove><D:prop><D:displayname/></D:prop></D:remove>"
    )
    assert _statuses(unnamed) == {f"{D}displayname": "403"}
    assert _list(client, alice, list_id)["name"] == "Errands"
    # A name another list of the caller's has: REST's 409, as a DAV error body.
    make_list(client, alice, "Taken")
    taken = _proppatch(
        client,
        path,
        headers,
        "<D:set><D:prop><D:displayname>taken</D:displayname></D:prop></D:set>",
    )
    assert taken.status_code == 409 and b"D:error" in taken.content, taken.text
    # Not a propertyupdate: 400.
    assert client.request("PROPPATCH", path, content=b"<x/>", headers=headers).status_code == 400


def test_delete_of_a_collection_trashes_its_list_and_tasks(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    list_id = make_list(client, alice, "Old project")
    task_id = make_task(client, alice, "Left over", list_id=list_id)
    path = f"/dav/calendars/{list_id}/"
    # A collection serves no ETag: an If-Match naming one cannot match.
    assert client.delete(path, headers={**headers, "If-Match": '"x"'}).status_code == 412
    assert client.delete(path, headers=headers).status_code == 204
    assert client.get(f"/api/lists/{list_id}", headers=alice.headers).status_code == 404
    trash = client.get("/api/trash", headers=alice.headers).json()["data"]
    assert task_id in {entry["id"] for entry in trash}
    gone = client.request("PROPFIND", path, headers={**headers, "Depth": "0"})
    assert gone.status_code == 404
    assert client.delete(path, headers=headers).status_code == 404


def test_the_tasks_in_no_list_and_a_members_roles(
    client: TestClient, alice: Account, bob: Account
) -> None:
    headers = signed_in(client, alice)
    assert client.delete(NO_LIST, headers=headers).status_code == 403
    renamed = _proppatch(
        client, NO_LIST, headers, "<D:set><D:prop><D:displayname>X</D:displayname></D:prop></D:set>"
    )
    assert renamed.status_code == 403
    theirs = make_list(client, bob, "Bob's")
    join(client, bob, alice, theirs, "editor")
    path = f"/dav/calendars/{theirs}/"
    # An editor may neither rename nor delete (REST's roles): 403, nothing changed.
    assert client.delete(path, headers=headers).status_code == 403
    refused = _proppatch(
        client, path, headers, "<D:set><D:prop><D:displayname>Mine</D:displayname></D:prop></D:set>"
    )
    assert refused.status_code == 403
    assert _list(client, bob, theirs)["name"] == "Bob's"
    # A read password writes nothing.
    reading = signed_in(client, alice, "read")
    assert (
        client.delete(f"/dav/calendars/{make_list(client, alice)}/", headers=reading).status_code
        == 403
    )
