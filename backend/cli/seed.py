"""`python -m backend seed`: demo tasks for one account, through the API's own service."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from backend.cli.common import (
    DEV_HELP,
    database_url,
    fail,
    first_line,
    load_settings,
    ready_database,
)

if TYPE_CHECKING:
    from backend.cli.common import Subcommands


def cmd_seed(args: argparse.Namespace) -> int:
    from backend.services.seed import seed_tasks

    settings = load_settings(args.dev)
    url = database_url(settings)
    ready_database(settings, url)
    try:
        result = seed_tasks(url, settings, user=args.user, count=args.count, password=args.password)
    except ValueError as exc:  # pydantic's ValidationError included: a bad email or password
        fail(f"seed: {first_line(exc)}")
    print(result.summary())
    return 0


def add_seed(sub: Subcommands) -> None:
    seed = sub.add_parser(
        "seed",
        help="fill a user's account with demo tasks (once: a second run adds nothing)",
        description="Create demo tasks for one user, through the same service the API uses "
        "(so every validation rule holds), with a progress bar. USER is an account's email "
        "or id; an unknown email is registered with --password, an unknown id is created "
        "like a token's first use (sign in with `python -m backend token ID`).",
    )
    seed.add_argument(
        "user",
        nargs="?",
        default="demo@example.com",
        help="email or user id to seed (default demo@example.com)",
    )
    seed.add_argument("--count", type=int, default=25, help="tasks to create (1-1000, default 25)")
    seed.add_argument(
        "--password",
        default="demo-password",
        help="password for a newly registered email account (default demo-password)",
    )
    seed.add_argument("--dev", action="store_true", help=DEV_HELP)
    seed.set_defaults(func=cmd_seed)
