"""The MCP server over stdio, for one user: `python -m backend mcp` (desktop agents), named by a
bearer token (verified on every call: a revoked one stops mid-session) or, for whoever holds the
database credentials anyway, by a user id."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from sqlalchemy import Engine

from backend.auth.bearer import TokenVerifier, authenticate
from backend.auth.tokens import MAX_SUBJECT_LENGTH, TokenClaims
from backend.config import Settings
from backend.mcp.caller import Caller
from backend.mcp.server import build_server
from backend.models.common import storable_text
from backend.services.unit_of_work import UnitOfWork

CLIENT = "stdio"  # what the rate limiter and the logs see as the client address


@dataclass(frozen=True)
class StdioIdentity:
    """Who the stdio server acts for: a token (checked on every call) or a user id."""

    token: str | None = None
    user_id: str | None = None

    def claims(self, verifier: TokenVerifier) -> TokenClaims:
        if self.token is not None:
            return verifier.verify(self.token)
        return user_claims(self.user_id or "")


def user_claims(user_id: str) -> TokenClaims:
    """The claims a `python -m backend token USER_ID` token carries, without the token."""
    if not user_id.strip() or len(user_id) > MAX_SUBJECT_LENGTH:
        raise ValueError(f"a user id is 1-{MAX_SUBJECT_LENGTH} characters")
    return TokenClaims(subject=storable_text(user_id), local=False)


def check_account(engine: Engine, settings: Settings, claims: TokenClaims) -> str:
    """The caller's user id, as a request's unit of work resolves it (or Unauthorized)."""
    with UnitOfWork(engine, settings, claims=claims, client_ip=CLIENT) as work:
        return work.caller_id


def stdio_server_for(engine: Engine, settings: Settings, identity: StdioIdentity) -> Server[Any]:
    verifier = TokenVerifier(settings)
    fixed = None if identity.token is not None else user_claims(identity.user_id or "")

    async def identify(ctx: ServerRequestContext[Any, Any]) -> Caller:
        claims = fixed or await authenticate(verifier, identity.token)
        return Caller(engine, settings, claims, CLIENT)

    return build_server(identify)


async def serve(server: Server[Any]) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """fd 1 (child processes' too: the embedded PostgreSQL) to stderr: stdout is the protocol's."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
