"""Who calls a tool, for any transport and chat; apart from server.py so chat needs no MCP SDK."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.errors import Unauthorized
from backend.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Caller:
    """Who is calling and where their data lives. `refused` hears of a call whose unit of work
    refused the account, for a transport that answers that itself (HTTP: 401)."""

    engine: Engine
    settings: Settings
    claims: TokenClaims
    client_ip: str
    refused: Callable[[Unauthorized], None] | None = None
    # Hears each call's tool and status (200: no error), for a transport that logs and counts.
    observed: Callable[[str, int], None] | None = None

    def work(self, **options: Any) -> UnitOfWork:
        """A unit of work of this caller's (`options`: `UnitOfWork`'s)."""
        return UnitOfWork(
            self.engine, self.settings, claims=self.claims, client_ip=self.client_ip, **options
        )
