"""What ChatKit shows in a thread that is not a message (migration 0025, specs/chat.md
"ChatKit"): widgets and hidden context, each a ChatKit item as JSON, per user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKeyConstraint, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from backend.models.columns import column, now_column, same_user_key
from backend.models.references import not_a_reference


class ChatKitItem(SQLModel, table=True):
    __tablename__ = "chatkit_items"
    __table_args__ = (
        UniqueConstraint("user_id", "id"),
        UniqueConstraint("public_id", name="uq_chatkit_items_public_id"),
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_chatkit_items_user_id_users"
        ),
        same_user_key("chatkit_items", "conversation_id", "conversations"),
        Index("ix_chatkit_items_user_id_conversation_id_id", "user_id", "conversation_id", "id"),
    )

    # Drawn from the messages' sequence: a thread's messages and items sort together.
    id: int | None = column(
        BigInteger,
        primary_key=True,
        server_default=text("nextval('messages_id_seq')"),
        default=None,
    )
    user_id: str = column(Text, nullable=False)
    conversation_id: int = column(BigInteger, nullable=False)
    public_id: str = column(
        Text, nullable=False, info=not_a_reference("the row's own ChatKit id (migration 0025)")
    )
    item: dict[str, Any] = column(JSONB, nullable=False)
    created_at: datetime | None = now_column()
