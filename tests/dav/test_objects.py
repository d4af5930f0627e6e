"""A collection's objects over real HTTP (issue 62; specs/caldav.md, "Objects"): GET, PUT and
DELETE of a task as a VTODO through the task service, with ETags and preconditions; a
collection's listing and its REPORTs; sharing through the access relation; fidelity of what a
client sent; the trash keeping the client's object."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.api.test_app_passwords import basic, create
from tests.conftest import Account
from tests.sharing.helpers import join, make_list, make_task, remove_member

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
NO_LIST = "/dav/calendars/no-list/"


def signed_in(client: TestClient, who: Account, scope: str = "read_write") -> dict[str, str]:
    made = create(client, who, f"client {scope}", scope=scope)
    return basic(made["username"], made["password"])


def vtodo(uid: str, summary: str = "Water the plants", extra: str = "") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VTODO\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261116T090245Z\r\nSUMMARY:{summary}\r\n"
        f"STATUS:NEEDS-ACTION\r\n{extra}END:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def put(
    client: TestClient, path: str, body: bytes, headers: dict[str, str], **extra: str
) -> Any:
    sent = {**headers, "Content-Type": "text/calendar; charset=utf-8", **extra}
    return client.put(path, content=body, headers=sent)


def responses(answer: Any) -> dict[str, ET.Element]:
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    return {r.findtext(f"{D}href") or "": r for r in root.iter(f"{D}response")}


def task_of(client: TestClient, who: Account, title: str) -> dict[str, Any]:
    listed = client.get("/api/tasks", params={"limit": 100}, headers=who.headers).json()["data"]
    [task] = [t for t in listed if t["title"] == title]
    return dict(task)


def test_put_creates_a_task_and_get_serves_it_with_its_etag(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "abc-1@example.com.ics"
    made = put(client, path, vtodo("abc-1@example.com"), headers, **{"If-None-Match": "*"})
    assert made.status_code == 201, made.text
    task = task_of(client, alice, "Water the plants")
    assert task["completed"] is False
    got = client.get(path, headers=headers)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/calendar")
    assert b"UID:abc-1@example.com" in got.content
    tag = got.headers["etag"]
    assert tag.startswith('"') and client.get(path, headers=headers).headers["etag"] == tag
    again = put(client, path, vtodo("abc-1@example.com"), headers, **{"If-None-Match": "*"})
    assert again.status_code == 412
