"""Identity on /mcp: the REST routes' bearer check, before any tool runs. Missing, malformed,
forged, expired, revoked and wrong-issuer tokens are HTTP 401 with WWW-Authenticate and the
REST error envelope, and nothing is written. JWKS tokens (an external issuer) work, and then
the RFC 9728 metadata names that issuer; with the built-in issuer alone nothing is advertised."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from mcp.shared.exceptions import MCPError
from sqlalchemy import Engine

from backend.config import Settings
from backend.main import create_app
from tests.conftest import TEST_SECRET, Account, bearer, count_rows, make_token
from tests.jwks_server import JwksServer, SigningKey
from tests.mcp.conftest import MODES, call_tool_rpc, mcp_client, post_rpc, run

ISSUER = "http://127.0.0.1:3000"
ADD = {"name": "add_task", "arguments": {"title": "must not be written"}}


def _assert_401(response: httpx.Response, message: str, challenge: str = "Bearer") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == challenge
    assert response.json() == {"error": {"code": "UNAUTHORIZED", "message": message, "details": []}}


def test_missing_or_invalid_tokens_are_401_before_any_tool_runs(
    live_server: str, alice: Account, db_engine: Engine
) -> None:
    url = f"{live_server}/mcp"
    missing = "Missing bearer token"
    invalid = "Invalid or expired token"
    cases: list[tuple[dict[str, str], str]] = [
        ({}, missing),
        ({"Authorization": f"Basic {alice.token}"}, missing),
        ({"Authorization": alice.token}, missing),
        (bearer("not-a-jwt"), invalid),
        (bearer(alice.token[:-4] + "AAAA"), invalid),
        (bearer(make_token(sub=alice.id, lifetime=-120)), invalid),
        (bearer(make_token(sub=alice.id, secret="another-secret-" + "x" * 32)), invalid),
        (bearer(make_token(sub=alice.id, algorithm="HS384")), invalid),
        (bearer(make_token(sub="")), invalid),
    ]
    with httpx.Client(timeout=30) as http:
        for headers, message in cases:
            for method, params in (("tools/call", ADD), ("tools/list", None)):
                _assert_401(post_rpc(http, url, method, params, headers), message)
            _assert_401(http.get(url, headers=headers), message)
        # The same token is fine.
        assert post_rpc(http, url, "tools/list", None, alice.headers).status_code == 200
        assert (
            http.get(f"{live_server}/.well-known/oauth-protected-resource/mcp").status_code == 404
        )
    assert count_rows(db_engine, "tasks") == 0


def test_revoked_tokens_and_deleted_accounts_are_401(
    live_server: str, register: Any, db_engine: Engine
) -> None:
    url = f"{live_server}/mcp"
    revoked, deleted = register(), register()
    with httpx.Client(base_url=live_server, timeout=30) as http:
        assert call_tool_rpc(http, url, revoked.token, "list_tasks", {})["isError"] is False
        assert http.post("/api/auth/logout-all", headers=revoked.headers).status_code == 204
        _assert_401(
            post_rpc(http, url, "tools/call", ADD, revoked.headers), "This token was revoked"
        )
        assert http.delete("/api/auth/me", headers=deleted.headers).status_code == 204
        _assert_401(
            post_rpc(http, url, "tools/call", ADD, deleted.headers),
            "The account for this token no longer exists",
        )
    assert count_rows(db_engine, "tasks") == 0


@pytest.mark.parametrize("mode", MODES)
def test_the_sdk_client_is_refused_without_a_valid_token(live_server: str, mode: str) -> None:
    for token in (None, "not-a-jwt", make_token(lifetime=-120)):
        statuses: list[int] = []

        async def connect(token: str | None = token, statuses: list[int] = statuses) -> None:
            async with mcp_client(live_server, token, mode=mode, statuses=statuses) as client:
                await client.list_tools()

        with pytest.raises(BaseExceptionGroup) as refused:
            run(connect)
        assert refused.group_contains(MCPError), refused.value
        assert statuses and set(statuses) == {401}


def test_only_post_is_served_without_redirect_or_session_within_the_body_limit(
    live_server: str, alice: Account
) -> None:
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        for method in ("GET", "DELETE", "PUT"):
            response = http.request(method, f"{live_server}/mcp", headers=alice.headers)
            assert response.status_code == 405
            assert response.headers["allow"] == "POST"
            assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
        response = post_rpc(http, f"{live_server}/mcp/", "tools/list", None, alice.headers)
        assert response.status_code == 200 and "tools" in response.json()["result"]
        # Stateless: no session is handed out.
        assert "mcp-session-id" not in response.headers
        # The API's body limit holds here too.
        huge = {"name": "add_task", "arguments": {"title": "x", "description": "d" * 100_000}}
        response = post_rpc(http, f"{live_server}/mcp", "tools/call", huge, alice.headers)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.fixture
def issuer_app(settings: Settings) -> Iterator[TestClient]:
    """An app whose tokens must come from one issuer (JWT_ISSUER)."""
    update = {"jwt_issuer": "https://issuer.example"}
    with TestClient(create_app(settings.model_copy(update=update))) as client:
        yield client


def test_a_token_from_another_issuer_is_401(issuer_app: TestClient, db_engine: Engine) -> None:
    good = make_token(sub="issued-user", iss="https://issuer.example")
    for token in (make_token(sub="issued-user", iss="https://evil.example"), make_token()):
        response = post_rpc(issuer_app, "/mcp", "tools/call", ADD, bearer(token))
        _assert_401(response, "Invalid or expired token")
    assert count_rows(db_engine, "tasks") == 0
    result = call_tool_rpc(issuer_app, "/mcp", good, "add_task", {"title": "allowed"})
    assert result["structuredContent"]["status"] == "created"


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
def external_issuer_app(settings: Settings, jwks: JwksServer) -> Iterator[TestClient]:
    """An app trusting an external issuer's JWKS (Better Auth: EdDSA keys at /api/auth/jwks)."""
    update = {
        "jwt_jwks_url": jwks.url,
        "jwt_jwks_issuer": ISSUER,
        "jwt_jwks_audience": ISSUER,
        "jwt_jwks_timeout_seconds": 1.0,
    }
    with TestClient(create_app(settings.model_copy(update=update))) as client:
        yield client


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "ba-user-7", "iat": now, "exp": now + 600, "iss": ISSUER, "aud": ISSUER}
    return {**claims, **overrides}


def test_external_issuer_tokens_and_protected_resource_metadata(
    external_issuer_app: TestClient, jwks: JwksServer, db_engine: Engine
) -> None:
    client = external_issuer_app
    key = SigningKey.generate("EdDSA")
    jwks.publish(key)
    metadata_url = "http://testserver/.well-known/oauth-protected-resource/mcp"
    challenge = f'Bearer resource_metadata="{metadata_url}"'

    # RFC 9728: the resource, the issuer where its user signs in, bearer tokens in the header.
    metadata = client.get("/.well-known/oauth-protected-resource/mcp")
    assert metadata.status_code == 200
    assert metadata.json() == {
        "resource": "http://testserver/mcp",
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "resource_name": "Task API",
    }
    # Every 401 points there, so a client can discover where to send its user.
    _assert_401(post_rpc(client, "/mcp", "tools/list"), "Missing bearer token", challenge)
    for token in (
        key.sign(_claims(iss="https://evil.example")),
        key.sign(_claims(aud="https://other-api.example")),
        key.sign(_claims(exp=int(time.time()) - 120)),
        SigningKey.generate("EdDSA", kid=key.kid).sign(_claims()),
    ):
        response = post_rpc(client, "/mcp", "tools/call", ADD, bearer(token))
        _assert_401(response, "Invalid or expired token", challenge)
    assert count_rows(db_engine, "tasks") == 0
    # The REST routes keep their plain challenge.
    assert client.get("/api/tasks").headers["www-authenticate"] == "Bearer"

    # A good JWKS token (and an HS256 one beside it) works; the account is provisioned.
    added = call_tool_rpc(client, "/mcp", key.sign(_claims()), "add_task", {"title": "via BA"})
    assert added["structuredContent"]["status"] == "created"
    listed = client.get("/api/tasks", headers=bearer(key.sign(_claims()))).json()["data"]
    assert [t["title"] for t in listed] == ["via BA"]
    hs256 = make_token(sub="ba-user-7", secret=TEST_SECRET)
    assert call_tool_rpc(client, "/mcp", hs256, "list_tasks", {})["isError"] is False
