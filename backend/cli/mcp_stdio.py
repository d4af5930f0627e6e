"""`python -m backend mcp`: the MCP tools over stdio for one user (desktop agents)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from backend.cli.common import DEV_HELP, database_url, fail, load_settings, logger, ready_database

if TYPE_CHECKING:
    from backend.cli.common import Subcommands

# The stdio server's bearer token: an environment variable keeps it out of `ps` listings.
MCP_TOKEN_ENV = "TASK_API_TOKEN"  # noqa: S105 (a variable's name, not a secret)


def cmd_mcp(args: argparse.Namespace) -> int:
    import anyio

    from backend.auth.bearer import TokenVerifier
    from backend.auth.jwks import JwksUnavailable
    from backend.auth.tokens import InvalidToken
    from backend.db.engine import create_db_engine
    from backend.errors import AppError
    from backend.mcp.stdio import (
        StdioIdentity,
        check_account,
        serve,
        stdio_server_for,
        stdout_to_stderr,
    )

    settings = load_settings(args.dev)
    token = args.token or os.environ.get(MCP_TOKEN_ENV) or None
    if (token is None) == (args.user is None):
        fail(f"mcp: name the user: --user USER_ID, or a bearer token in {MCP_TOKEN_ENV}")
    identity = StdioIdentity(token=token, user_id=args.user)
    # Until the protocol owns it, nothing may reach stdout (the embedded server starts here).
    with stdout_to_stderr():
        url = database_url(settings)
        ready_database(settings, url)
        engine = create_db_engine(url, settings)
        try:
            user_id = check_account(engine, settings, identity.claims(TokenVerifier(settings)))
        except (InvalidToken, JwksUnavailable):
            fail("mcp: the token is invalid or expired, or its issuer's keys cannot be fetched")
        except AppError as exc:
            fail(f"mcp: {exc.message}")
        except ValueError as exc:
            fail(f"mcp: --user: {exc}")
    logger.info("serving the MCP tools over stdio for user %s", user_id)
    try:
        anyio.run(serve, stdio_server_for(engine, settings, identity))
    finally:
        engine.dispose()
    return 0


def add_mcp(sub: Subcommands) -> None:
    mcp = sub.add_parser(
        "mcp",
        help="serve the MCP tools over stdio for one user",
        description="Serve the MCP tools (the same as /mcp over HTTP) on stdin/stdout, for a "
        "desktop agent that starts its MCP servers as subprocesses. The user is a bearer "
        f"token's, from {MCP_TOKEN_ENV} (or --token; checked again on every call), or --user "
        "USER_ID (its account is created on first use, like a `token` command token). "
        "Without DATABASE_URL it uses the embedded PostgreSQL (--dev: the one `serve --dev` "
        "uses). Logs go to stderr.",
    )
    who = mcp.add_mutually_exclusive_group()
    who.add_argument("--user", metavar="USER_ID", help="act as this user id")
    who.add_argument(
        "--token", help=f"act as this token's user (prefer {MCP_TOKEN_ENV}: arguments show in `ps`)"
    )
    mcp.add_argument("--dev", action="store_true", help=DEV_HELP)
    mcp.set_defaults(func=cmd_mcp)
