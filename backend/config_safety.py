"""Unsafe combinations of settings, refused at start with one clear message each (`Settings`'
last validator): never a placeholder or short secret, a wildcard origin, or data in clear."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import HttpUrl, SecretStr

from backend.keys import vapid_private_key

# Values from docs and examples that must never sign real tokens.
_PLACEHOLDER_SECRETS = {
    "change-me",
    "changeme",
    "secret",
    "your-secret-key",
    "replace-with-at-least-32-random-bytes-000",
}
MIN_SECRET_BYTES = 32
MIN_METRICS_TOKEN_CHARS = 16
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def _in_clear(url: Any) -> bool:
    """Whether `url` would carry its traffic in clear to another host."""
    return bool(url.scheme != "https" and url.host not in _LOOPBACK_HOSTS)


class _Webhook(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def url(self) -> HttpUrl: ...


class Checked(Protocol):
    """What these rules read of `Settings` (backend/config.py, which calls them: it is not
    imported here, so the two modules are not a cycle; mypy checks `Settings` against this
    where `refuse_unsafe(self)` is called)."""

    @property
    def is_production(self) -> bool: ...
    @property
    def environment(self) -> str: ...
    @property
    def cors_origins(self) -> Sequence[str]: ...
    @property
    def jwt_secret(self) -> SecretStr | None: ...
    @property
    def jwt_jwks_url(self) -> HttpUrl | None: ...
    @property
    def jwks_issuer(self) -> str | None: ...
    @property
    def jwks_audience(self) -> str | None: ...
    @property
    def metrics_enabled(self) -> bool | None: ...
    @property
    def metrics_token(self) -> SecretStr | None: ...
    @property
    def db_statement_timeout_ms(self) -> int: ...
    @property
    def db_response_timeout_ms(self) -> int | None: ...
    @property
    def event_webhooks(self) -> Sequence[_Webhook]: ...
    @property
    def push_enabled(self) -> bool | None: ...
    @property
    def push_allow_loopback(self) -> bool: ...
    @property
    def vapid_private_key(self) -> SecretStr | None: ...
    @property
    def vapid_subject(self) -> str | None: ...
    @property
    def smtp_host(self) -> str | None: ...
    @property
    def smtp_from(self) -> str | None: ...
    @property
    def smtp_username(self) -> str | None: ...
    @property
    def smtp_password(self) -> SecretStr | None: ...
    @property
    def smtp_security(self) -> str: ...
    @property
    def s3_access_key_id(self) -> str | None: ...
    @property
    def s3_secret_access_key(self) -> SecretStr | None: ...
    @property
    def database_url(self) -> SecretStr | None: ...


def refuse_unsafe(settings: Checked) -> None:
    """Raise `ValueError` with what to change for the first unsafe setting found."""
    production = settings.is_production
    if "*" in settings.cors_origins:
        raise ValueError(
            "CORS_ORIGINS must list explicit origins: '*' cannot be combined with "
            "credentialed requests"
        )
    if settings.jwt_secret is not None:
        raw = settings.jwt_secret.get_secret_value()
        if len(raw.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        if production and raw.strip().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("JWT_SECRET is a placeholder value; set a random secret")
    elif settings.environment != "development":
        # Only explicit development mode may fall back to a generated secret.
        raise ValueError(
            f"JWT_SECRET (or BETTER_AUTH_SECRET) is required in {settings.environment} mode"
        )
    url = settings.jwt_jwks_url
    # Keys fetched over plain HTTP could be swapped by anyone on the path.
    if production and url is not None and _in_clear(url):
        raise ValueError(
            "JWT_JWKS_URL must use https in production (plain http only for an "
            "issuer on the same host)"
        )
    if production and url is not None and not (settings.jwks_issuer and settings.jwks_audience):
        # The same keys may sign other JWTs (Better Auth's session-cache cookie, say):
        # only iss and aud tell an access token for this API from those.
        raise ValueError(
            "JWT_JWKS_URL needs JWT_JWKS_ISSUER and JWT_JWKS_AUDIENCE (or JWT_ISSUER and "
            "JWT_AUDIENCE) in production"
        )
    if settings.metrics_token is not None and (
        len(settings.metrics_token.get_secret_value()) < MIN_METRICS_TOKEN_CHARS
    ):
        raise ValueError(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARS} characters")
    if production and settings.metrics_enabled and settings.metrics_token is None:
        # Metrics name every route and show traffic and pool load: not for the public.
        raise ValueError(
            "METRICS_ENABLED=true in production needs METRICS_TOKEN (or leave "
            "METRICS_ENABLED unset to serve no /metrics without a token)"
        )
    response_timeout = settings.db_response_timeout_ms
    if response_timeout and 0 < settings.db_statement_timeout_ms >= response_timeout:
        raise ValueError(
            "DB_RESPONSE_TIMEOUT_MS must be longer than DB_STATEMENT_TIMEOUT_MS (the "
            "server cancels a slow statement first; the response timeout is for a server "
            "that cannot)"
        )
    names = [target.name for target in settings.event_webhooks]
    for name in sorted({n for n in names if names.count(n) > 1}):
        # The second would never be sent anything: the first's acceptance counts for it.
        raise ValueError(f"EVENT_WEBHOOKS lists {name} more than once")
    for target in settings.event_webhooks:
        # Events carry users' tasks: not in clear over the network.
        if production and _in_clear(target.url):
            raise ValueError(
                "EVENT_WEBHOOKS URLs must use https in production (plain http only on this host)"
            )
    if settings.vapid_private_key is not None:
        vapid_private_key(settings.vapid_private_key.get_secret_value())
    if production and settings.push_allow_loopback:
        # A loopback endpoint is an SSRF door into this host's own services.
        raise ValueError("PUSH_ALLOW_LOOPBACK is for tests only; it is refused in production")
    if (
        production
        and settings.push_enabled
        and (settings.vapid_private_key is None or settings.vapid_subject is None)
    ):
        raise ValueError(
            "PUSH_ENABLED=true needs VAPID_PRIVATE_KEY and VAPID_SUBJECT in production; "
            "generate a key with `python -m backend push-key`"
        )
    if settings.smtp_host is not None and settings.smtp_from is None:
        raise ValueError("SMTP_HOST needs SMTP_FROM (the address reminders come from)")
    if (settings.smtp_username is None) != (settings.smtp_password is None):
        raise ValueError("SMTP_USERNAME and SMTP_PASSWORD go together: set both")
    if (
        production
        and settings.smtp_security == "none"
        and settings.smtp_host is not None
        and settings.smtp_host not in _LOOPBACK_HOSTS
    ):
        raise ValueError(
            "SMTP_SECURITY=none in production only to a server on this host (a password "
            "and users' addresses would cross the network in clear)"
        )
    if (settings.s3_access_key_id is None) != (settings.s3_secret_access_key is None):
        raise ValueError("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: set both")
    if production and settings.database_url is None:
        raise ValueError(
            "DATABASE_URL is required in production (the embedded database is for "
            "development and tests)"
        )
