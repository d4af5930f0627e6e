"""Tokens verified against a JWKS (RS256, ES256, EdDSA), served by a real HTTP server on
loopback: acceptance, every failure mode (401, never 500), key rotation, an issuer that is
down or slow, clock skew."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.main import create_app
from tests.conftest import bearer, count_rows, make_token
from tests.jwks_server import JwksServer, SigningKey

ISSUER = "http://127.0.0.1:3000"
AUDIENCE = "http://127.0.0.1:3000"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "ba-user-1",
        "iat": now,
        "exp": now + 900,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


AppFactory = Callable[..., Any]


@pytest.fixture
def jwks_app(settings: Settings, jwks_server: JwksServer) -> AppFactory:
    """Build a TestClient for an app pointed at the test JWKS server (context manager)."""

    @contextmanager
    def _make(**overrides: Any) -> Iterator[TestClient]:
        update: dict[str, Any] = {
            "jwt_jwks_url": jwks_server.url,
            "jwt_jwks_issuer": ISSUER,
            "jwt_jwks_audience": AUDIENCE,
            "jwt_jwks_min_refetch_seconds": 30,
            "jwt_jwks_timeout_seconds": 1.0,
        }
        update.update(overrides)
        with TestClient(
            create_app(settings.model_copy(update=update)), raise_server_exceptions=False
        ) as client:
            yield client

    return _make


def _get(client: TestClient, token: str) -> Any:
    return client.get("/api/tasks", headers=bearer(token))


def _assert_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_jwks_token_is_accepted_and_provisions_the_user(
    jwks_app: AppFactory, jwks_server: JwksServer, db_engine: Engine, algorithm: str
) -> None:
    key = SigningKey.generate(algorithm)
    jwks_server.publish(key)
    token = key.sign(claims(sub=f"user-{algorithm}", email="Ada@Example.com", name="Ada"))
    with jwks_app() as client:
        created = client.post("/api/tasks", json={"title": "from jwks"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        assert created.json()["data"]["user_id"] == f"user-{algorithm}"
        me = client.get("/api/auth/me", headers=bearer(token)).json()["data"]
    assert me["email"] == "ada@example.com" and me["name"] == "Ada"


def test_hs256_and_jwks_work_together(jwks_app: AppFactory, jwks_server: JwksServer) -> None:
    key = SigningKey.generate("EdDSA")
    jwks_server.publish(key)
    with jwks_app() as client:
        assert _get(client, key.sign(claims())).status_code == 200
        assert _get(client, make_token()).status_code == 200
        registered = client.post(
            "/api/auth/register", json={"email": "both@example.com", "password": "password-1"}
        ).json()["data"]
        assert _get(client, registered["access_token"]).status_code == 200


def _hs256_with(secret: bytes, payload: dict[str, Any], kid: str | None = None) -> str:
    """HS256 signed by hand: python-jose refuses PEM secrets, an attacker does not."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid:
        header["kid"] = kid

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _forged_tokens(good: SigningKey, other: SigningKey) -> dict[str, str]:
    rsa = SigningKey.generate("RS256", kid=good.kid)
    wrong_key_same_kid = SigningKey.generate(good.algorithm, kid=good.kid)
    payload = claims()
    token = good.sign(payload)
    head, _body, sig = token.split(".")
    tampered_payload = base64.urlsafe_b64encode(
        json.dumps({**payload, "sub": "someone-else"}).encode()
    ).rstrip(b"=")
    return {
        "wrong key, same kid": wrong_key_same_kid.sign(payload),
        "unknown kid": SigningKey.generate(good.algorithm).sign(payload),
        "missing kid": good.sign(payload, kid=None),
        "kid of a key of another type": rsa.sign(payload, kid=other.kid),
        "HS256 with the public key PEM as secret": _hs256_with(
            good.public_pem(), payload, good.kid
        ),
        "HS256 with the public key DER as secret": _hs256_with(
            good.public_der(), payload, good.kid
        ),
        "HS256 with the RSA public PEM": _hs256_with(other.public_pem(), payload, other.kid),
        "HS256 with the RSA public DER": _hs256_with(other.public_der(), payload, other.kid),
        "tampered payload": f"{head}.{tampered_payload.decode()}.{sig}",
        "expired beyond leeway": good.sign(claims(exp=int(time.time()) - 120)),
        "missing exp": good.sign(claims(exp=None)),
        "missing sub": good.sign(claims(sub=None)),
        "wrong issuer": good.sign(claims(iss="https://evil.example.com")),
        "missing issuer": good.sign(claims(iss=None)),
        "wrong audience": good.sign(claims(aud="https://other.example.com")),
        "missing audience": good.sign(claims(aud=None)),
        "nbf beyond leeway": good.sign(claims(nbf=int(time.time()) + 120)),
        "iat in the future beyond leeway": good.sign(claims(iat=int(time.time()) + 120)),
        "alg none": _unsigned_with_kid(payload, good.kid),
    }


def _unsigned_with_kid(payload: dict[str, Any], kid: str) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'kid': kid})}.{b64(payload)}."


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_every_forged_jwks_token_is_401(
    jwks_app: AppFactory, jwks_server: JwksServer, db_engine: Engine, algorithm: str
) -> None:
    good = SigningKey.generate(algorithm)
    other = SigningKey.generate("RS256")
    jwks_server.publish(good, other)
    forged = _forged_tokens(good, other)
    with jwks_app() as client:
        assert _get(client, good.sign(claims())).status_code == 200
        with db_engine.begin() as conn:
            conn.execute(text("TRUNCATE users, tasks RESTART IDENTITY CASCADE"))
        for label, token in forged.items():
            response = _get(client, token)
            assert response.status_code == 401, (label, response.text)
            _assert_401(response)
    assert count_rows(db_engine, "users") == 0


def test_algorithm_must_match_the_key_type(jwks_app: AppFactory, jwks_server: JwksServer) -> None:
    """An EdDSA key's kid on an ES256 token (and the reverse) is refused."""
    ed = SigningKey.generate("EdDSA")
    es = SigningKey.generate("ES256")
    jwks_server.publish(ed, es)
    with jwks_app() as client:
        _assert_401(_get(client, SigningKey("ES256", es.private, kid=ed.kid).sign(claims())))
        _assert_401(_get(client, SigningKey("EdDSA", ed.private, kid=es.kid).sign(claims())))


def test_algorithm_list_is_explicit(jwks_app: AppFactory, jwks_server: JwksServer) -> None:
    rsa = SigningKey.generate("RS256")
    ed = SigningKey.generate("EdDSA")
    jwks_server.publish(rsa, ed)
    with jwks_app(jwt_jwks_algorithms=["EdDSA"]) as client:
        assert _get(client, ed.sign(claims())).status_code == 200
        _assert_401(_get(client, rsa.sign(claims())))


def test_key_headers_in_the_token_are_never_used(
    jwks_app: AppFactory, jwks_server: JwksServer
) -> None:
    """`jwk`, `jku`, `x5u` name the attacker's own key; none of them is looked at."""
    trusted = SigningKey.generate("EdDSA")
    jwks_server.publish(trusted)
    attacker = SigningKey.generate("EdDSA")
    attacker_jwks = JwksServer()
    attacker_jwks.publish(attacker)
    try:
        with jwks_app() as client:
            for header in (
                {"jwk": attacker.jwk()},
                {"jku": attacker_jwks.url},
                {"x5u": attacker_jwks.url},
            ):
                _assert_401(_get(client, attacker.sign(claims(), **header)))
    finally:
        attacker_jwks.close()
    assert attacker_jwks.hits == 0


def test_jwks_tokens_are_not_accepted_without_a_jwks_url(
    client: TestClient, jwks_server: JwksServer
) -> None:
    key = SigningKey.generate("EdDSA")
    jwks_server.publish(key)
    _assert_401(_get(client, key.sign(claims())))


def test_unknown_kids_refetch_at_most_once_per_interval(
    jwks_app: AppFactory, jwks_server: JwksServer
) -> None:
    key = SigningKey.generate("EdDSA")
    jwks_server.publish(key)
    with jwks_app(jwt_jwks_min_refetch_seconds=60) as client:
        assert _get(client, key.sign(claims())).status_code == 200
        fetched = jwks_server.hits
        for _ in range(20):
            _assert_401(_get(client, SigningKey.generate("EdDSA").sign(claims())))
        assert jwks_server.hits - fetched <= 1


def test_key_rotation(jwks_app: AppFactory, jwks_server: JwksServer) -> None:
    """A new key is picked up on its first token; a removed key stops working once the
    cache expires. (The cache lasts 3 s: "still cached" is one request after the fetch, which
    a loaded machine could stretch past a 1 s cache.)"""
    old = SigningKey.generate("EdDSA")
    new = SigningKey.generate("EdDSA")
    jwks_server.publish(old)
    cache_seconds = 3
    with jwks_app(jwt_jwks_cache_seconds=cache_seconds, jwt_jwks_min_refetch_seconds=0) as client:
        old_token = old.sign(claims())
        assert _get(client, old_token).status_code == 200
        jwks_server.publish(old, new)  # the issuer adds a key and starts signing with it
        assert _get(client, new.sign(claims())).status_code == 200
        fetched = jwks_server.hits
        jwks_server.publish(new)  # ... and later retires the old one
        assert _get(client, old_token).status_code == 200  # still cached
        assert jwks_server.hits == fetched  # answered from the cache, not a fetch
        time.sleep(cache_seconds + 0.2)  # at least the cache's lifetime since its fetch
        _assert_401(_get(client, old_token))
        assert _get(client, new.sign(claims())).status_code == 200


def test_jwks_down_at_start_is_503_then_recovers(
    jwks_app: AppFactory, jwks_server: JwksServer
) -> None:
    key = SigningKey.generate("RS256")
    jwks_server.publish(key)
    jwks_server.mode = "error"
    with jwks_app(jwt_jwks_min_refetch_seconds=0) as client:
        response = _get(client, key.sign(claims()))
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert "retry-after" in response.headers
        # HS256 tokens do not depend on the issuer's keys.
        assert _get(client, make_token()).status_code == 200
        # A forged token is still refused when it cannot even be checked.
        assert _get(client, "not-a-jwt").status_code == 401
        jwks_server.mode = "ok"
        assert _get(client, key.sign(claims())).status_code == 200


def test_jwks_slow_at_start_does_not_hang_requests(
    jwks_app: AppFactory, jwks_server: JwksServer
) -> None:
    key = SigningKey.generate("EdDSA")
    jwks_server.publish(key)
    jwks_server.mode = "hang"
    jwks_server.hang_seconds = 30  # a daemon thread: nothing waits for it
    with jwks_app(jwt_jwks_timeout_seconds=0.5) as client:
        started = time.monotonic()
        assert _get(client, key.sign(claims())).status_code == 503
        # Cut by the 0.5 s timeout, not the issuer's 30 s hang (seconds of margin both ways
        # for a loaded machine: a 5 s hang under a 4 s bound left one).
        assert time.monotonic() - started < 10
        # Within the refetch interval no further fetch is tried: counted, not timed.
        fetched = jwks_server.hits
        assert _get(client, key.sign(claims())).status_code == 503
        assert jwks_server.hits == fetched
    jwks_server.mode = "ok"


@pytest.mark.parametrize("failure", ["error", "hang"])
def test_jwks_down_mid_run_keeps_the_last_good_keys(
    jwks_app: AppFactory, jwks_server: JwksServer, failure: str
) -> None:
    key = SigningKey.generate("ES256")
    jwks_server.publish(key)
    with jwks_app(
        jwt_jwks_cache_seconds=1, jwt_jwks_min_refetch_seconds=0, jwt_jwks_timeout_seconds=0.5
    ) as client:
        assert _get(client, key.sign(claims())).status_code == 200
        jwks_server.mode = failure
        jwks_server.hang_seconds = 30
        time.sleep(1.1)  # the cache is stale: the next request refetches, and fails
        started = time.monotonic()
        assert _get(client, key.sign(claims())).status_code == 200
        # Cut by the 0.5 s timeout, not the issuer's 30 s hang (margin for a loaded machine).
        assert time.monotonic() - started < 10
        _assert_401(_get(client, SigningKey.generate("ES256").sign(claims())))
    jwks_server.mode = "ok"


@pytest.mark.parametrize(
    ("label", "overrides", "status"),
    [
        ("expired within leeway", {"exp": -10}, 200),
        ("expired beyond leeway", {"exp": -60}, 401),
        ("nbf within leeway", {"nbf": 10}, 200),
        ("nbf beyond leeway", {"nbf": 60}, 401),
        ("iat within leeway", {"iat": 10}, 200),
        ("iat beyond leeway", {"iat": 60}, 401),
    ],
)
def test_clock_skew(
    jwks_app: AppFactory,
    jwks_server: JwksServer,
    label: str,
    overrides: dict[str, int],
    status: int,
) -> None:
    key = SigningKey.generate("EdDSA")
    jwks_server.publish(key)
    now = int(time.time())
    token = key.sign(claims(**{k: now + v for k, v in overrides.items()}))
    with jwks_app(jwt_leeway_seconds=30) as client:
        assert _get(client, token).status_code == status, label
        # The same skew on an HS256 token is judged the same way.
        hs = make_token({k: now + v for k, v in overrides.items()})
        assert _get(client, hs).status_code == status, label


def test_jwks_document_with_junk_is_tolerated(
    jwks_app: AppFactory, jwks_server: JwksServer
) -> None:
    key = SigningKey.generate("EdDSA")
    jwks_server.publish(key)
    jwks_server.keys = [
        "junk",
        {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
        {"kty": "OKP", "crv": "Ed448", "x": "AA", "kid": "ed448"},
        {"kty": "OKP", "crv": "Ed25519", "x": "not-32-bytes", "kid": "short"},
        *jwks_server.keys,
    ]
    with jwks_app() as client:
        assert _get(client, key.sign(claims())).status_code == 200
        forged = _hs256_with(b"secret", claims(), kid="sym")
        _assert_401(_get(client, forged))
        _assert_401(_get(client, SigningKey("EdDSA", key.private, kid="short").sign(claims())))


def _raw_token(header: Any, payload: dict[str, Any]) -> str:
    def b64(data: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(payload)}.{b64('sig')}"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": ["EdDSA"], "kid": "k"},
        {"alg": "EdDSA", "kid": 7},
        {"alg": "EdDSA", "kid": {"$ne": ""}},
        {"alg": "EdDSA", "kid": ""},
        {"alg": "EdDSA", "kid": "x" * 5000},
        {"alg": "Ed25519", "kid": "k"},
        {"alg": "RS384", "kid": "k"},
        {"alg": "PS256", "kid": "k"},
        {"alg": "HS512", "kid": "k"},
        {"kid": "k"},
        ["EdDSA"],
        "EdDSA",
    ],
)
def test_malformed_jwks_headers_are_401(
    jwks_app: AppFactory, jwks_server: JwksServer, header: Any
) -> None:
    jwks_server.publish(SigningKey.generate("EdDSA", kid="k"))
    with jwks_app() as client:
        _assert_401(_get(client, _raw_token(header, claims())))


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_jwks_tokens_beyond_the_maximum_lifetime_are_401(
    jwks_app: AppFactory, jwks_server: JwksServer, algorithm: str
) -> None:
    """JWT_MAX_TOKEN_LIFETIME_SECONDS holds for every external issuer, not only HS256 ones."""
    key = SigningKey.generate(algorithm)
    jwks_server.publish(key)
    now = int(time.time())
    with jwks_app(jwt_max_token_lifetime_seconds=3600) as client:
        assert _get(client, key.sign(claims(exp=now + 3600))).status_code == 200
        _assert_401(_get(client, key.sign(claims(exp=now + 3600 + 600))))
        _assert_401(_get(client, key.sign(claims(exp=now + 100 * 365 * 24 * 3600))))
