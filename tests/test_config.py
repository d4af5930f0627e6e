"""Settings refuse unsafe production configurations and accept what Neon's console prints."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from backend.config import Settings
from backend.db.engine import libpq_url, normalize_url
from tests.conftest import ROOT

GOOD_SECRET = "k" * 16 + "Q" * 16 + "z" * 8
NEON = (
    "postgresql://app:pw@ep-cool-name-123456-pooler.eu-central-1.aws.neon.tech/neondb"
    "?sslmode=require&channel_binding=require"
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults are the code's, whatever the shell sets (DB_STATEMENT_TIMEOUT_MS=1000 is how
    CONTRIBUTING.md checks the suite for speed dependence)."""
    for name in [*(field.upper() for field in Settings.model_fields), "BETTER_AUTH_SECRET"]:
        monkeypatch.delenv(name, raising=False)


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_only_development_mode_may_run_without_a_secret() -> None:
    for environment in ("test", "production"):
        with pytest.raises(ValidationError, match="JWT_SECRET"):
            make(environment=environment, database_url=NEON)
    assert make(environment="development").jwt_secret is None


def test_production_requires_a_secret_and_a_database() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        make(environment="production", database_url=NEON)
    with pytest.raises(ValidationError, match="DATABASE_URL is required"):
        make(environment="production", jwt_secret=GOOD_SECRET)
    assert make(environment="production", jwt_secret=GOOD_SECRET, database_url=NEON)


@pytest.mark.parametrize("secret", ["short", "x" * 31])
def test_short_secrets_are_refused_in_every_environment(secret: str) -> None:
    for environment in ("development", "test", "production"):
        with pytest.raises(ValidationError, match="at least 32 bytes"):
            make(environment=environment, jwt_secret=secret, database_url=NEON)


def test_placeholder_secret_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        make(
            environment="production",
            database_url=NEON,
            jwt_secret="replace-with-at-least-32-random-bytes-000",
        )


def test_better_auth_secret_is_read_as_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_AUTH_SECRET", GOOD_SECRET)
    assert make(environment="test").signing_secret() == GOOD_SECRET


def test_wildcard_cors_is_refused() -> None:
    with pytest.raises(ValidationError, match="explicit origins"):
        make(environment="test", jwt_secret=GOOD_SECRET, cors_origins="*")


def test_cors_origins_from_comma_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:3000, https://app.example.com/")
    assert make(environment="test", jwt_secret=GOOD_SECRET).cors_origins == [
        "http://localhost:3000",
        "https://app.example.com",
    ]
    monkeypatch.setenv("CORS_ORIGINS", '["http://a.test"]')
    assert make(environment="test", jwt_secret=GOOD_SECRET).cors_origins == ["http://a.test"]


def test_development_secret_is_generated_once_and_kept(tmp_path: object) -> None:
    from pathlib import Path

    data = Path(str(tmp_path)) / "pg"
    first = make(environment="development", embedded_pg_dir=data).signing_secret()
    second = make(environment="development", embedded_pg_dir=data).signing_secret()
    assert first == second and len(first) >= 32
    assert (data.parent / "dev-jwt-secret").stat().st_mode & 0o077 == 0


def test_neon_url_is_accepted_as_pasted() -> None:
    assert normalize_url(NEON).startswith("postgresql+psycopg2://app:pw@ep-cool-name")
    assert normalize_url(NEON).endswith("?sslmode=require&channel_binding=require")
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert libpq_url(NEON) == NEON
    with pytest.raises(ValueError, match="postgresql://"):
        normalize_url("mysql://u@h/db")


def test_cli_reports_configuration_errors_in_one_line_without_traceback() -> None:
    env = {"PATH": "/usr/bin:/bin", "ENVIRONMENT": "production", "JWT_SECRET": "short"}
    result = subprocess.run(
        [sys.executable, "-m", "backend", "migrate", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "configuration error" in result.stderr and "32 bytes" in result.stderr


def test_jwks_settings_parse_and_refuse_unknown_algorithms() -> None:
    settings = make(
        environment="test",
        jwt_secret=GOOD_SECRET,
        jwt_jwks_url="http://localhost:3000/api/auth/jwks",
        jwt_jwks_algorithms="EdDSA, RS256",
        jwt_issuer="http://localhost:3000",
    )
    assert settings.jwt_jwks_algorithms == ["EdDSA", "RS256"]
    assert str(settings.jwt_jwks_url) == "http://localhost:3000/api/auth/jwks"
    # JWKS issuer/audience fall back to JWT_ISSUER / JWT_AUDIENCE.
    assert settings.jwks_issuer == "http://localhost:3000" and settings.jwks_audience is None
    for bad in ("HS256", "none", "RS256,PS256", ""):
        with pytest.raises(ValidationError, match="JWT_JWKS_ALGORITHMS"):
            make(environment="test", jwt_secret=GOOD_SECRET, jwt_jwks_algorithms=bad)
    with pytest.raises(ValidationError):
        make(environment="test", jwt_secret=GOOD_SECRET, jwt_jwks_url="not a url")


def test_rate_limits_are_on_by_default_and_configurable() -> None:
    settings = make(environment="test", jwt_secret=GOOD_SECRET)
    assert settings.rate_limit_enabled is True
    off = make(environment="test", jwt_secret=GOOD_SECRET, rate_limit_enabled="false")
    assert off.rate_limit_enabled is False
    with pytest.raises(ValidationError):
        make(environment="test", jwt_secret=GOOD_SECRET, rate_limit_sign_in_per_ip=-1)


def test_production_jwks_url_must_be_https_unless_loopback() -> None:
    base = {
        "environment": "production",
        "jwt_secret": GOOD_SECRET,
        "database_url": NEON,
        "jwt_jwks_issuer": "https://auth.example.com",
        "jwt_jwks_audience": "https://auth.example.com",
    }
    with pytest.raises(ValidationError, match="JWT_JWKS_URL must use https"):
        make(**base, jwt_jwks_url="http://auth.example.com/api/auth/jwks")
    assert make(**base, jwt_jwks_url="https://auth.example.com/api/auth/jwks")
    assert make(**base, jwt_jwks_url="http://localhost:3000/api/auth/jwks")


def test_production_jwks_needs_issuer_and_audience() -> None:
    base = {
        "environment": "production",
        "jwt_secret": GOOD_SECRET,
        "database_url": NEON,
        "jwt_jwks_url": "https://auth.example.com/api/auth/jwks",
    }
    for missing in (
        {},
        {"jwt_jwks_issuer": "https://auth.example.com"},
        {"jwt_jwks_audience": "https://auth.example.com"},
    ):
        with pytest.raises(ValidationError, match="needs JWT_JWKS_ISSUER and JWT_JWKS_AUDIENCE"):
            make(**base, **missing)
    assert make(
        **base, jwt_issuer="https://auth.example.com", jwt_audience="https://auth.example.com"
    )
    assert make(**{**base, "environment": "test"})  # tests and development may skip them


def test_idempotency_keys_are_kept_at_least_a_day() -> None:
    # The promise to clients (specs/reliability.md) is a window of at least 24 hours.
    secret = "s" * 48
    with pytest.raises(ValidationError, match="idempotency_key_ttl_seconds"):
        make(environment="test", jwt_secret=secret, idempotency_key_ttl_seconds=23 * 3600)
    assert make(environment="test", jwt_secret=secret).idempotency_key_ttl_seconds == 24 * 3600


def settings(**values: object) -> Settings:
    return make(environment="test", jwt_secret="s" * 40, **values)


def test_response_timeout_defaults_to_the_statement_timeout_plus_a_margin() -> None:
    assert settings().effective_db_response_timeout_ms == 7000
    assert settings(db_statement_timeout_ms=1000).effective_db_response_timeout_ms == 3000
    assert settings(db_statement_timeout_ms=0).effective_db_response_timeout_ms == 0
    assert settings(db_response_timeout_ms=0).effective_db_response_timeout_ms == 0
    assert settings(db_response_timeout_ms=9000).effective_db_response_timeout_ms == 9000
    with pytest.raises(ValidationError, match="DB_RESPONSE_TIMEOUT_MS must be longer"):
        settings(db_statement_timeout_ms=5000, db_response_timeout_ms=5000)


def test_connect_timeout_is_capped_by_the_response_timeout() -> None:
    # Issue 25: a connection attempt to a stuck server waited DB_CONNECT_TIMEOUT_SECONDS (10 s)
    # against the response timeout (7 s) every other wait keeps to.
    assert settings().effective_db_connect_timeout_seconds == 7
    assert settings(db_connect_timeout_seconds=5).effective_db_connect_timeout_seconds == 5
    assert settings(db_response_timeout_ms=7999).effective_db_connect_timeout_seconds == 7
    assert settings(db_statement_timeout_ms=500).effective_db_connect_timeout_seconds == 2
    # libpq's floor: it waits at least 2 s whatever it is told.
    capped = settings(db_statement_timeout_ms=0, db_response_timeout_ms=1500)
    assert capped.effective_db_connect_timeout_seconds == 2
    # No response timeout: nothing to cap by.
    assert settings(db_statement_timeout_ms=0).effective_db_connect_timeout_seconds == 10
    assert settings(db_response_timeout_ms=0).effective_db_connect_timeout_seconds == 10
