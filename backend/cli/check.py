"""`python -m backend check`: settings, database reachability and migrations, one line each."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from backend.cli.common import DEV_HELP, database_url, load_settings

if TYPE_CHECKING:
    from backend.cli.common import Subcommands
    from backend.config import Settings
    from backend.db import preflight


def cmd_check(args: argparse.Namespace) -> int:
    from backend.db import preflight

    settings = load_settings(args.dev)
    print(f"ok    configuration: {settings.environment.value} mode, settings valid")
    findings: list[preflight.Finding] = [*storage_findings(settings)]
    migration_url: str | None = None
    if settings.database_url is None:
        print("ok    DATABASE_URL unset: using the embedded PostgreSQL (development and tests)")
        url = database_url(settings)
    else:
        url = settings.database_url.get_secret_value()
        direct = settings.database_migration_url
        migration_url = direct.get_secret_value() if direct is not None else None
        findings += preflight.lint_urls(url, migration_url)
    findings.append(preflight.probe("DATABASE_URL", url, args.timeout))
    if migration_url is not None:
        findings.append(preflight.probe("DATABASE_MIGRATION_URL", migration_url, args.timeout))
    if not any(f.level is preflight.Level.error for f in findings):
        findings.append(
            preflight.migrations_finding(
                migration_url or url, auto_migrate=settings.should_auto_migrate
            )
        )
    for finding in findings:
        print(
            finding.line(), file=sys.stdout if finding.level is preflight.Level.ok else sys.stderr
        )
    errors = sum(f.level is preflight.Level.error for f in findings)
    print("check failed" if errors else "check passed", file=sys.stderr if errors else sys.stdout)
    return 1 if errors else 0


def storage_findings(settings: Settings) -> list[preflight.Finding]:
    """Attachments on the filesystem with more than one replica: each replica would keep and
    serve only its own files (a warning: one replica on a shared volume is fine)."""
    from backend.db import preflight

    if settings.s3_bucket is None and settings.replicas > 1:
        return [
            preflight.Finding(
                preflight.Level.warn,
                f"attachments: on the filesystem (ATTACHMENTS_DIR) with REPLICAS="
                f"{settings.replicas}: each replica sees only the files uploaded to it; set "
                "S3_BUCKET (several replicas need S3: specs/storage.md)",
            )
        ]
    return []


def add_check(sub: Subcommands) -> None:
    check = sub.add_parser(
        "check",
        help="check configuration, database reachability and migrations",
        description="Validate the settings (warn when attachments are on the filesystem with "
        "REPLICAS above 1), lint DATABASE_URL / DATABASE_MIGRATION_URL for the "
        "usual Neon mistakes (missing sslmode, pooled host for migrations, direct host for "
        "the app), connect to each with a bounded timeout, and verify that every migration is "
        "applied. Prints one line per finding; exits 1 if any is an error.",
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for each database connection (default 5)",
    )
    check.add_argument("--dev", action="store_true", help=DEV_HELP)
    check.set_defaults(func=cmd_check)
