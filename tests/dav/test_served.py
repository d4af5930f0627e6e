"""DAV through the real `serve` process (uvicorn, its access log at DEBUG): discovery and a
list's collection answer, a wrong and a revoked password are 401, and neither the password nor
any Basic header sent reaches a line the server wrote."""

from __future__ import annotations

import re
import socket
import time
from base64 import b64encode

import httpx
import pytest

from tests.conftest import running_server
from tests.rawhttp import port_of


def _basic(username: str, password: str) -> str:
    return "Basic " + b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.e2e  # a server process of its own (its log read at DEBUG)
def test_dav_through_a_served_process_logs_no_credential(database_url: str) -> None:
    with running_server(database_url, LOG_LEVEL="DEBUG") as (base_url, _, log):
        with httpx.Client(base_url=base_url, timeout=30) as http:
            body = {"email": "served-dav@example.com", "password": "password-123"}
            registered = http.post("/api/auth/register", json=body)
            assert registered.status_code == 201, registered.text
            bearer = {"Authorization": "Bearer " + registered.json()["data"]["access_token"]}
            made_list = http.post("/api/lists", json={"name": "Errands"}, headers=bearer)
            list_id = made_list.json()["data"]["id"]
            made = http.post("/api/app-passwords", json={"name": "phone"}, headers=bearer)
            assert made.status_code == 201, made.text
            data = made.json()["data"]
            assert data["dav_url"] == f"{base_url}/dav/"
            right = _basic(data["username"], data["password"])
            wrong = _basic(data["username"], "tapw_" + "z" * 43)
            well_known = http.request("PROPFIND", "/.well-known/caldav")
            assert (well_known.status_code, well_known.headers["location"]) == (301, "/dav/")
            for path in ("/dav/", "/dav/calendars/", f"/dav/calendars/{list_id}/"):
                answer = http.request(
                    "PROPFIND", path, headers={"Authorization": right, "Depth": "1"}
                )
                assert answer.status_code == 207, (path, answer.text)
            assert b"Errands" in answer.content
            refused = http.request("PROPFIND", "/dav/", headers={"Authorization": wrong})
            assert refused.status_code == 401
            revoked = http.delete(f"/api/app-passwords/{data['id']}", headers=bearer)
            assert revoked.status_code == 204
            after = http.request("PROPFIND", "/dav/", headers={"Authorization": right})
            assert after.status_code == 401
        written = log.read_text()
    assert "/dav/calendars/{segment}" in written  # the access log has the DAV requests
    for secret in (data["password"], data["password"][5:], right[6:], wrong[6:]):
        assert secret not in written


def _cut(port: int, head: str, part: bytes) -> None:
    """A request whose headers promise more body than is sent before the socket closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + part)
        time.sleep(0.2)  # the server is reading the body when the client goes away


def test_a_dav_body_cut_by_its_client_is_its_abort_not_an_error(database_url: str) -> None:
    """Issue 90: a PROPFIND or PUT whose client goes away mid-body was a 500 with a traceback
    (`ClientDisconnect` from the body's stream); it is the client's abort, logged at INFO, as
    an upload's is."""
    with running_server(database_url, RATE_LIMIT_ENABLED="false") as (base_url, _, log):
        with httpx.Client(base_url=base_url, timeout=30) as http:
            body = {"email": "cut-dav@example.com", "password": "password-123"}
            registered = http.post("/api/auth/register", json=body)
            assert registered.status_code == 201, registered.text
            bearer = {"Authorization": "Bearer " + registered.json()["data"]["access_token"]}
            list_id = http.post("/api/lists", json={"name": "Cut"}, headers=bearer).json()
            made = http.post("/api/app-passwords", json={"name": "phone"}, headers=bearer)
            data = made.json()["data"]
            right = _basic(data["username"], data["password"])
            port = port_of(base_url)
            common = f"Host: 127.0.0.1\r\nAuthorization: {right}\r\nContent-Length: 4000\r\n"
            _cut(
                port,
                f"PROPFIND /dav/ HTTP/1.1\r\n{common}Depth: 0\r\n"
                "Content-Type: application/xml\r\n\r\n",
                b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop>',
            )
            _cut(
                port,
                f"PUT /dav/calendars/{list_id['data']['id']}/cut.ics HTTP/1.1\r\n{common}"
                "Content-Type: text/calendar\r\n\r\n",
                b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n",
            )
            deadline = time.monotonic() + 10
            while log.read_text().count("client's abort") < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            # The server is well: the next request is answered.
            after = http.request("PROPFIND", "/dav/", headers={"Authorization": right})
            assert after.status_code == 207
        written = log.read_text()
    assert written.count("client's abort") == 2, written[-3000:]
    assert "Traceback" not in written and "ClientDisconnect" not in written, written[-3000:]
    assert not re.search(r'\bERROR\b|"level": "ERROR"| 500 ', written), written[-3000:]
