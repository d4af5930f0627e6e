"""One-time tickets that open a live change stream from a browser's `EventSource`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import Boolean, Index, Integer, Text
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column, user_id_column


class StreamTicket(SQLModel, table=True):
    __tablename__ = "stream_tickets"
    __table_args__ = (Index("ix_stream_tickets_user_id_expires_at", "user_id", "expires_at"),)

    # SHA-256 of the ticket, hex (`tokens.token_hash`): the ticket itself is never stored.
    token_hash: str = column(Text, primary_key=True, nullable=False)
    user_id: str = user_id_column()
    # What the stream needs of the bearer token the ticket was made with.
    local: bool = column(Boolean, nullable=False)
    token_version: int | None = column(Integer, default=None)
    token_expires_at: datetime | None = column(INSTANT, default=None)
    expires_at: datetime = column(INSTANT, nullable=False)


class StreamTicketPublic(BaseModel):
    ticket: str = Field(
        description="Pass as `ticket` to `GET /api/changes/stream`, once, before "
        "`expires_at`. A secret: never log or store it.",
        examples=["Xl3b3Qz0mE3y2n2KqN1q9w0oJ4c1tV7f6b8a5d2e4gU"],
    )
    expires_at: datetime = Field(examples=["2030-01-01T12:01:00Z"])
