"""The `stream_tickets` table (migration 0045): one-time tickets that open a live change
stream from a browser's `EventSource`, and the ticket's response schema."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import Boolean, Column, DateTime, Index, Integer, Text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from backend.models.columns import user_id_column


class StreamTicket(SQLModel, table=True):
    __tablename__ = "stream_tickets"
    __table_args__ = (Index("ix_stream_tickets_user_id_expires_at", "user_id", "expires_at"),)

    # SHA-256 of the ticket, hex (`invitations.token_hash`): the ticket itself is never stored.
    token_hash: str = SQLField(sa_column=Column(Text, primary_key=True, nullable=False))
    user_id: str = user_id_column()
    # What the stream needs of the bearer token the ticket was made with.
    local: bool = SQLField(sa_column=Column(Boolean, nullable=False))
    token_version: int | None = SQLField(default=None, sa_column=Column(Integer))
    token_expires_at: datetime | None = SQLField(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    expires_at: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))


class StreamTicketPublic(BaseModel):
    ticket: str = Field(
        description="Pass as `ticket` to `GET /api/changes/stream`, once, before "
        "`expires_at`. A secret: never log or store it.",
        examples=["Xl3b3Qz0mE3y2n2KqN1q9w0oJ4c1tV7f6b8a5d2e4gU"],
    )
    expires_at: datetime = Field(examples=["2030-01-01T12:01:00Z"])
