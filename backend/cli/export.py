"""`python -m backend export`: an account's export (the zip `GET /api/export` streams), for an
operator answering a user's request for their data."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import TYPE_CHECKING

from backend.cli.common import DEV_HELP, fail, load_settings, opened

if TYPE_CHECKING:
    from backend.cli.common import Subcommands


def cmd_export(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from backend.auth.tokens import TokenClaims
    from backend.services.accounts.users import UserService
    from backend.services.unit_of_work import UnitOfWork
    from backend.storage.app import storage_for
    from backend.transfer.exporter import Account, archive, file_name

    settings = load_settings(args.dev)
    with opened(settings) as engine:
        with UnitOfWork(engine, settings) as work:
            users: UserService = work.service(UserService)
            found = users.find_by_email(args.user.lower()) if "@" in args.user else None
            found = found or users.get(args.user)
        if found is None:
            fail(f"export: no account {args.user!r} (an email or a user id)")
        now = datetime.now(UTC)
        claims = TokenClaims(subject=found.id, local=False)

        work_of_the_user = partial(UnitOfWork, engine, settings, claims=claims)
        chunks = archive(
            work_of_the_user, storage_for(settings), Account(found.id, found.email), now
        )
        if args.out == "-":
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return 0
        out = Path(args.out or file_name(now))
        written = 0
        unfinished = out.with_name(out.name + ".partial")
        with unfinished.open("wb") as file:
            for chunk in chunks:
                file.write(chunk)
                written += len(chunk)
        unfinished.replace(out)  # a failed export leaves no file that looks whole
        print(f"exported {found.email or found.id} to {out} ({written} bytes)", file=sys.stderr)
        return 0


def add_export(sub: Subcommands) -> None:
    export = sub.add_parser(
        "export",
        help="write an account's export zip (what GET /api/export streams)",
        description="Write everything one account owns (lists, tasks, comments, attachments' "
        "bytes, saved filters, notification settings, tasks.ics) to a zip, as GET /api/export "
        'streams it to the user (specs/import-export.md, "Export"). No credential is part '
        "of it.",
    )
    export.add_argument("--user", required=True, help="the account's email or user id")
    export.add_argument(
        "--out",
        help="the zip to write (default: tasks-export-<YYYY-MM-DD>.zip here; - for stdout)",
    )
    export.add_argument("--dev", action="store_true", help=DEV_HELP)
    export.set_defaults(func=cmd_export)
