"""A PUT answers the ETag of what it stored (issue 81; specs/caldav.md, "Objects"): where a GET
right after it returns the bytes the client sent, the client's own DTSTAMP and LAST-MODIFIED
with them, the PUT answers that GET's ETag (RFC 4791 5.3.4); where the stored object differs,
none. A later write of the task changes both the bytes and the tag."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, put, signed_in
from tests.sharing.helpers import join, make_list

STAMPS = "DTSTAMP:20261127T132246Z\r\nLAST-MODIFIED:20261127T132301Z\r\n"


def todoman(uid: str, summary: str = "Buy milk", extra: str = "") -> bytes:
    """An object as todoman writes it (its properties in its order, its own stamps)."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:nl.whynothugo.todoman\r\nBEGIN:VTODO\r\n"
        f"CREATED:20261127T132246Z\r\n{STAMPS}{extra}SEQUENCE:1\r\nSTATUS:NEEDS-ACTION\r\n"
        f"SUMMARY:{summary}\r\nUID:{uid}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def _read_back(client: TestClient, path: str, headers: dict[str, str], answer: Any) -> Any:
    """The GET right after a PUT: the bytes sent, under the tag the PUT answered."""
    got = client.get(path, headers=headers)
    assert got.status_code == 200
    assert answer.headers.get("etag") == got.headers["etag"], answer.headers
    return got


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"If-None-Match": "*"}, "vouched"),  # a create needing nothing read, an If-Match update
        ({}, "plain"),  # a create after the guess found the name free, a plain update
        ({}, "looked up"),  # `If-Match: *`: the lookup, then the write
    ],
)
def test_a_put_answers_the_tag_of_the_bytes_it_stored(
    client: TestClient, alice: Account, first: dict[str, str], then: str
) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "milk.ics"
    body = todoman("milk@vm")
    made = put(client, path, body, headers, **first)
    assert made.status_code == 201, made.text
    assert _read_back(client, path, headers, made).content == body
    edited = todoman("milk@vm", extra="PRIORITY:1\r\n").replace(b"SEQUENCE:1", b"SEQUENCE:2")
    condition = {"vouched": {"If-Match": made.headers["etag"]}, "plain": {}}
    written = put(client, path, edited, headers, **condition.get(then, {"If-Match": "*"}))
    assert written.status_code == 204, written.text
    assert written.headers["etag"] != made.headers["etag"]
    assert _read_back(client, path, headers, written).content == edited


def test_a_members_put_answers_the_tag_it_reads(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """An editor writing in the owner's list: the tag is the member's (its own reminders,
    none), and the owner reads the same bytes, the client's stamps with them."""
    list_id = make_list(client, alice, "Garden")
    join(client, alice, bob, list_id, "editor")
    editor, owner = signed_in(client, bob), signed_in(client, alice)
    path = f"/dav/calendars/{list_id}/rose.ics"
    made = put(client, path, todoman("rose@vm", "Roses"), editor)
    assert made.status_code == 201, made.text
    assert _read_back(client, path, editor, made).content == todoman("rose@vm", "Roses")
    edited = todoman("rose@vm", "Prune the roses")
    written = put(client, path, edited, editor, **{"If-Match": made.headers["etag"]})
    assert written.status_code == 204, written.text
    assert _read_back(client, path, editor, written).content == edited
    assert client.get(path, headers=owner).content == edited


def test_a_rest_edit_changes_the_bytes_and_the_tag(client: TestClient, alice: Account) -> None:
    """After a REST write the stamps are the task's last change, and the object's new tag is
    the one a write must name: the PUT's is stale."""
    headers = signed_in(client, alice)
    path = NO_LIST + "bread.ics"
    made = put(client, path, todoman("bread@vm", "Bread"), headers, **{"If-None-Match": "*"})
    assert made.status_code == 201
    [task] = client.get("/api/tasks", headers=alice.headers).json()["data"]
    patched = client.patch(
        f"/api/tasks/{task['id']}", headers=alice.headers, json={"priority": "high"}
    )
    assert patched.status_code == 200
    got = client.get(path, headers=headers)
    assert got.headers["etag"] != made.headers["etag"]
    assert STAMPS.encode() not in got.content
    stamp = patched.json()["data"]["updated_at"][:19].replace("-", "").replace(":", "")
    assert f"DTSTAMP:{stamp}Z\r\n".encode() in got.content
    stale = put(
        client, path, todoman("bread@vm", "Rye"), headers, **{"If-Match": made.headers["etag"]}
    )
    assert stale.status_code == 412


@pytest.mark.parametrize(
    "body",
    [
        # Line ends kept as CRLF (RFC 5545 3.1): not the bytes sent.
        todoman("lf@vm").replace(b"\r\n", b"\n"),
        # Reminders are the reader's, written as our VALARMs.
        todoman("alarm@vm").replace(
            b"END:VTODO",
            b"DUE:20261201T090000Z\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Milk\r\n"
            b"TRIGGER;RELATED=END:-PT15M\r\nEND:VALARM\r\nEND:VTODO",
        ),
        # A title the text rule stores otherwise (trimmed).
        todoman("spaces@vm", "  Buy milk  "),
    ],
    ids=["bare LF", "VALARM", "trimmed title"],
)
def test_a_put_stored_otherwise_answers_no_tag(
    client: TestClient, alice: Account, body: bytes
) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "other.ics"
    made = put(client, path, body, headers, **{"If-None-Match": "*"})
    assert made.status_code == 201, made.text
    assert "etag" not in made.headers
    assert client.get(path, headers=headers).content != body
