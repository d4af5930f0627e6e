"""Stream tickets: a browser's `EventSource` (no bearer header) opens the live stream without
the long-lived token in a URL. A ticket is random, valid `STREAM_TICKET_SECONDS`, used once,
stored as its hash (`statements.tokens.token_hash`)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Boolean, Engine, Float, Integer, Text, bindparam, delete, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.auth.tokens import TokenClaims
from backend.db.engine import autocommitted
from backend.db.scope import OWNER, Scoped, owned
from backend.models import StreamTicket
from backend.services.statements.tokens import token_hash

_TICKETS = StreamTicket.__table__  # type: ignore[attr-defined]
_T = _TICKETS.c
# The caller's expired tickets go with its next one (none pile up).
_EXPIRED = owned(delete(_TICKETS).where(_T.expires_at <= func.now()), _T.user_id).cte("expired")
_SECONDS = bindparam("seconds", type_=Integer)
_ISSUE = (
    pg_insert(StreamTicket)
    .values(
        token_hash=bindparam("token_hash", type_=Text),
        user_id=bindparam(OWNER),
        local=bindparam("local", type_=Boolean),
        token_version=bindparam("token_version", type_=Integer),
        token_expires_at=func.to_timestamp(bindparam("token_expires_at", type_=Float)),
        expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, _SECONDS),
    )
    .returning(_T.expires_at)
    .add_cte(_EXPIRED)
)
# The use: deleted whether usable or not (a ticket is tried once).
_USE = text(
    "DELETE FROM stream_tickets WHERE token_hash = :token_hash "
    "RETURNING user_id, local, token_version, "
    "extract(epoch FROM token_expires_at)::float8 AS token_expires_at, expires_at > now() AS usable"
)


class StreamTickets(Scoped):
    def issue(self, claims: TokenClaims, seconds: int) -> tuple[str, datetime]:
        """A new ticket carrying `claims`' token version and expiry, returned once."""
        ticket = secrets.token_urlsafe(32)
        rows = self._write(
            _ISSUE,
            last=True,
            token_hash=token_hash(ticket),
            local=claims.local,
            token_version=claims.token_version,
            token_expires_at=claims.expires_at,
            seconds=seconds,
        )
        return ticket, rows[0].expires_at


def use(engine: Engine, ticket: str) -> TokenClaims | None:
    """The claims a ticket was made with, or None; any ticket is used up."""
    with autocommitted(engine) as conn:
        row = conn.execute(_USE, {"token_hash": token_hash(ticket)}).one_or_none()
    if row is None or not row.usable:
        return None
    return TokenClaims(
        subject=row.user_id,
        local=row.local,
        token_version=row.token_version,
        expires_at=row.token_expires_at,
    )
