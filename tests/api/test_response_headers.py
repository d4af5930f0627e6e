"""HEAD on every GET route, and the protective headers on every response (issue 13, items 6
and 8).

- HEAD answers like GET (status and headers, ETag and 304 included) with no body (RFC 9110
  9.3.2); a 405 lists HEAD wherever GET is allowed.
- OWASP's headers for a JSON API on every response of every route, success or error:
  `Cache-Control: no-store` (tokens, tasks and errors must not sit in a shared or browser
  cache), `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and
  `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`. The documentation
  pages (HTML) keep their scripts but may not be framed, and may be cached. HSTS only when
  configured. The real server (uvicorn) sends no `server` banner.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.main import create_app
from backend.services.statements.tokens import token_hash
from tests.conftest import Account, bearer, make_token
from tests.resources import (
    creators,
    fill_path,
    in_state,
    make_row,
    path_parameters,
    the_app_routes,
)

SPEC = json.loads((Path(__file__).resolve().parents[2] / "specs" / "openapi.json").read_text())
OPERATIONS = sorted(
    (method.upper(), path) for path, item in SPEC["paths"].items() for method in item
)
GET_PATHS = sorted(path for method, path in OPERATIONS if method == "GET")
DOCS_PATHS = ["/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"]

API_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
DOCS_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}
# Headers that legitimately differ between two answers to the same request.
# `ratelimit`: a counted GET (a calendar feed's) has one fewer request left the second time.
VOLATILE = {"date", "x-request-id", "content-length", "ratelimit"}


def assert_api_headers(response: httpx.Response, what: object = "") -> None:
    for name, value in API_HEADERS.items():
        assert response.headers.get(name) == value, (what, response.status_code, name)
    assert "strict-transport-security" not in response.headers, what
    assert "server" not in response.headers, what


def _body(method: str, path: str, task_id: int) -> dict[str, Any]:
    """A plausible request for each operation (the headers are checked whatever the status)."""
    email = f"h-{uuid.uuid4().hex[:12]}@example.com"
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/tasks"): {"json": {"title": "headers"}},
        ("PUT", "/api/tasks/{task_id}"): {"json": {"title": "replaced"}},
        ("PATCH", "/api/tasks/{task_id}"): {"json": {"title": "patched"}},
        ("POST", "/api/tasks/bulk"): {"json": {"operations": [{"op": "complete", "id": task_id}]}},
        ("POST", "/api/auth/register"): {"json": {"email": email, "password": "password-123"}},
        ("POST", "/api/auth/login"): {"json": {"email": email, "password": "password-123"}},
        ("POST", "/api/auth/token"): {"data": {"username": email, "password": "password-123"}},
    }
    return bodies.get((method, path), {})


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_route_sends_the_protective_headers(
    client: TestClient, register: Callable[..., Account], method: str, path: str
) -> None:
    account = register()  # its own: some of these sign out or delete the account
    task_id = client.post("/api/tasks", json={"title": "t"}, headers=account.headers).json()[
        "data"
    ]["id"]
    url = path.replace("{task_id}", str(task_id))
    kwargs = _body(method, path, task_id)
    authenticated = client.request(method, url, headers=account.headers, **kwargs)
    assert authenticated.status_code < 500, authenticated.text
    assert_api_headers(authenticated, (method, path, "with token"))
    anonymous = client.request(method, url, **kwargs)
    assert_api_headers(anonymous, (method, path, "without token"))
    forged = client.request(method, url, headers=bearer("not-a-jwt"), **kwargs)
    assert_api_headers(forged, (method, path, "bad token"))


def test_error_responses_from_every_layer_send_them(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    cases = {
        "404 unknown path": client.get("/nowhere"),
        "405": client.put("/api/tasks/stats", headers=alice.headers),
        "413": client.post("/api/tasks", content=b"x" * 70_000, headers=alice.headers),
        "422": client.get("/api/tasks?limit=0", headers=alice.headers),
        "refused preflight": client.options(
            "/api/tasks",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        ),
        "preflight": client.options(
            "/api/tasks",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
        ),
        "304": client.get(
            f"/api/tasks/{_task(client, alice)['id']}",
            headers={**alice.headers, "If-None-Match": "*"},
        ),
    }
    for label, response in cases.items():
        assert_api_headers(response, label)
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("unexpected")

    with TestClient(app, raise_server_exceptions=False) as crashing:
        response = crashing.get("/boom")
    assert response.status_code == 500
    assert_api_headers(response, "500")


def _task(client: TestClient, account: Account) -> dict[str, Any]:
    response = client.post("/api/tasks", json={"title": "etag"}, headers=account.headers)
    data: dict[str, Any] = response.json()["data"]
    return data


def test_etag_and_304_still_work_under_no_store(client: TestClient, alice: Account) -> None:
    task = _task(client, alice)
    first = client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert first.headers["cache-control"] == "no-store"
    etag = first.headers["etag"]
    again = client.get(f"/api/tasks/{task['id']}", headers={**alice.headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert again.content == b""


@pytest.mark.parametrize("path", DOCS_PATHS)
def test_documentation_pages_cannot_be_framed_and_may_be_cached(
    client: TestClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    for name, value in DOCS_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    assert "no-store" not in response.headers.get("cache-control", "")


def test_documentation_assets_send_them_too(client: TestClient) -> None:
    html = client.get("/docs").text
    asset = re.search(r'(/static-offline-docs/[^"\']+\.js)', html)
    assert asset, html[:500]
    response = client.get(asset.group(1))
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    missing = client.get("/static-offline-docs/no-such-file.js")
    assert missing.status_code == 404
    assert missing.headers["cache-control"] == "no-store"


@pytest.fixture(scope="module")
def hsts_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"hsts_max_age_seconds": 31_536_000}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_hsts_only_when_configured(hsts_client: TestClient) -> None:
    for path in ("/health", "/api/tasks", "/docs"):
        response = hsts_client.get(path)
        assert response.headers["strict-transport-security"] == "max-age=31536000", path


# HEAD

MAKERS = creators(the_app_routes())


def _confirmation_link(engine: Engine, who: Account) -> str:
    """The query of a confirmation mail's link for `who`, made as the server makes one (its
    token's SHA-256 stored; tests/reminders follow the mail itself)."""
    token = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notification_settings"
                " (user_id, email_address, confirm_token_hash, confirm_sent_at)"
                " VALUES (:user, 'head@example.com', :hash, now())"
                " ON CONFLICT (user_id) DO UPDATE SET confirm_token_hash = :hash,"
                " email_address = 'head@example.com', confirm_sent_at = now()"
            ),
            {"user": who.id, "hash": token_hash(token)},
        )
    return f"?user={quote(who.id, safe='')}&token={token}"


# GET routes whose query is a credential a mail carried: the query each needs, made for alice.
LINK_QUERIES: dict[str, Callable[[Engine, Account], str]] = {
    "/api/notification-settings/confirm": _confirmation_link,
}


def _head_and_get(
    client: TestClient, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    return client.get(path, headers=headers), client.head(path, headers=headers)


@pytest.mark.parametrize("path", [*GET_PATHS, *DOCS_PATHS, "/metrics"])
def test_head_answers_every_get_route_like_get_without_a_body(
    client: TestClient, alice: Account, path: str, db_engine: Engine
) -> None:
    task = _task(client, alice)
    listed = client.post("/api/lists", json={"name": "a list"}, headers=alice.headers)
    # A conversation is made by a chat turn (a model server: tests/chat/); here, a row.
    with db_engine.begin() as conn:
        made = "INSERT INTO conversations (user_id) VALUES (:user) RETURNING id"
        conversation = conn.execute(text(made), {"user": alice.id}).scalar_one()
    # A calendar feed's URL carries its token (issue 52).
    feed = client.post("/api/calendar-feeds", json={}, headers=alice.headers).json()["data"]
    feed_token = feed["url"].rsplit("/", 1)[1].removesuffix(".ics")
    url = (
        path.replace("{conversation_id}", str(conversation))
        .replace("{token}", feed_token)
        .replace("{task_id}", str(task["id"]))
        .replace("{list_id}", str(listed.json()["data"]["id"]))
        .replace("{user_id}", alice.id)
    )
    # Any other id (a saved filter's, a new resource's, a task's child's): a row made through
    # its collection, under the same task and list as the path names.
    known: dict[str, int] = {"task_id": task["id"], "list_id": listed.json()["data"]["id"]}
    for name in path_parameters(url):
        make_row(client, alice, name, known, MAKERS)
    if "{task_id}" in path:  # in the state the route declares (`acts(..., task=...)`)
        in_state(client, alice, known["task_id"], "GET", path)
    url = fill_path(url, known)
    if path in LINK_QUERIES:
        url += LINK_QUERIES[path](db_engine, alice)
    got, head = _head_and_get(client, url, alice.headers)
    assert got.status_code == 200, (path, got.text[:200])
    assert head.status_code == got.status_code, (path, head.status_code)
    assert head.content == b""
    same = {k: v for k, v in got.headers.items() if k not in VOLATILE}
    assert {k: v for k, v in head.headers.items() if k not in VOLATILE} == same, path
    if got.headers["content-type"].startswith(("text/event-stream", "application/zip")):
        # A live stream or an export has no length (it is streamed), so neither has its HEAD.
        assert "content-length" not in got.headers and "content-length" not in head.headers
    elif path != "/metrics":  # its counters grow between the two requests
        assert head.headers["content-length"] == str(len(got.content)), path


def test_head_keeps_the_get_semantics(client: TestClient, alice: Account) -> None:
    task = _task(client, alice)
    url = f"/api/tasks/{task['id']}"
    etag = client.get(url, headers=alice.headers).headers["etag"]
    not_modified = client.head(url, headers={**alice.headers, "If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["etag"] == etag
    unauthenticated = client.head(url)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert unauthenticated.content == b""
    assert client.head("/api/tasks/999999", headers=alice.headers).status_code == 404
    assert client.head("/api/tasks/abc", headers=alice.headers).status_code == 422
    assert client.head(f"{url}/", headers=alice.headers).status_code == 200  # trailing slash


def test_head_is_not_allowed_where_get_is_not(client: TestClient, alice: Account) -> None:
    response = client.head("/api/tasks/bulk", headers=alice.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.content == b""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/tasks/stats", "GET, HEAD"),
        ("PATCH", "/api/tasks", "GET, HEAD, POST"),
        ("POST", "/api/tasks/1", "GET, HEAD, PUT, PATCH, DELETE"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
def test_405_allow_lists_head_with_get(
    client: TestClient, alice: Account, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, headers=alice.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == allow


def test_head_is_counted_as_head(app: FastAPI, client: TestClient, alice: Account) -> None:
    """The access log and metrics see the method the client sent, and the matched route."""
    client.head("/api/tasks", headers=alice.headers)
    metrics = client.get("/metrics").text
    assert re.search(
        r'http_requests_total\{method="HEAD",route="/api/tasks",status="200"\}', metrics
    )


def test_real_server_answers_head_and_sends_no_banner(live_server: str) -> None:
    token = make_token(sub="head-user")
    with httpx.Client(base_url=live_server, headers=bearer(token), timeout=10) as http:
        got = http.get("/api/tasks")
        head = http.head("/api/tasks")
        assert got.status_code == head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        for response in (got, head, http.get("/nowhere"), http.get("/docs")):
            assert "server" not in response.headers
            assert response.headers["x-content-type-options"] == "nosniff"
