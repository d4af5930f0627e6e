"""Settings, from the environment and an optional `.env` file; unsafe combinations fail at
start-up (backend/config_safety.py); the server's own keys: backend/keys.py."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.config_safety import refuse_unsafe
from backend.keys import development_secret, new_vapid_key, vapid_private_key

# Asymmetric algorithms a JWKS token may use. HS256 is only ever checked with the secret.
JWKS_ALGORITHMS = ("RS256", "ES256", "EdDSA")


# The browsers' push services: an endpoint elsewhere is refused unless PUSH_ALLOWED_HOSTS says so.
DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com",
    "android.googleapis.com",
    "updates.push.services.mozilla.com",
    ".push.apple.com",
    ".notify.windows.com",
)
# An empty value is unset: compose passes `${DAPR_HTTP_ENDPOINT:-}` for "not configured".
_UNSET = BeforeValidator(lambda value: None if value == "" else value)
UnsetText = Annotated[str | None, _UNSET]
UnsetSecret = Annotated[SecretStr | None, _UNSET]
# A webhook secret: Standard Webhooks' `whsec_` + base64 of at least this many random bytes.
MIN_WEBHOOK_SECRET_BYTES = 24


class WebhookTarget(BaseModel):
    """One event webhook: where to POST, and the Standard Webhooks secret that signs it."""

    url: HttpUrl
    secret: SecretStr

    @field_validator("url")
    @classmethod
    def _usable_port(cls, value: HttpUrl) -> HttpUrl:
        # Port 0 is no port a connection can be made to (the parser refuses above 65535).
        if value.port == 0:
            raise ValueError("a webhook URL's port is 1-65535")
        return value

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        encoded = raw.removeprefix("whsec_").rstrip("=")
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            key = b""
        if not raw.startswith("whsec_") or len(key) < MIN_WEBHOOK_SECRET_BYTES:
            raise ValueError(
                f"a webhook secret is whsec_ + base64 of at least {MIN_WEBHOOK_SECRET_BYTES} "
                "random bytes; generate one with `python -c 'import base64, secrets; "
                'print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\'`'
            )
        return value

    @property
    def name(self) -> str:
        """This target's name in `delivered_to`, metrics and logs: the URL without what may hold
        a credential, plus a digest of the whole URL if it had any (`?tenant=a` vs `b`)."""
        url = str(self.url)
        parts = urlsplit(url)
        bare = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        if bare == url:
            return bare
        return f"{bare}#{hashlib.sha256(url.encode()).hexdigest()[:12]}"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class LogFormat(StrEnum):
    json = "json"
    text = "text"


# The default response timeout is the statement timeout plus this: time for the server's own
# cancellation of a slow statement to arrive, on a busy machine.
DB_RESPONSE_MARGIN_MS = 2000
# libpq counts `connect_timeout` in whole seconds and waits at least 2 (1 is read as 2).
LIBPQ_MIN_CONNECT_TIMEOUT_SECONDS = 2


class Settings(BaseSettings):
    """Every setting; what each means, its default and range: docs/reference/configuration.md
    (tested to name each one). Comments here keep only the why a reader of the code needs."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    environment: Environment = Environment.production

    # Database. Unset: an embedded PostgreSQL in `embedded_pg_dir` (development and test only).
    database_url: SecretStr | None = None
    # Direct (non-pooled) URL for migrations; Neon's `-pooler` host is for the app only.
    database_migration_url: SecretStr | None = None
    embedded_pg_dir: Path = Path(".data/postgres")
    # No overflow by default: an overflow connection is closed when given back, so load above
    # the pool's size would start a backend (~10 ms of CPU) every few requests.
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Below Neon's 5-minute idle suspend, so no pooled connection outlives its compute.
    db_pool_recycle_seconds: int = Field(default=240, ge=10)
    db_pool_ping_idle_seconds: float = Field(default=5.0, ge=0, le=3600)
    db_connect_timeout_seconds: int = Field(default=10, ge=1, le=120)
    db_statement_timeout_ms: int = Field(default=5000, ge=0, le=3_600_000)
    # Holds when the server is too stuck to enforce its statement timeout (`effective_...`).
    db_response_timeout_ms: int | None = Field(default=None, ge=0, le=3_600_000)
    auto_migrate: bool | None = None

    # BETTER_AUTH_SECRET is accepted so a Better Auth front end and this API can share one.
    jwt_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("jwt_secret", "better_auth_secret")
    )
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_jwks_url: HttpUrl | None = None
    jwt_jwks_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256", "EdDSA"]
    )
    jwt_jwks_issuer: str | None = None
    jwt_jwks_audience: str | None = None
    jwt_jwks_cache_seconds: int = Field(default=300, ge=1, le=24 * 3600)
    jwt_jwks_min_refetch_seconds: int = Field(default=30, ge=0, le=3600)
    jwt_jwks_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    access_token_expire_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30)
    # For any issuer but the built-in sign-in, whose tokens are revocable instead.
    jwt_max_token_lifetime_seconds: int = Field(default=24 * 3600, ge=60, le=366 * 24 * 3600)

    public_url: HttpUrl | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Rate limits, counted in PostgreSQL (shared by every worker and replica); 0: that one off.
    rate_limit_enabled: bool = True
    rate_limit_auth_window_seconds: int = Field(default=300, ge=1, le=24 * 3600)
    rate_limit_sign_in_per_ip: int = Field(default=30, ge=0)
    rate_limit_sign_in_per_account: int = Field(default=10, ge=0)
    rate_limit_sign_up_per_ip: int = Field(default=10, ge=0)
    rate_limit_sign_up_per_account: int = Field(default=5, ge=0)
    rate_limit_task_window_seconds: int = Field(default=60, ge=1, le=24 * 3600)
    rate_limit_task_writes_per_user: int = Field(default=120, ge=0)
    rate_limit_invitations_per_hour: int = Field(default=30, ge=0)
    rate_limit_calendar_feed_per_hour: int = Field(default=120, ge=0)
    rate_limit_mail_links_per_ip: int = Field(default=30, ge=0)
    rate_limit_confirmation_mails_per_hour: int = Field(default=5, ge=0)
    # Never per username alone: anyone could lock its owner out.
    rate_limit_dav_failures_per_ip: int = Field(default=30, ge=0)
    rate_limit_dav_failures_per_username: int = Field(default=10, ge=0)

    # Event delivery by `python -m backend worker` (backend/events/, specs/events.md).
    dapr_http_endpoint: Annotated[HttpUrl | None, _UNSET] = None
    dapr_pubsub_name: str = Field(default="pubsub", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    dapr_task_events_topic: str = Field(default="task-events", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    dapr_reminders_topic: str = Field(default="reminders", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    dapr_list_events_topic: str = Field(default="list-events", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    dapr_task_updates_topic: UnsetText = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    dapr_api_token: UnsetSecret = None
    event_webhooks: list[WebhookTarget] = Field(default_factory=list, max_length=20)
    event_max_attempts: int = Field(default=12, ge=1, le=100)
    event_retry_base_seconds: float = Field(default=1.0, gt=0, le=3600)
    event_retry_max_seconds: float = Field(default=600.0, gt=0, le=24 * 3600)
    event_delivery_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    event_batch_size: int = Field(default=100, ge=1, le=1000)
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    worker_max_lag_seconds: int = Field(default=60, ge=1)

    # Imports (specs/import-export.md): the upload's bound (413 past it, before it is read
    # whole), the tasks a runner writes per unit of work, its lease on an import (a runner that
    # dies is taken over once it ends), how often an idle runner looks, and whether the API
    # process runs one (the worker always does; unset: in development only, so `serve --dev`
    # alone imports while a production API's threads serve requests, not a file's writes).
    import_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    import_chunk_tasks: int = Field(default=250, ge=1, le=5000)
    import_lease_seconds: float = Field(default=60.0, ge=5, le=3600)
    import_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    import_runner_in_api: bool | None = None

    # Web Push (RFC 8292) and email reminders.
    push_enabled: bool | None = None
    vapid_private_key: UnsetSecret = None
    vapid_subject: UnsetText = Field(
        default=None, pattern=r"^(mailto:[^\s@]+@[^\s@]+|https://[^\s/]+\S*)$", max_length=200
    )
    push_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PUSH_HOSTS), max_length=100
    )
    # Refused in production: a loopback endpoint is an SSRF door into this host's services.
    push_allow_loopback: bool = False
    push_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    smtp_host: UnsetText = Field(default=None, pattern=r"^[A-Za-z0-9.:\[\]-]{1,253}$")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: UnsetText = Field(default=None, max_length=256)
    smtp_password: UnsetSecret = None
    smtp_from: UnsetText = Field(default=None, max_length=320)
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    reminder_task_url_template: UnsetText = Field(
        default=None, pattern=r"^https?://[!-~]*\{task_id\}[!-~]*$", max_length=500
    )
    reminder_grace_seconds: int = Field(default=60, ge=0, le=24 * 3600)
    reminder_max_lateness_seconds: int = Field(default=24 * 3600, ge=0, le=365 * 24 * 3600)

    # At least the 24 h promised to clients.
    idempotency_key_ttl_seconds: int = Field(default=24 * 3600, ge=24 * 3600, le=30 * 24 * 3600)
    change_retention_hours: int = Field(default=7 * 24, ge=1, le=365 * 24)

    # The live stream (specs/changes.md).
    stream_heartbeat_seconds: float = Field(default=15.0, ge=0.05, le=300)
    stream_poll_ms: int = Field(default=50, ge=10, le=10_000)
    stream_max_per_user: int = Field(default=10, ge=1, le=1000)
    stream_max_per_worker: int = Field(default=2000, ge=1, le=100_000)
    # 8 keeps a reconnecting crowd from queueing and leaves most of the pool to requests.
    stream_read_concurrency: int = Field(default=8, ge=1, le=64)
    stream_send_timeout_seconds: float = Field(default=10.0, ge=0.1, le=300)
    stream_max_seconds: float = Field(default=3600.0, ge=0.1, le=86_400)
    stream_ticket_seconds: int = Field(default=60, ge=5, le=600)

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # The server's own bounds on a request, per worker (backend/server.py).
    http_max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=256 * 1024)
    http_request_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    http_max_connections: int = Field(default=1000, ge=1, le=100_000)
    hsts_max_age_seconds: int = Field(default=0, ge=0, le=2 * 365 * 24 * 3600)
    log_level: str = "INFO"
    log_format: LogFormat | None = None

    # Chat: any OpenAI-compatible provider; without base URL and model, 503.
    chat_base_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    chat_api_key: SecretStr | None = None
    chat_model: str | None = Field(default=None, min_length=1, max_length=200)
    chat_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    # A turn's lease derives from it (`backend.chat.turn.lease`).
    chat_heartbeat_seconds: float = Field(default=5.0, ge=0.1, le=60)
    chat_max_turns: int = Field(default=8, ge=1, le=50)
    chat_temperature: float | None = Field(default=0.2, ge=0, le=2)
    chat_history_messages: int = Field(default=30, ge=0, le=500)
    chat_history_chars: int = Field(default=24_000, ge=1000, le=1_000_000)
    chat_rate_limit_per_user: int = Field(default=20, ge=0)
    chat_rate_limit_window_seconds: int = Field(default=60, ge=1, le=24 * 3600)

    @property
    def chat_configured(self) -> bool:
        return self.chat_base_url is not None and self.chat_model is not None

    replicas: int = Field(default=1, ge=1, le=10_000)
    # Attachments (specs/storage.md): in S3 when S3_BUCKET is set, else under ATTACHMENTS_DIR.
    attachments_dir: Path | None = None
    attachments_max_file_bytes: int = Field(default=25 * 1024 * 1024, ge=1, le=5 * 1024**3)
    attachments_quota_bytes: int = Field(default=1024**3, ge=0, le=2**50)
    attachments_url_seconds: int = Field(default=300, ge=10, le=3600)
    # A younger orphan may be an upload in flight.
    attachments_orphan_seconds: int = Field(default=3600, ge=0, le=30 * 24 * 3600)
    s3_bucket: UnsetText = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    s3_endpoint_url: UnsetText = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    s3_region: UnsetText = Field(default=None, pattern=r"^[a-z0-9-]{1,40}$")
    # Unset: boto3's own chain (AWS_ACCESS_KEY_ID..., a web identity, an instance role).
    s3_access_key_id: UnsetText = Field(default=None, min_length=1, max_length=256)
    s3_secret_access_key: UnsetSecret = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_prefix: str = Field(default="attachments/", pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*/)*$")
    # The most one upload spools (1 MiB in memory, the rest on disk).
    s3_part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024**3)
    s3_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    s3_read_timeout_seconds: float = Field(default=3.0, gt=0, le=300)
    s3_max_attempts: int = Field(default=2, ge=1, le=10)
    attachments_max_concurrent_uploads: int = Field(default=16, ge=1, le=1000)
    attachments_stall_seconds: float = Field(default=15.0, gt=0, le=600)
    attachments_upload_seconds: float = Field(default=600.0, gt=0, le=3600)

    @property
    def effective_attachments_dir(self) -> Path:
        return self.attachments_dir or self.embedded_pg_dir.parent / "attachments"

    metrics_enabled: bool | None = None
    metrics_token: SecretStr | None = None

    @field_validator("cors_origins", "push_allowed_hosts", "jwt_jwks_algorithms", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """A comma-separated list, or a JSON one."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _bare_origins(cls, value: list[str]) -> list[str]:
        return [origin.rstrip("/") for origin in value]

    @field_validator("push_allowed_hosts")
    @classmethod
    def _plain_hosts(cls, value: list[str]) -> list[str]:
        hosts = [host.lower() for host in value]
        for host in hosts:
            if not re.fullmatch(r"\.?[a-z0-9-]+(\.[a-z0-9-]+)+", host):
                raise ValueError(f"PUSH_ALLOWED_HOSTS: {host!r} is not a host name (or .suffix)")
        return hosts

    @field_validator("jwt_jwks_algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(JWKS_ALGORITHMS))
        if unknown:
            raise ValueError(
                f"JWT_JWKS_ALGORITHMS: unsupported {', '.join(unknown)}; "
                f"choose from {', '.join(JWKS_ALGORITHMS)}"
            )
        if not value:
            raise ValueError("JWT_JWKS_ALGORITHMS must name at least one algorithm")
        return value

    @model_validator(mode="after")
    def _check_safety(self) -> Settings:
        refuse_unsafe(self)
        return self

    @property
    def push_on(self) -> bool:
        if self.push_enabled is not None:
            return self.push_enabled
        return self.vapid_private_key is not None or not self.is_production

    def vapid_key(self) -> ec.EllipticCurvePrivateKey:
        """The VAPID key; without one outside production, a random one kept in the data folder."""
        if self.vapid_private_key is not None:
            return vapid_private_key(self.vapid_private_key.get_secret_value())
        if self.is_production:
            raise ValueError("VAPID_PRIVATE_KEY is not set")
        path = self.embedded_pg_dir.parent / "dev-vapid-key"
        return vapid_private_key(development_secret(path, new_vapid_key))

    @property
    def vapid_contact(self) -> str:
        return self.vapid_subject or "mailto:admin@localhost"

    @property
    def has_event_sinks(self) -> bool:
        return self.dapr_http_endpoint is not None or bool(self.event_webhooks)

    @property
    def effective_db_response_timeout_ms(self) -> int:
        if self.db_response_timeout_ms is not None:
            return self.db_response_timeout_ms
        if self.db_statement_timeout_ms == 0:
            return 0
        return self.db_statement_timeout_ms + DB_RESPONSE_MARGIN_MS

    @property
    def effective_db_connect_timeout_seconds(self) -> int:
        """libpq's `connect_timeout`, no longer than the response timeout (whole seconds, 2 at
        least): no wait on a stuck server outlasts it."""
        response_timeout_ms = self.effective_db_response_timeout_ms
        if response_timeout_ms <= 0:
            return self.db_connect_timeout_seconds
        whole_seconds = max(LIBPQ_MIN_CONNECT_TIMEOUT_SECONDS, response_timeout_ms // 1000)
        return min(self.db_connect_timeout_seconds, whole_seconds)

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.json if self.is_production else LogFormat.text

    @property
    def serve_metrics(self) -> bool:
        if self.metrics_enabled is not None:
            return self.metrics_enabled
        return not self.is_production or self.metrics_token is not None

    @property
    def runs_imports_in_api(self) -> bool:
        if self.import_runner_in_api is not None:
            return self.import_runner_in_api
        return not self.is_production

    @property
    def should_auto_migrate(self) -> bool:
        return self.auto_migrate if self.auto_migrate is not None else not self.is_production

    @property
    def jwks_issuer(self) -> str | None:
        return self.jwt_jwks_issuer or self.jwt_issuer

    @property
    def jwks_audience(self) -> str | None:
        return self.jwt_jwks_audience or self.jwt_audience

    def signing_secret(self) -> str:
        """The HS256 secret; without one (development only), a random one in the data folder."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return development_secret(self.embedded_pg_dir.parent / "dev-jwt-secret")


@lru_cache
def get_settings() -> Settings:
    return Settings()
