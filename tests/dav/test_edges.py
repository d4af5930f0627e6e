"""The DAV edge (issue 70): every DAV path and method signs in before anything else (no body
parsed, no 404 told to a stranger), no body is a 5xx (an unknown or odd XML encoding
included) and no refusal shows internals, and bodies up to the documented 256 KiB are taken,
refused past it with a DAV error body (not the REST API's 64 KiB JSON 413)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.dav.routes import _EVERY_METHOD
from backend.dav.xml import MAX_BODY_BYTES
from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, put, signed_in, vtodo
from tests.sharing.helpers import make_list

D = "{DAV:}"
# One path of each kind: the root (with and without its slash), the principal, the home, a
# list's and no list's collection, an object, and paths no resource has.
PATHS = (
    "/dav",
    "/dav/",
    "/dav/principal/",
    "/dav/calendars/",
    "/dav/calendars/1/",
    NO_LIST,
    NO_LIST + "a.ics",
    "/dav/calendars/999999/x.ics",
    "/dav/nothing/here",
)
ENCODINGS = ("x-no-such", "hex", "rot13", "utf-7", "utf-32", "idna", "undefined", "x" * 5000)


def _hostile(encoding: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
    ).encode()


def _dav_error(answer: Any, status: int) -> ET.Element:
    assert answer.status_code == status, (answer.request.method, answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/xml"), answer.headers
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    assert root.tag == f"{D}error"
    return root


@pytest.mark.parametrize("method", _EVERY_METHOD)
def test_every_method_on_every_path_signs_in_first(client: TestClient, method: str) -> None:
    """No credential, or a bearer token (never a DAV credential): the one 401 with Basic's
    challenge, whatever the path (one no resource has too) and whatever the body (one
    declaring an encoding no codec reads is never parsed)."""
    for path in PATHS:
        for headers in ({}, {"Authorization": "Bearer not-a-dav-credential"}):
            answer = client.request(method, path, content=_hostile("x-no-such"), headers=headers)
            if method == "HEAD":
                assert answer.status_code == 401, (path, answer.status_code)
                continue
            root = _dav_error(answer, 401)
            assert answer.headers["WWW-Authenticate"].startswith('Basic realm="'), path
            assert root.findtext("{urn:x-task-api:}code") == "UNAUTHORIZED"


def test_a_collection_get_with_a_bearer_token_is_401_not_404(
    client: TestClient, alice: Account
) -> None:
    list_id = make_list(client, alice, "Errands")
    answer = client.get(f"/dav/calendars/{list_id}/", headers=alice.headers)
    _dav_error(answer, 401)


def test_signed_in_a_method_a_resource_does_not_answer_is_405_and_a_missing_path_404(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    refused = client.request("MOVE", NO_LIST + "a.ics", headers=headers)
    _dav_error(refused, 405)
    assert "PUT" in refused.headers["Allow"]
    _dav_error(client.get("/dav/nothing/here", headers=headers), 404)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_body_in_an_encoding_we_cannot_read_is_a_400(
    client: TestClient, alice: Account, encoding: str
) -> None:
    headers = signed_in(client, alice)
    body = _hostile(encoding)
    for method, path in (("PROPFIND", "/dav/"), ("PROPFIND", NO_LIST), ("REPORT", NO_LIST)):
        root = _dav_error(client.request(method, path, content=body, headers=headers), 400)
        message = root.findtext("{urn:x-task-api:}message") or ""
        assert "Error" not in message and "Traceback" not in message, message


def test_a_refusal_shows_no_internals(client: TestClient, alice: Account) -> None:
    """A TZID longer than a file name may be: the refusal says what is wrong with the
    body, never the operating system's error."""
    headers = signed_in(client, alice)
    zone = "Europe/" + "x" * 400
    extra = f"DUE;TZID={zone}:20261201T090000\r\n"
    answer = put(client, NO_LIST + "long.ics", vtodo("long-zone", extra=extra), headers)
    assert 400 <= answer.status_code < 500, answer.text
    for leak in ("Errno", "File name", "Traceback", "/usr/", ".py"):
        assert leak not in answer.text, answer.text


def test_a_70_kib_vtodo_is_stored(client: TestClient, alice: Account) -> None:
    """Past the REST API's 64 KiB, below DAV's documented 256 KiB."""
    headers = signed_in(client, alice)
    text = "x" * 70
    lines = "".join(f"X-NOTE-{n}:{text}\r\n" for n in range(1000))
    body = vtodo("seventy-kib", extra=lines)
    assert 70 * 1024 <= len(body) < MAX_BODY_BYTES
    made = put(client, NO_LIST + "seventy.ics", body, headers)
    assert made.status_code == 201, made.text
    got = client.get(NO_LIST + "seventy.ics", headers=headers)
    assert got.status_code == 200 and b"X-NOTE-999:" + text.encode() in got.content


def test_a_body_past_the_limit_is_413_with_a_dav_error_body(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    past = b"x" * (MAX_BODY_BYTES + 1)
    for method, path in (("PUT", NO_LIST + "big.ics"), ("PROPFIND", NO_LIST), ("REPORT", NO_LIST)):
        root = _dav_error(client.request(method, path, content=past, headers=headers), 413)
        assert root.find("{urn:ietf:params:xml:ns:caldav}max-resource-size") is not None

        # Streamed with no declared length: counted as it arrives.
        def chunks() -> Any:
            for _ in range(5):
                yield b"x" * (MAX_BODY_BYTES // 4)

        streamed = client.request(method, path, content=chunks(), headers=headers)
        _dav_error(streamed, 413)
    assert client.get(NO_LIST + "big.ics", headers=headers).status_code == 404
    # A stranger's large body is not read: the 401 comes first.
    _dav_error(client.request("PUT", NO_LIST + "big.ics", content=past), 401)
