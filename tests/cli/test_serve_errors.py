"""`serve` refuses to start on a broken set-up with one line saying what to fix: no traceback.

Each case runs the real command; a server that did start would block, so the timeout doubles
as the assertion that it exited by itself.
"""

from __future__ import annotations

import subprocess

import pytest

from backend.db.migrations import migration_ids
from tests.cli.helpers import closed_port, run_cli


def serve(**env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("serve", "--port", str(closed_port()), timeout=60, **env)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "url", ["not-a-url", "mysql://u:p@127.0.0.1/db", "postgresql://u:p@host:port/db"]
)
def test_malformed_database_url(url: str) -> None:
    result = serve(DATABASE_URL=url)
    assert one_line(result).startswith(
        "error: DATABASE_URL is not a valid PostgreSQL URL; expected postgresql://"
    )
    assert result.returncode == 1


def test_unreachable_database() -> None:
    port = closed_port()
    result = serve(DATABASE_URL=f"postgresql://u:p@127.0.0.1:{port}/db")
    assert one_line(result) == (
        f"error: DATABASE_URL: nothing is listening at 127.0.0.1:{port}; "
        "is PostgreSQL running on that port?"
    )


def test_unreachable_migration_database(database_url: str) -> None:
    port = closed_port()
    result = serve(
        DATABASE_URL=database_url,
        DATABASE_MIGRATION_URL=f"postgresql://u:p@127.0.0.1:{port}/db",
    )
    assert one_line(result).startswith("error: DATABASE_MIGRATION_URL: nothing is listening")


def test_short_jwt_secret(database_url: str) -> None:
    result = serve(DATABASE_URL=database_url, JWT_SECRET="too-short")
    assert one_line(result).startswith(
        "configuration error: JWT_SECRET must be at least 32 bytes; generate one with"
    )
    assert result.returncode == 2


def test_wildcard_cors_origin(database_url: str) -> None:
    result = serve(DATABASE_URL=database_url, CORS_ORIGINS="*")
    assert one_line(result) == (
        "configuration error: CORS_ORIGINS must list explicit origins: '*' cannot be combined "
        "with credentialed requests"
    )


def test_unapplied_migrations_in_production(unmigrated_database_url: str) -> None:
    result = serve(DATABASE_URL=unmigrated_database_url, ENVIRONMENT="production")
    shipped = sorted(migration_ids())
    assert one_line(result) == (
        f"error: the database has {len(shipped)} unapplied migration(s) ({', '.join(shipped)}); "
        "run `python -m backend migrate up` (it uses DATABASE_MIGRATION_URL when set) or set "
        "AUTO_MIGRATE=true"
    )
    assert result.returncode == 1


def test_missing_database_url_in_production() -> None:
    result = serve(ENVIRONMENT="production")
    assert one_line(result).startswith(
        "configuration error: DATABASE_URL is required in production"
    )
