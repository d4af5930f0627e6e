"""Proof against the real thing: the `better-auth` npm package (pinned in
tests/interop/betterauth/package-lock.json) with its JWT plugin at default settings signs a
user up, hands out a JWT through its `/api/auth/token` endpoint and serves its JWKS on
loopback; this API, pointed at that JWKS with Better Auth's issuer and audience, accepts the
token, maps `sub`, and rejects it tampered, expired, and after the key is rotated away.

Needs `node` and `npm` (skipped, with the reason in the summary, when either is missing; under
CI=true, as .ci/run runs, a missing tool fails the run instead).
`npm ci` installs the locked packages from the npm registry on first run.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from jose import jwt

from backend.config import Settings
from backend.main import create_app
from tests.conftest import bearer, skip_or_fail_in_ci, stop_process

HERE = Path(__file__).resolve().parent / "betterauth"
PINNED = json.loads((HERE / "package.json").read_text())["dependencies"]["better-auth"]


def _installed_version() -> str | None:
    manifest = HERE / "node_modules" / "better-auth" / "package.json"
    if not manifest.exists():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


@dataclass
class BetterAuth:
    base_url: str
    process: subprocess.Popen[str]

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/api/auth/jwks"

    def _http(self) -> httpx.Client:
        # Better Auth checks the Origin of cookie-authenticated requests; a browser on the
        # auth server's own origin sends this one.
        return httpx.Client(base_url=self.base_url, headers={"Origin": self.base_url}, timeout=10)

    def sign_up_and_get_token(self, email: str, name: str) -> tuple[str, str]:
        """Sign up through Better Auth's API, then fetch a JWT with the session cookie, as a
        frontend does (`authClient.token()`). Returns (user id, JWT)."""
        with self._http() as http:
            signed_up = http.post(
                "/api/auth/sign-up/email",
                json={"email": email, "password": "password-123", "name": name},
            )
            assert signed_up.status_code == 200, signed_up.text
            user_id: str = signed_up.json()["user"]["id"]
            return user_id, self._token(http)

    def sign_in_and_get_token(self, email: str) -> str:
        with self._http() as http:
            signed_in = http.post(
                "/api/auth/sign-in/email", json={"email": email, "password": "password-123"}
            )
            assert signed_in.status_code == 200, signed_in.text
            return self._token(http)

    @staticmethod
    def _token(http: httpx.Client) -> str:
        response = http.get("/api/auth/token")
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def expired_token(self, sub: str) -> str:
        response = httpx.post(f"{self.base_url}/test/expired-token", json={"sub": sub})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def rotate_keys(self) -> None:
        assert httpx.post(f"{self.base_url}/test/rotate").status_code == 204


def _npm_ci() -> None:
    if _installed_version() == PINNED:
        return
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci for better-auth failed:\n{result.stdout}\n{result.stderr}")
    assert _installed_version() == PINNED


@pytest.fixture(scope="module")
def better_auth() -> Iterator[BetterAuth]:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        skip_or_fail_in_ci(
            f"BETTER AUTH INTEROP NOT RUN: {' and '.join(missing)} not on PATH; install "
            "Node.js (with npm) to run the better-auth interoperability test"
        )
    _npm_ci()
    env = {
        **os.environ,
        "BETTER_AUTH_SECRET": secrets.token_urlsafe(48),
        "BETTER_AUTH_TELEMETRY": "0",
        "NODE_ENV": "test",
    }
    process = subprocess.Popen(
        ["node", "server.mjs"],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    try:
        base_url = json.loads(first_line)["baseURL"]
    except (ValueError, KeyError):
        process.kill()
        rest = process.stdout.read()
        pytest.fail(f"better-auth server did not start:\n{first_line}{rest}")
    try:
        yield BetterAuth(base_url, process)
    finally:
        stop_process(process, timeout=10)


@pytest.fixture
def api(settings: Settings, better_auth: BetterAuth) -> Iterator[TestClient]:
    """This API configured for Better Auth's defaults: JWT_JWKS_URL=<base>/api/auth/jwks,
    JWT_JWKS_ISSUER = JWT_JWKS_AUDIENCE = <base> (Better Auth's BETTER_AUTH_URL)."""
    configured = settings.model_copy(
        update={
            "jwt_jwks_url": better_auth.jwks_url,
            "jwt_jwks_issuer": better_auth.base_url,
            "jwt_jwks_audience": better_auth.base_url,
            "jwt_jwks_algorithms": ["EdDSA"],
            # Short, so the rotation test need not wait five minutes.
            "jwt_jwks_cache_seconds": 1,
            "jwt_jwks_min_refetch_seconds": 0,
        }
    )
    with TestClient(create_app(configured), raise_server_exceptions=False) as client:
        yield client


def _tamper(token: str, **changes: Any) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def test_better_auth_version_is_the_pinned_one(better_auth: BetterAuth) -> None:
    assert _installed_version() == PINNED


def test_better_auth_token_is_accepted_and_sub_mapped(
    api: TestClient, better_auth: BetterAuth
) -> None:
    user_id, token = better_auth.sign_up_and_get_token("ada@example.com", "Ada Lovelace")
    header = jwt.get_unverified_header(token)
    claims = jwt.get_unverified_claims(token)
    # Better Auth's defaults, as this API's docs describe them.
    assert header["alg"] == "EdDSA" and header["kid"]
    assert claims["sub"] == user_id
    assert claims["iss"] == claims["aud"] == better_auth.base_url
    assert claims["exp"] - claims["iat"] == 15 * 60

    created = api.post("/api/tasks", json={"title": "from better-auth"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    assert created.json()["data"]["user_id"] == user_id
    listed = api.get("/api/tasks", headers=bearer(token))
    assert listed.status_code == 200
    assert [t["title"] for t in listed.json()["data"]] == ["from better-auth"]
    me = api.get("/api/auth/me", headers=bearer(token)).json()["data"]
    assert me == {**me, "id": user_id, "email": "ada@example.com", "name": "Ada Lovelace"}


def test_tampered_better_auth_token_is_401(api: TestClient, better_auth: BetterAuth) -> None:
    _, token = better_auth.sign_up_and_get_token("tamper@example.com", "T")
    assert api.get("/api/tasks", headers=bearer(token)).status_code == 200
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    for forged in (
        _tamper(token, sub="someone-else"),
        _tamper(token, exp=int(time.time()) + 86_400),
        f"{head}.{payload}.{flipped}",
        f"{head}.{payload}.",
    ):
        response = api.get("/api/tasks", headers=bearer(forged))
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"


def test_expired_better_auth_token_is_401(api: TestClient, better_auth: BetterAuth) -> None:
    user_id, fresh = better_auth.sign_up_and_get_token("expired@example.com", "E")
    expired = better_auth.expired_token(user_id)
    claims = jwt.get_unverified_claims(expired)
    assert claims["exp"] < time.time() - 60  # beyond the leeway
    assert jwt.get_unverified_header(expired)["kid"] == jwt.get_unverified_header(fresh)["kid"]
    assert api.get("/api/tasks", headers=bearer(fresh)).status_code == 200
    response = api.get("/api/tasks", headers=bearer(expired))
    assert response.status_code == 401, response.text


def test_rotated_away_key_is_401_after_cache_expiry(
    api: TestClient, better_auth: BetterAuth
) -> None:
    _, old = better_auth.sign_up_and_get_token("rotate@example.com", "R")
    assert api.get("/api/tasks", headers=bearer(old)).status_code == 200

    better_auth.rotate_keys()
    new = better_auth.sign_in_and_get_token("rotate@example.com")
    old_kid = jwt.get_unverified_header(old)["kid"]
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    published = httpx.get(better_auth.jwks_url).json()["keys"]
    assert old_kid not in {k["kid"] for k in published}

    # The new key is fetched on its first token (unknown kid); once the cached set expires,
    # the old key is gone.
    assert api.get("/api/tasks", headers=bearer(new)).status_code == 200
    time.sleep(1.2)
    response = api.get("/api/tasks", headers=bearer(old))
    assert response.status_code == 401, response.text
    assert api.get("/api/tasks", headers=bearer(new)).status_code == 200
