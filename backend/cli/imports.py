"""`python -m backend import`: a file's tasks into one account (docs/guides/import-export.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from backend.cli.common import DEV_HELP, fail, first_line, load_settings, opened

if TYPE_CHECKING:
    from backend.cli.common import Subcommands

SOURCES = ("auto", "task-api", "todoist", "ticktick", "google-tasks", "ical")


def cmd_import(args: argparse.Namespace) -> int:
    from backend.errors import AppError
    from backend.transfer.operator import account_of, import_file
    from backend.transfer.plan import NotThisSource

    settings = load_settings(args.dev)
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"import: {first_line(exc)}")
    if len(data) > settings.import_max_bytes:
        fail(f"import: {path} is larger than IMPORT_MAX_BYTES ({settings.import_max_bytes})")
    try:
        with opened(settings) as engine:
            user_id = account_of(engine, settings, args.user)
            result = import_file(
                engine,
                settings,
                user_id,
                source=args.source,
                data=data,
                file_name=path.name,
                zone=args.time_zone,
                list_id=args.list_id,
                dry_run=args.dry_run,
            )
    except LookupError as exc:
        fail(f"import: {exc}")
    except NotThisSource as exc:
        fail(f"import: {exc.where}: {exc.message}")
    except AppError as exc:
        fail(f"import: {exc.message}")
    print(json.dumps(result, indent=2))
    return 0 if result.get("state", "done") == "done" else 1


def add_import(sub: Subcommands) -> None:
    command = sub.add_parser(
        "import",
        help="import a file's tasks into an account (Todoist, TickTick, Google Tasks, iCalendar, "
        "our own export)",
        description="Read FILE as SOURCE and import it into USER's account with the same rules "
        "as POST /api/imports, in this process; prints the import (or, with --dry-run, what it "
        "would create) as JSON. Exit status 1 if the import failed.",
    )
    command.add_argument("file", metavar="FILE", help="the exported file (CSV, JSON, ICS or zip)")
    command.add_argument("--user", required=True, help="the account: its email or id")
    command.add_argument("--source", choices=SOURCES, default="auto", help="default auto")
    command.add_argument(
        "--dry-run", action="store_true", help="write nothing; show what it would do"
    )
    command.add_argument("--time-zone", help="IANA zone for what the file carries no zone for")
    command.add_argument("--list-id", type=int, help="the list for tasks with no list of their own")
    command.add_argument("--dev", action="store_true", help=DEV_HELP)
    command.set_defaults(func=cmd_import)
