"""The recorded answer to each (user, Idempotency-Key) pair."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, SmallInteger, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column, now_column, user_id_column

KEY_MAX_LENGTH = 255


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    user_id: str = user_id_column(primary_key=True)
    key: str = column(Text, primary_key=True, nullable=False)
    fingerprint: str = column(Text, nullable=False)
    response_status: int = column(SmallInteger, nullable=False)
    # The body exactly as first sent (text, not JSONB, which would reorder keys).
    response_body: str = column(Text, nullable=False)
    response_headers: dict[str, Any] = column(
        JSONB, nullable=False, server_default=text("'{}'"), default_factory=dict
    )
    created_at: datetime | None = now_column()
    expires_at: datetime = column(INSTANT, nullable=False)
