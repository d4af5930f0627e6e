"""DAV through the real `serve` process (uvicorn, its access log at DEBUG): discovery and a
list's collection answer, a wrong and a revoked password are 401, and neither the password nor
any Basic header sent reaches a line the server wrote."""

from __future__ import annotations

from base64 import b64encode

import httpx
import pytest

from tests.conftest import running_server


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
