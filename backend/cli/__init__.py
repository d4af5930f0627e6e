"""Command line: `python -m backend <command>`. Every command reads its settings from the
environment and `.env` (docs/reference/configuration.md); add --help after a command for its
options, e.g. `python -m backend seed --help`.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from backend.cli import (
    check,
    database,
    docs_site,
    documents,
    events,
    export,
    imports,
    mcp_stdio,
    seed,
    serve,
    token,
)

# In the order `--help` lists them.
COMMANDS = (
    serve.add_serve,
    database.add_migrate,
    token.add_token,
    token.add_push_key,
    seed.add_seed,
    imports.add_import,
    export.add_export,
    check.add_check,
    database.add_prune,
    database.add_db,
    documents.add_openapi,
    mcp_stdio.add_mcp,
    documents.add_mcp_tools,
    docs_site.add_docs,
    events.add_worker,
    events.add_events,
)
# Commands that print their own findings: library chatter would bury them.
QUIET = {
    "check",
    "seed",
    "export",
    "token",
    "push-key",
    "openapi",
    "prune",
    "db",
    "mcp-tools",
    "events",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.command in QUIET else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger(__name__).setLevel(logging.INFO)  # its own few lines always show
    from backend.observability.logging import CHATTY_LOGGERS, without_statements

    # A database error logged by any command keeps its class, never its SQL or values.
    without_statements(logging.getLogger().handlers)
    # initdb/pg_ctl output and migration steps buried the start-up; LOG_LEVEL=DEBUG shows them.
    debug = os.environ.get("LOG_LEVEL", "").upper() == "DEBUG"
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    result: int = args.func(args)
    return result
