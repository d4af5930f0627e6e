"""Who calls a tool (`Caller`): what a tool's unit of work needs, for any transport and for
chat; apart from server.py so that chat, which names a caller, does not import the MCP SDK."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.errors import Unauthorized


@dataclass(frozen=True)
class Caller:
    """Who is calling and where their data lives. `refused` hears of a call whose unit of work
    refused the account, for a transport that answers that itself (HTTP: 401)."""

    engine: Engine
    settings: Settings
    claims: TokenClaims
    client_ip: str
    refused: Callable[[Unauthorized], None] | None = None
    # Hears each call's outcome (the tool, and the status its error envelope carries, 200 for
    # none), for a transport that logs and counts it (HTTP: the access log and metrics).
    observed: Callable[[str, int], None] | None = None
