"""Checks run before the API starts (`serve`, `seed`) and by `check`: each problem is one line
saying what to change (no traceback to read), the Neon rules the usual pasting mistakes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import psycopg2
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from backend.db.engine import libpq_url

NEON_HOST_SUFFIX = ".neon.tech"
SAFE_SSLMODES = frozenset({"require", "verify-ca", "verify-full"})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class Level(StrEnum):
    ok = "ok"
    warn = "warn"
    error = "error"


@dataclass(frozen=True)
class Finding:
    level: Level
    message: str

    def line(self) -> str:
        return f"{self.level.value:<5} {self.message}"


@dataclass(frozen=True)
class ParsedUrl:
    host: str | None
    port: int | None
    database: str | None
    query: dict[str, str]

    @property
    def is_neon(self) -> bool:
        return bool(self.host and self.host.endswith(NEON_HOST_SUFFIX))

    @property
    def is_neon_pooler(self) -> bool:
        # Neon's pooled endpoints are `ep-name-123456-pooler.<region>...neon.tech`.
        return self.is_neon and "-pooler." in (self.host or "")

    @property
    def is_local(self) -> bool:
        return self.host is None or self.host in LOCAL_HOSTS or self.host.startswith("/")

    @property
    def where(self) -> str:
        if self.host is None:
            return f"the local socket {self.query.get('host', '(default)')}"
        return f"{self.host}:{self.port or 5432}"


def parse_url(name: str, url: str) -> ParsedUrl:
    """Parse a database URL or raise ValueError with a one-line message naming the variable."""
    try:
        parsed = make_url(libpq_url(url))
    except (ValueError, ArgumentError):
        raise ValueError(
            f"{name} is not a valid PostgreSQL URL; expected "
            "postgresql://USER:PASSWORD@HOST[:PORT]/DBNAME[?sslmode=require]"
        ) from None
    query = {k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()}
    return ParsedUrl(host=parsed.host, port=parsed.port, database=parsed.database, query=query)


def lint_urls(app_url: str, migration_url: str | None) -> Iterator[Finding]:
    """Static checks of DATABASE_URL / DATABASE_MIGRATION_URL (no connection made)."""
    try:
        app = parse_url("DATABASE_URL", app_url)
    except ValueError as exc:
        yield Finding(Level.error, str(exc))
        return
    yield from _lint_ssl("DATABASE_URL", app)
    if app.is_neon and not app.is_neon_pooler:
        yield Finding(
            Level.warn,
            "DATABASE_URL uses Neon's direct host; the app should use the pooled host "
            "(add '-pooler' after the endpoint id, e.g. ep-name-123456-pooler...) so that "
            "replicas share Neon's connection pool",
        )
    if migration_url is None:
        if app.is_neon_pooler:
            yield Finding(
                Level.warn,
                "DATABASE_MIGRATION_URL is unset, so migrations would run through the "
                "pooled '-pooler' host; set it to Neon's direct connection string",
            )
        return
    try:
        migrations = parse_url("DATABASE_MIGRATION_URL", migration_url)
    except ValueError as exc:
        yield Finding(Level.error, str(exc))
        return
    yield from _lint_ssl("DATABASE_MIGRATION_URL", migrations)
    if migrations.is_neon_pooler:
        yield Finding(
            Level.error,
            "DATABASE_MIGRATION_URL uses Neon's pooled '-pooler' host; migrations need the "
            "direct host (remove '-pooler' from the host name)",
        )


def _lint_ssl(name: str, url: ParsedUrl) -> Iterator[Finding]:
    sslmode = url.query.get("sslmode")
    if url.is_neon and sslmode not in SAFE_SSLMODES:
        got = f"sslmode={sslmode}" if sslmode else "no sslmode"
        yield Finding(
            Level.error,
            f"{name} has {got}; Neon only accepts SSL connections: add ?sslmode=require "
            "(as in the connection string Neon's console shows)",
        )
    elif not url.is_local and sslmode not in SAFE_SSLMODES:
        yield Finding(
            Level.warn,
            f"{name} points at the remote host {url.host} without sslmode=require; "
            "credentials and data may travel unencrypted",
        )


def probe(name: str, url: str, timeout: float) -> Finding:
    """Connect once and run `SELECT 1`, giving up after `timeout` seconds (DNS included)."""
    try:
        parsed = parse_url(name, url)
    except ValueError as exc:
        return Finding(Level.error, str(exc))
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            # libpq's own timeout (at least 2 s) bounds the TCP connect and the handshake.
            conn = psycopg2.connect(libpq_url(url), connect_timeout=max(2, round(timeout)))
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
            finally:
                conn.close()
            outcome.append(None)
        except BaseException as exc:  # reported below, never re-raised
            outcome.append(exc)

    # A daemon thread: name resolution is not covered by libpq's timeout and may hang.
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 1)
    if not outcome:
        return Finding(Level.error, _unreachable(name, parsed, timeout))
    error = outcome[0]
    if error is None:
        return Finding(Level.ok, f"{name}: connected to {parsed.where}/{parsed.database or ''}")
    return Finding(Level.error, describe_connect_error(name, parsed, error, timeout))


def _unreachable(name: str, url: ParsedUrl, timeout: float) -> str:
    return (
        f"{name}: {url.where} did not answer within {timeout:g} s; check the host name and "
        "port, and that this machine may reach it (firewall, VPN, Neon IP allow-list)"
    )


def describe_connect_error(name: str, url: ParsedUrl, error: BaseException, timeout: float) -> str:
    """One actionable line for the usual reasons a connection fails."""
    text = " ".join(str(error).split())
    lowered = text.lower()
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return (
            f"{name}: host {url.host} not found; check the host name (copy it from Neon's console)"
        )
    if "timeout expired" in lowered:
        return _unreachable(name, url, timeout)
    if "connection refused" in lowered:
        return f"{name}: nothing is listening at {url.where}; is PostgreSQL running on that port?"
    if "password authentication failed" in lowered:
        return f"{name}: the server rejected the user name or password; check the credentials"
    if "does not exist" in lowered and "database" in lowered:
        return f"{name}: database {url.database!r} does not exist on {url.where}"
    if "endpoint" in lowered and "not found" in lowered:
        return f"{name}: Neon does not know this endpoint; check the ep-... part of the host"
    if "ssl" in lowered:
        return f"{name}: SSL negotiation failed ({text}); Neon needs ?sslmode=require"
    return f"{name}: cannot connect to {url.where}: {text}"


def migrations_finding(url: str, *, auto_migrate: bool) -> Finding:
    """Whether every shipped migration is applied (the database must be reachable)."""
    from backend.db.migrations import migration_status

    status = migration_status(url)
    if status.pending and auto_migrate:
        return Finding(
            Level.warn,
            f"{len(status.pending)} migration(s) pending ({', '.join(status.pending)}); "
            "`serve` applies them at start (auto-migrate is on)",
        )
    if status.pending:
        return Finding(Level.error, pending_message(status.pending))
    return Finding(Level.ok, f"migrations: all {len(status.applied)} applied")


def pending_message(pending: list[str]) -> str:
    return (
        f"the database has {len(pending)} unapplied migration(s) ({', '.join(pending)}); "
        "run `python -m backend migrate up` (it uses DATABASE_MIGRATION_URL when set)"
    )
