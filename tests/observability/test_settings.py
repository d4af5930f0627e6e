"""The observability settings: safe production defaults, refused unsafe combinations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.config import LogFormat, Settings
from tests.cli.helpers import closed_port, run_cli

SECRET = "k" * 48
TOKEN = "metrics-token-0123456789"
PRODUCTION = {
    "environment": "production",
    "database_url": "postgresql://app:pw@db.example.com/app",
    "jwt_secret": SECRET,
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOG_FORMAT", "METRICS_ENABLED", "METRICS_TOKEN", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)


def test_production_defaults_json_logs_and_no_open_metrics() -> None:
    settings = Settings(**PRODUCTION)
    assert settings.effective_log_format is LogFormat.json
    assert settings.serve_metrics is False  # no token: /metrics is not served at all


def test_production_serves_metrics_once_a_token_is_set() -> None:
    assert Settings(**PRODUCTION, metrics_token=TOKEN).serve_metrics is True
    assert Settings(**PRODUCTION, metrics_token=TOKEN, metrics_enabled=False).serve_metrics is False


def test_production_refuses_metrics_enabled_without_a_token() -> None:
    with pytest.raises(ValidationError, match="METRICS_ENABLED=true in production needs"):
        Settings(**PRODUCTION, metrics_enabled=True)


def test_short_metrics_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="METRICS_TOKEN must be at least 16"):
        Settings(environment="test", jwt_secret=SECRET, metrics_token="short")


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_defaults_text_logs_and_open_metrics(environment: str) -> None:
    settings = Settings(environment=environment, jwt_secret=SECRET)
    assert settings.effective_log_format is LogFormat.text
    assert settings.serve_metrics is True


def test_log_format_setting_wins() -> None:
    assert Settings(**PRODUCTION, log_format="text").effective_log_format is LogFormat.text
    assert (
        Settings(environment="test", jwt_secret=SECRET, log_format="json").effective_log_format
        is LogFormat.json
    )
    with pytest.raises(ValidationError):
        Settings(environment="test", jwt_secret=SECRET, log_format="xml")


def test_serve_refuses_unprotected_metrics_in_production() -> None:
    result = run_cli(
        "serve",
        "--port",
        str(closed_port()),
        ENVIRONMENT="production",
        DATABASE_URL="postgresql://app:pw@127.0.0.1:1/app",
        METRICS_ENABLED="true",
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "configuration error: METRICS_ENABLED=true in production needs METRICS_TOKEN (or "
        "leave METRICS_ENABLED unset to serve no /metrics without a token)"
    )
