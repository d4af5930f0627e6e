"""Validly signed tokens with odd claim values are a 401, never a 500 (issue 13, item 1-2).

The signature is right (HS256 with the test secret), so these tokens reach the claim checks:
time claims that are not finite JSON numbers, or overflow every integer and float type, or
come as numeric strings; payloads nested thousands of levels deep; a lifetime beyond
JWT_MAX_TOKEN_LIFETIME_SECONDS. The payloads are written as raw JSON text, since Python's
own encoder would refuse `Infinity` or print `1e400` as `inf`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.auth.tokens import InvalidToken, decode_token, issue_token
from backend.config import Settings
from backend.main import create_app
from tests.conftest import TEST_SECRET, bearer, count_rows, make_token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: str, header: str = '{"alg": "HS256", "typ": "JWT"}') -> str:
    """An HS256 token over exactly this payload (and header) text."""
    signing_input = f"{_b64(header.encode())}.{_b64(payload.encode())}"
    signature = hmac.new(TEST_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**raw: str) -> str:
    """A payload with a valid sub, exp and iat, each overridable by raw JSON text."""
    now = int(time.time())
    values = {"sub": '"odd-claims-user"', "iat": str(now), "exp": str(now + 600), **raw}
    return "{" + ", ".join(f'"{name}": {text}' for name, text in values.items()) + "}"


HUGE_INT = "1" + "0" * 400
DEEP = 3000  # far past json's recursion limit, still under the 8 KiB token limit

ODD_TOKENS = {
    # non-finite
    "exp Infinity": signed(_claims(exp="Infinity")),
    "exp -Infinity": signed(_claims(exp="-Infinity")),
    "exp NaN": signed(_claims(exp="NaN")),
    "nbf Infinity": signed(_claims(nbf="Infinity")),
    "iat -Infinity": signed(_claims(iat="-Infinity")),
    # overflowing: 1e400 parses as a float infinity, 10**400 as an int no float can hold
    "exp 1e400": signed(_claims(exp="1e400")),
    "nbf -1e400": signed(_claims(nbf="-1e400")),
    "iat 1e400": signed(_claims(iat="1e400")),
    "exp 10**400": signed(_claims(exp=HUGE_INT)),
    "nbf 10**400": signed(_claims(nbf=HUGE_INT)),
    "iat 10**400": signed(_claims(iat=HUGE_INT)),
    "exp -10**400": signed(_claims(exp="-" + HUGE_INT)),
    "exp beyond year 9999": signed(_claims(exp="1e20")),
    "exp negative": signed(_claims(exp="-1")),
    # not JSON numbers
    "exp numeric string": signed(_claims(exp='"9999999999"')),
    "nbf numeric string": signed(_claims(nbf=f'"{int(time.time()) - 60}"')),
    "iat numeric string": signed(_claims(iat=f'"{int(time.time())}"')),
    "exp true": signed(_claims(exp="true")),
    "exp null": signed(_claims(exp="null")),
    "exp object": signed(_claims(exp='{"at": 9999999999}')),
    "nbf false": signed(_claims(nbf="false")),
    "iat list": signed(_claims(iat="[1]")),
    # deep nesting, in a claim and in the header
    "claim nested deeply (lists)": signed(_claims(x="[" * DEEP + "]" * DEEP)),
    "claim nested deeply (objects)": signed(_claims(x='{"a":' * 1100 + "1" + "}" * 1100)),
    "header nested deeply": signed(
        _claims(), header='{"alg": "HS256", "x": ' + "[" * DEEP + "]" * DEEP + "}"
    ),
    # huge: a validly signed payload of 100 kB, and one just over the 8 KiB limit
    "huge payload": signed(_claims(x='"' + "x" * 100_000 + '"')),
    "payload just over the limit": signed(_claims(x='"' + "x" * 6_200 + '"')),
    # not an object at all
    "payload is a number": signed("1e400"),
    "payload is a string": signed('"sub"'),
}


@pytest.mark.parametrize("label", list(ODD_TOKENS))
def test_decode_token_refuses_odd_claims_with_invalid_token(settings: Settings, label: str) -> None:
    """One place turns every failure into InvalidToken, whatever the library raised."""
    with pytest.raises(InvalidToken):
        decode_token(ODD_TOKENS[label], settings)


@pytest.mark.parametrize("label", list(ODD_TOKENS))
def test_odd_claims_are_401_over_http_and_write_nothing(
    client: TestClient, db_engine: Engine, label: str
) -> None:
    for method, path, body in (("GET", "/api/tasks", None), ("POST", "/api/tasks", {"title": "x"})):
        response = client.request(method, path, json=body, headers=bearer(ODD_TOKENS[label]))
        assert response.status_code == 401, (label, response.status_code, response.text[:200])
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == {
            "code": "UNAUTHORIZED",
            "message": "Invalid or expired token",
            "details": [],
        }
    assert count_rows(db_engine, "users") == 0
    assert count_rows(db_engine, "tasks") == 0


def test_ordinary_numbers_still_work(client: TestClient) -> None:
    """Integral and fractional time claims as JSON numbers are fine (RFC 7519 NumericDate)."""
    now = time.time()
    for exp, iat in ((str(int(now) + 600), str(int(now))), (f"{now + 600:.3f}", f"{now:.3f}")):
        token = signed(_claims(exp=exp, iat=iat, nbf=iat))
        assert client.get("/api/tasks", headers=bearer(token)).status_code == 200, (exp, iat)


# Maximum lifetime of tokens from external issuers (JWT_MAX_TOKEN_LIFETIME_SECONDS).

MAX_LIFETIME = 3600


@pytest.fixture(scope="module")
def capped(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"jwt_max_token_lifetime_seconds": MAX_LIFETIME, "access_token_expire_minutes": 180}
    )


@pytest.fixture(scope="module")
def capped_client(capped: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(capped), raise_server_exceptions=False) as client:
        yield client


def test_the_default_maximum_lifetime_is_a_day() -> None:
    assert Settings(environment="test", jwt_secret=TEST_SECRET).jwt_max_token_lifetime_seconds == (
        24 * 3600
    )


@pytest.mark.parametrize(
    ("lifetime", "issued_ago", "accepted"),
    [
        (MAX_LIFETIME, 0, True),
        (MAX_LIFETIME - 600, 0, True),
        (MAX_LIFETIME + 600, 0, False),  # expires too far from now
        (10 * 365 * 24 * 3600, 0, False),  # the "no maximum at all" of the issue
        (MAX_LIFETIME + 600, 1200, False),  # issued with a lifetime over the maximum
    ],
)
def test_external_tokens_beyond_the_maximum_lifetime_are_401(
    capped_client: TestClient, lifetime: int, issued_ago: int, accepted: bool
) -> None:
    now = int(time.time())
    token = make_token(sub="long-lived", iat=now - issued_ago, exp=now - issued_ago + lifetime)
    response = capped_client.get("/api/tasks", headers=bearer(token))
    assert response.status_code == (200 if accepted else 401), response.text


def test_built_in_tokens_follow_access_token_expire_minutes_not_the_cap(
    capped_client: TestClient,
) -> None:
    """Sign-in tokens are revocable (logout-all) and live ACCESS_TOKEN_EXPIRE_MINUTES, here
    three hours, beyond the one-hour cap on external tokens."""
    registered = capped_client.post(
        "/api/auth/register", json={"email": "long@example.com", "password": "password-1"}
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["data"]["expires_in"] == 180 * 60
    token = registered.json()["data"]["access_token"]
    assert capped_client.get("/api/auth/me", headers=bearer(token)).status_code == 200


def test_cli_tokens_fit_the_cap(capped: Settings) -> None:
    """The CLI mints external-style tokens (local=False); at the maximum lifetime they pass."""
    token = issue_token("cli-user", capped, expires_in=MAX_LIFETIME, local=False)
    assert decode_token(token, capped).subject == "cli-user"
