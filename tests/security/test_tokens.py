"""Every way a bearer token can be wrong is a 401 with `WWW-Authenticate: Bearer` on every
protected route, never a 500, and never a write."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import Engine

from backend.config import Settings
from backend.main import create_app
from tests.conftest import TEST_SECRET, count_rows, make_token

ROUTES = [
    ("GET", "/api/tasks", None),
    ("POST", "/api/tasks", {"title": "x"}),
    ("GET", "/api/tasks/1", None),
    ("PUT", "/api/tasks/1", {"title": "x"}),
    ("PATCH", "/api/tasks/1", {"title": "x"}),
    ("PATCH", "/api/tasks/1/complete", None),
    ("DELETE", "/api/tasks/1", None),
    ("GET", "/api/auth/me", None),
    ("DELETE", "/api/auth/me", None),
]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(payload: dict) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


def _rsa_signed(payload: dict) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.encode(payload, pem.decode(), algorithm="RS256")


NOW = int(time.time())
# Valid for hours: the suite may reach these tests long after the module was imported.
VALID = {"sub": "ext-user", "iat": NOW, "exp": NOW + 6 * 3600}

BAD_TOKENS = {
    "malformed": "not-a-jwt",
    "three garbage segments": "a.b.c",
    "bad signature": make_token(VALID, secret="x" * 48),
    "alg none": _unsigned(VALID),
    "alg none, empty-signature variant": _unsigned(VALID) + "AA",
    "RS256 instead of HS256": _rsa_signed(VALID),
    "HS512": make_token(VALID, algorithm="HS512"),
    "expired": make_token(VALID, exp=NOW - 3600),
    "missing exp": make_token(VALID, exp=None),
    "exp of wrong type (list)": make_token(VALID, exp=[NOW + 600]),
    "exp of wrong type (string)": make_token(VALID, exp="tomorrow"),
    "nbf in the future": make_token(VALID, nbf=NOW + 5 * 3600),
    "missing sub": make_token(VALID, sub=None),
    "empty sub": make_token(VALID, sub=""),
    "sub not a string": make_token(VALID, sub=12345),
    "sub too long": make_token(VALID, sub="u" * 256),
    "sub with NUL": make_token(VALID, sub="a\x00b"),
    "sub with lone surrogate": make_token(VALID, sub="a\ud800b"),
    "huge token": "e" * 20_000,
}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_missing_token_is_401(
    client: TestClient, method: str, path: str, body: dict | None
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("scheme", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "Token abc"])
def test_wrong_authorization_scheme_is_401(client: TestClient, scheme: str) -> None:
    response = client.get("/api/tasks", headers={"Authorization": scheme})
    assert response.status_code == 401


@pytest.mark.parametrize("label", list(BAD_TOKENS))
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_bad_token_is_401_and_writes_nothing(
    client: TestClient,
    db_engine: Engine,
    label: str,
    method: str,
    path: str,
    body: dict | None,
) -> None:
    response = client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {BAD_TOKENS[label]}"}
    )
    assert response.status_code == 401, (label, response.text)
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert count_rows(db_engine, "users") == 0
    assert count_rows(db_engine, "tasks") == 0


def test_token_in_query_string_is_ignored(client: TestClient) -> None:
    response = client.get(f"/api/tasks?access_token={make_token(VALID)}")
    assert response.status_code == 401


def test_valid_external_token_is_accepted(client: TestClient) -> None:
    assert (
        client.get("/api/tasks", headers={"Authorization": f"Bearer {make_token()}"}).status_code
        == 200
    )


def test_leeway_accepts_a_token_that_just_expired(client: TestClient) -> None:
    token = make_token(VALID, exp=int(time.time()) - 5)
    assert client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.fixture(scope="module")
def strict_client(settings: Settings) -> Iterator[TestClient]:
    """An app that requires a specific issuer and audience."""
    strict = settings.model_copy(
        update={"jwt_issuer": "https://auth.example.com", "jwt_audience": "task-api"}
    )
    with TestClient(create_app(strict), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"iss": "https://auth.example.com", "aud": "task-api"}, True),
        ({"iss": "https://auth.example.com", "aud": ["other", "task-api"]}, True),
        ({"iss": "https://evil.example.com", "aud": "task-api"}, False),
        ({"iss": "https://auth.example.com", "aud": "other-api"}, False),
        ({"aud": "task-api"}, False),  # missing iss
        ({"iss": "https://auth.example.com"}, False),  # missing aud
    ],
)
def test_issuer_and_audience_are_enforced_when_configured(
    strict_client: TestClient, claims: dict, accepted: bool
) -> None:
    token = make_token({**VALID, **claims}, secret=TEST_SECRET)
    response = strict_client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == (200 if accepted else 401), response.text


def test_built_in_tokens_carry_configured_issuer_and_audience(strict_client: TestClient) -> None:
    registered = strict_client.post(
        "/api/auth/register", json={"email": "iss@example.com", "password": "password-1"}
    ).json()["data"]
    claims = jwt.get_unverified_claims(registered["access_token"])
    assert claims["iss"] == "https://auth.example.com" and claims["aud"] == "task-api"
    me = strict_client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {registered['access_token']}"}
    )
    assert me.status_code == 200
