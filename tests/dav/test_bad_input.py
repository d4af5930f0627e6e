"""Hostile bytes in a DAV request's path or headers (issue 62, "Bad input"): for every
declared DAV method (backend/dav/routes.py `acts_by_method`) and every resource, a NUL, a
control character, bytes that are not UTF-8 or not ASCII, in the path and in each header a
client sends (and in the Basic credential itself), are never a 5xx; a refusal is a 4xx with
a DAV error body (`D:error`), or the API's JSON envelope where the edge refuses first. A
hostile path writes nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, signed_in, vtodo
from tests.sharing.helpers import make_task
from tests.sharing.references import DAV_ROUTES

HOSTILE = (b"\x00", b"a\x00b", b"\r", b"\x7f", b"\xff\xfe", b'"o\x00"', b"1\x00")
HEADERS = ("If-Match", "If-None-Match", "Depth", "Content-Type", "Brief", "Prefer", "Destination")
# (Bytes that are not UTF-8 make an odd name, not a hostile one: kept and served under it.)
PATHS = ("%00", "a%00b", "%0d%0a", "%7f", "1%00", "%00.ics")


def _error_shape(answer: Any) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    if answer.request.method != "HEAD":
        kind = answer.headers.get("content-type", "")
        assert "xml" in kind or "json" in kind, kind
        assert b"error" in answer.content


def _state(client: TestClient, alice: Account) -> Any:
    return client.get("/api/tasks", headers=alice.headers).json()["data"]


def test_hostile_bytes_in_a_dav_path_are_4xx(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    task_id = make_task(client, alice, "Water the plants")
    before = _state(client, alice)
    for method, template in sorted(DAV_ROUTES):
        for bad in PATHS:
            paths = [f"/dav/calendars/{bad}/"] if "{name" not in template else []
            if "{name" in template:
                paths += [NO_LIST + bad, f"/dav/calendars/{bad}/task-{task_id}@task-api.ics"]
            for path in paths:
                body = vtodo(f"task-{task_id}@task-api") if method == "PUT" else b""
                answer = client.request(method, path, content=body, headers=headers)
                _error_shape(answer)
    assert _state(client, alice) == before


def test_hostile_bytes_in_dav_headers_are_never_a_5xx(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    task_id = make_task(client, alice, "Water the plants")
    path = f"{NO_LIST}task-{task_id}@task-api.ics"
    # A header it ignores leaves a request as it was (a DELETE deletes): what is asserted is
    # the status, and a refusal's error body.
    for method, template in sorted(DAV_ROUTES):
        target = path if "{name" in template else NO_LIST
        body = vtodo("other-uid") if method == "PUT" else b""
        for value in HOSTILE:
            for name in HEADERS:
                answer = client.request(
                    method, target, content=body, headers={**headers, name: value}
                )
                assert answer.status_code < 500, (method, name, value, answer.text)
                if answer.status_code >= 400:
                    _error_shape(answer)
            refused = client.request(
                method, target, content=body, headers={"Authorization": b"Basic " + value}
            )
            # 401 first, whatever the method's body (none is read before the sign-in).
            assert refused.status_code == 401, (method, value, refused.text)
            _error_shape(refused)
