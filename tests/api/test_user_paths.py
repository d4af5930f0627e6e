"""The published contract's paths, /api/{user_id}/tasks...: with the caller's own id they answer
exactly as /api/tasks... does; with any other id, as for a task that does not exist.

(tests/api/test_isolation_routes.py runs every one of these routes with Bob aiming at Alice.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.main import create_app
from tests.conftest import Account, bearer, make_token

MISSING = {"error": {"code": "NOT_FOUND", "message": "Task not found", "details": []}}
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.]+Z")


def _play(client: TestClient, account: Account, base: str) -> list[Any]:
    """Every task route in turn under `base`; what each answered, with what differs between
    two accounts (ids, user ids, timestamps, cursors) replaced by placeholders."""
    seen: list[httpx.Response] = []

    def call(method: str, path: str = "", **kwargs: Any) -> httpx.Response:
        headers = {**account.headers, **kwargs.pop("headers", {})}
        response = client.request(method, base + path, headers=headers, **kwargs)
        seen.append(response)
        return response

    first = call("POST", json={"title": "One", "tags": ["a"]}, headers={"Idempotency-Key": "k"})
    call("POST", json={"title": "One", "tags": ["a"]}, headers={"Idempotency-Key": "k"})
    one = first.json()["data"]["id"]
    etag = first.headers["ETag"]
    two = call("POST", json={"title": "Two", "priority": "high"}).json()["data"]["id"]
    call("GET", params={"limit": 1, "sort": "title"})
    cursor = seen[-1].json()["meta"]["next_cursor"]
    call("GET", params={"limit": 1, "sort": "title", "cursor": cursor})
    call("GET", params={"priority": "high", "include_total": True})
    call("GET", f"/{one}")
    call("GET", f"/{one}", headers={"If-None-Match": etag})
    call("PATCH", f"/{one}", json={"title": "One!"}, headers={"If-Match": '"0-0"'})
    call("PATCH", f"/{one}", json={"title": "One!"}, headers={"If-Match": etag})
    call("PUT", f"/{one}", json={"title": "Uno"})
    call("PATCH", f"/{one}/complete")
    call("PATCH", f"/{one}/complete", json={"completed": False})
    call("POST", "/bulk", json={"operations": [{"op": "complete", "id": two}]})
    call("POST", "/bulk", json={"operations": [{"op": "complete", "id": 999_999}]})
    call("GET", "/stats")
    call("DELETE", "/completed")
    call("DELETE", f"/{one}")
    call("GET", f"/{one}")
    call("PUT", "/stats", json={"title": "x"})
    call("POST", json={"title": ""})

    ids = {one: "<one>", two: "<two>"}

    def normal(value: Any) -> Any:
        """Ids, user ids, timestamps and cursors as placeholders."""
        if isinstance(value, dict):
            # A feed position differs between the two runs (each made its own changes).
            return {
                key: ids.get(item, item)
                if key == "id"
                else "<position>"
                if key == "changes_cursor"
                else normal(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [normal(item) for item in value]
        if value == account.id:
            return "<user>"
        if value == cursor and cursor:
            return "<cursor>"

        if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
            return "<time>"
        return value

    def header(name: str, value: str) -> str:
        if name == "etag":
            number, version = value.strip('"').split("-")
            return f"{ids[int(number)]}-{version}"
        if name == "location":
            path, _, number = value.rpartition("/")
            return f"{path}/{ids[int(number)]}"
        if name == "ratelimit":
            # The two runs are seconds apart, maybe in two windows: what is left of each
            # user's window and when it ends (tests/api/test_rate_limits.py checks the values).
            return re.sub(r";r=\d+;t=\d+", ";r=<left>;t=<seconds>", value)
        return value

    ignore = {"x-request-id", "content-length", "date", "link"}
    return [
        (
            r.status_code,
            normal(r.json()) if r.content else None,
            sorted((k, header(k, v)) for k, v in r.headers.items() if k not in ignore),
            r.headers.get("link"),
        )
        for r in seen
    ]


def test_own_user_id_answers_exactly_like_api_tasks(
    client: TestClient, alice: Account, bob: Account
) -> None:
    canonical = _play(client, alice, "/api/tasks")
    published = _play(client, bob, f"/api/{bob.id}/tasks")
    assert [step[0] for step in published] == [
        201, 201, 201, 200, 200, 200, 200, 304, 412, 200, 200, 200, 200, 200, 404, 200, 200,
        204, 404, 405, 422,
    ]  # fmt: skip
    # Everything is identical but the Link header, which keeps the path the client used.
    assert [step[:3] for step in published] == [step[:3] for step in canonical]
    assert canonical[3][3].startswith("</api/tasks?")
    assert published[3][3].startswith(f"</api/{bob.id}/tasks?")


def test_location_and_replays_name_the_task_however_it_was_created(
    client: TestClient, alice: Account
) -> None:
    key = {**alice.headers, "Idempotency-Key": "either-spelling"}
    created = client.post(f"/api/{alice.id}/tasks", json={"title": "x"}, headers=key)
    task_id = created.json()["data"]["id"]
    assert created.headers["Location"] == f"/api/tasks/{task_id}"
    # One request, whichever spelling of the path a retry takes.
    again = client.post("/api/tasks", json={"title": "x"}, headers=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == created.content


@pytest.mark.parametrize(
    "user_id",
    ["someone-else", "x" * 255, "ALICE", " ", "%2e%2e", "alice@example.com"],
    ids=["other", "longest", "case", "space", "dots", "email"],
)
def test_any_other_user_id_is_a_missing_task(
    client: TestClient, alice: Account, user_id: str
) -> None:
    task_id = client.post("/api/tasks", json={"title": "mine"}, headers=alice.headers).json()[
        "data"
    ]["id"]
    path = f"/api/{quote(user_id, safe='%')}/tasks"
    for method, url, body in [
        ("GET", path, None),
        ("POST", path, {"title": "x"}),
        ("GET", f"{path}/stats", None),
        ("GET", f"{path}/{task_id}", None),
        ("PATCH", f"{path}/{task_id}", {"title": "changed"}),
        ("DELETE", f"{path}/{task_id}", None),
        ("DELETE", f"{path}/completed", None),
    ]:
        response = client.request(method, url, json=body, headers=alice.headers)
        assert (response.status_code, response.json()) == (404, MISSING), (method, url)
    listed = client.get("/api/tasks", headers=alice.headers).json()["data"]
    assert [(t["id"], t["title"]) for t in listed] == [(task_id, "mine")]


def test_the_token_is_checked_before_the_user_id(
    client: TestClient, alice: Account, bob: Account
) -> None:
    for headers in ({}, bearer("forged"), bearer(make_token(exp=1))):
        response = client.get(f"/api/{alice.id}/tasks", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    # A revoked token is a 401 whatever the path says, as on /api/tasks.
    assert client.post("/api/auth/logout-all", headers=bob.headers).status_code == 204
    for path in (f"/api/{alice.id}/tasks", f"/api/{bob.id}/tasks", "/api/tasks"):
        response = client.get(path, headers=bob.headers)
        assert response.json()["error"]["message"] == "This token was revoked", path


def test_input_is_validated_as_on_a_missing_task(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """Bob's invalid body aimed at Alice's id is the 422 his own path gives for a missing task:
    input is checked first, on every path, so the answer tells nothing of the id."""
    body = {"title": "", "nope": 1}
    foreign = client.put(f"/api/{alice.id}/tasks/1", json=body, headers=bob.headers)
    own = client.put(f"/api/{bob.id}/tasks/999999", json=body, headers=bob.headers)
    assert foreign.status_code == own.status_code == 422
    assert foreign.content == own.content


@pytest.mark.parametrize(
    ("segment", "field_type"),
    [("x" * 256, "string_too_long"), ("nul%00byte", "value_error")],
    ids=["too-long", "nul"],
)
def test_a_user_id_no_token_can_carry_is_a_validation_error(
    client: TestClient, alice: Account, segment: str, field_type: str
) -> None:
    response = client.get(f"/api/{segment}/tasks", headers=alice.headers)
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert (detail["field"], detail["type"]) == ("path.user_id", field_type)


def test_external_subjects_with_url_reserved_characters(client: TestClient) -> None:
    """An external issuer's `sub` (here Auth0's `provider|id` style) works percent-encoded.
    (Not one with a `/`: servers decode `%2F` before routing, so only /api/tasks serves it.)"""
    subject = "auth0|65f0 c?#é"
    headers = bearer(make_token(sub=subject))
    path = f"/api/{quote(subject, safe='')}/tasks"
    created = client.post(path, json={"title": "from the published path"}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["data"]["user_id"] == subject
    assert client.get(path + "/", headers=headers).json()["meta"]["count"] == 1


def test_a_write_to_another_id_counts_like_any_write(
    settings: Settings, register: Callable[..., Account]
) -> None:
    """The user id is compared after the write is counted: refused or not, a write counts."""
    limited = settings.model_copy(
        update={
            "rate_limit_enabled": True,
            "rate_limit_task_window_seconds": 3600,
            "rate_limit_task_writes_per_user": 2,
        }
    )
    alice, bob = register(), register()
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        answers = [
            client.post(f"/api/{alice.id}/tasks", json={"title": "x"}, headers=bob.headers)
            for _ in range(5)
        ]
    statuses = [answer.status_code for answer in answers]
    # Two per window: at least two refusals in five, even if a window ends meanwhile.
    assert set(statuses) == {404, 429} and statuses.count(429) >= 2, statuses
