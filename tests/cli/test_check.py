"""`check`: settings, the Neon URL rules, reachability with a bounded timeout, migrations."""

from __future__ import annotations

import json
import time

import pytest

from backend.db.migrations import migration_ids
from backend.db.preflight import Level, lint_urls
from tests.cli.helpers import closed_port, run_cli, silent_listener

POOLED = "postgresql://app:pw@ep-cool-name-123456-pooler.eu-central-1.aws.neon.tech/neondb"
DIRECT = "postgresql://app:pw@ep-cool-name-123456.eu-central-1.aws.neon.tech/neondb"
SSL = "?sslmode=require&channel_binding=require"


def levels(app: str, migrations: str | None) -> list[tuple[Level, str]]:
    return [(f.level, f.message) for f in lint_urls(app, migrations)]


def test_neon_urls_as_pasted_from_the_console_pass() -> None:
    assert levels(POOLED + SSL, DIRECT + SSL) == []


def test_missing_sslmode_on_neon_is_an_error_naming_the_fix() -> None:
    [(level, message)] = levels(POOLED, DIRECT + SSL)
    assert level is Level.error
    assert message.startswith("DATABASE_URL has no sslmode")
    assert "add ?sslmode=require" in message
    [(level, message)] = levels(POOLED + "?sslmode=disable", DIRECT + SSL)
    assert "sslmode=disable" in message


def test_pooled_host_for_migrations_is_an_error() -> None:
    [(level, message)] = levels(POOLED + SSL, POOLED + SSL)
    assert level is Level.error
    assert "DATABASE_MIGRATION_URL uses Neon's pooled '-pooler' host" in message


def test_direct_host_for_the_app_and_no_migration_url_are_warnings() -> None:
    [(level, message)] = levels(DIRECT + SSL, DIRECT + SSL)
    assert (level, message.split(";")[0]) == (Level.warn, "DATABASE_URL uses Neon's direct host")
    [(level, message)] = levels(POOLED + SSL, None)
    assert level is Level.warn and "DATABASE_MIGRATION_URL is unset" in message


def test_remote_non_neon_host_without_ssl_is_a_warning_local_is_not() -> None:
    [(level, _)] = levels("postgresql://u:p@db.example.com/app", None)
    assert level is Level.warn
    assert levels("postgresql://u:p@localhost/app", None) == []


def test_malformed_urls_are_one_line_errors() -> None:
    [(level, message)] = levels("mysql://u:p@host/db", None)
    assert level is Level.error and "DATABASE_URL is not a valid PostgreSQL URL" in message
    [(level, message)] = levels("postgresql://u:p@host:port/db", None)
    assert message.startswith("DATABASE_URL is not a valid PostgreSQL URL; expected postgresql://")


def test_check_passes_on_a_migrated_database(database_url: str) -> None:
    result = run_cli("check", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert "ok    DATABASE_URL: connected to" in result.stdout
    assert f"ok    migrations: all {len(migration_ids())} applied" in result.stdout
    assert result.stdout.strip().endswith("check passed")


FILESYSTEM_WARNING = "warn  attachments: on the filesystem (ATTACHMENTS_DIR) with REPLICAS=3"


@pytest.mark.parametrize(
    ("replicas", "bucket", "warned"),
    [("3", None, True), ("1", None, False), ("3", "task-files", False), (None, None, False)],
)
def test_check_warns_of_filesystem_attachments_with_several_replicas(
    database_url: str, replicas: str | None, bucket: str | None, warned: bool
) -> None:
    """Each replica would keep its own files: a warning (the check still passes), naming
    the fix; none with one replica (the default) or with S3."""
    env = {"DATABASE_URL": database_url}
    if replicas is not None:
        env["REPLICAS"] = replicas
    if bucket is not None:
        env |= {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = run_cli("check", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("check passed")
    lines = [line for line in result.stderr.splitlines() if "attachments:" in line]
    if warned:
        [line] = lines
        assert line.startswith(FILESYSTEM_WARNING) and "set S3_BUCKET" in line
    else:
        assert lines == []


def test_check_reports_every_neon_mistake_and_an_unreachable_host() -> None:
    # hostaddr= makes libpq skip name resolution: the Neon-looking hosts resolve to loopback.
    port = closed_port()
    app = f"{DIRECT}?hostaddr=127.0.0.1&port={port}"
    migrations = f"{POOLED}{SSL}&hostaddr=127.0.0.1&port={port}"
    result = run_cli("check", DATABASE_URL=app, DATABASE_MIGRATION_URL=migrations)
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert any(line.startswith("error DATABASE_URL has no sslmode") for line in errors)
    assert any(line.startswith("warn  DATABASE_URL uses Neon's direct host") for line in errors)
    assert any("DATABASE_MIGRATION_URL uses Neon's pooled '-pooler' host" in e for e in errors)
    assert any("DATABASE_URL: nothing is listening at" in line for line in errors)
    assert errors[-1] == "check failed"
    assert "Traceback" not in result.stderr


def test_check_gives_up_on_a_silent_host_within_its_timeout() -> None:
    # The command's own start (imports) on this machine, measured beside it: the bound is on
    # the wait, not on how fast the machine starts Python.
    started = time.monotonic()
    assert run_cli("check", "--help").returncode == 0
    startup = time.monotonic() - started
    with silent_listener() as port:
        started = time.monotonic()
        result = run_cli(
            "check", "--timeout", "2", DATABASE_URL=f"postgresql://u:p@127.0.0.1:{port}/db"
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert f"127.0.0.1:{port} did not answer within 2 s" in result.stderr
    # A silent host without the timeout would hang for libpq's default (none) or TCP's.
    assert elapsed < 2 * startup + 12, (elapsed, startup)
    assert "Traceback" not in result.stderr


def test_check_flags_pending_migrations(unmigrated_database_url: str) -> None:
    result = run_cli("check", DATABASE_URL=unmigrated_database_url, ENVIRONMENT="production")
    assert result.returncode == 1
    shipped = sorted(migration_ids())
    assert f"unapplied migration(s) ({', '.join(shipped)})" in result.stderr
    assert "python -m backend migrate up" in result.stderr


def test_check_reports_configuration_errors_in_one_line() -> None:
    result = run_cli("check", JWT_SECRET="short")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: JWT_SECRET must be at least 32 bytes; generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    ]


@pytest.mark.parametrize(
    "command", ["serve", "migrate", "token", "seed", "export", "check", "prune", "db", "openapi"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from backend.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    # One spelling everywhere: the usage line says what the docs say.
    assert out.startswith(f"usage: python -m backend {command}")
    assert "-h, --help" in out
    # A description paragraph between the usage line and the options.
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 12, out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from backend.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "migrate", "token", "seed", "check", "openapi"):
        assert f"    {command}" in out


@pytest.mark.parametrize("action", ["up", "down", "status"])
def test_migrate_on_an_unreachable_database_is_one_line(action: str) -> None:
    url = f"postgresql://nobody@127.0.0.1:{closed_port()}/none"
    result = run_cli("migrate", action, DATABASE_URL=url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: migrate: cannot reach the database")


def test_migrate_status_from_the_command_line(database_url: str) -> None:
    status = json.loads(run_cli("migrate", "status", DATABASE_URL=database_url).stdout)
    assert status["pending"] == [] and status["applied"] == sorted(migration_ids())
