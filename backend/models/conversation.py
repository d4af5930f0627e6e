"""Conversations with the task agent and their messages (specs/chat.md): tables and schemas."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from backend.models.columns import (
    INSTANT,
    column,
    id_column,
    now_column,
    same_user_key,
    user_id_column,
)
from backend.models.common import JsonInt
from backend.models.references import CONVERSATIONS, Reference, not_a_reference
from backend.models.text import MultiLineText

# Ids are BIGINT identities: a path or body id above this is refused (422), never sent.
CONVERSATION_ID_MAX = 2**63 - 1
# A user's message: what a person types, bounded like a task's description.
MESSAGE_MAX_LENGTH = 4000


def _random_id(prefix: str) -> Any:
    """A ChatKit id made by the database: the prefix and 122 random bits (migration 0025)."""
    return text(f"'{prefix}' || replace(gen_random_uuid()::text, '-', '')")


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        # What a message's `conversation_id` points at (a same-user key).
        UniqueConstraint("user_id", "id"),
        Index("ix_conversations_user_id_updated_at_id", "user_id", "updated_at", "id"),
        # ChatKit's thread id (migration 0025): unguessable, unique.
        UniqueConstraint("public_id", name="uq_conversations_public_id"),
        CheckConstraint("char_length(title) <= 200", name="ck_conversations_title"),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    public_id: str | None = column(
        Text,
        nullable=False,
        server_default=_random_id("thr_"),
        info=not_a_reference("the row's own ChatKit id (migration 0025)"),
        default=None,
    )
    title: str | None = column(Text, default=None)
    created_at: datetime | None = now_column()
    updated_at: datetime | None = now_column()


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("user_id", "id"),
        # A retry finds its first attempt by the request's Idempotency-Key.
        UniqueConstraint("user_id", "idempotency_key"),
        # At most one answer per user message.
        UniqueConstraint("user_id", "reply_to"),
        CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
        CheckConstraint("(role = 'assistant') = (reply_to IS NOT NULL)", name="ck_messages_reply"),
        same_user_key("messages", "conversation_id", "conversations"),
        same_user_key("messages", "reply_to", "messages"),
        Index("ix_messages_user_id_conversation_id_id", "user_id", "conversation_id", "id"),
        # ChatKit's item id (migration 0025; an answer's is set by a trigger).
        UniqueConstraint("public_id", name="uq_messages_public_id"),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    conversation_id: int = column(BigInteger, nullable=False)
    role: str = column(Text, nullable=False)
    content: str = column(Text, nullable=False)
    tool_calls: list[dict[str, Any]] | None = column(JSONB, default=None)
    reply_to: int | None = column(BigInteger, default=None)
    idempotency_key: str | None = column(Text, default=None)
    error_code: str | None = column(Text, default=None)
    input_tokens: int | None = column(Integer, default=None)
    output_tokens: int | None = column(Integer, default=None)
    public_id: str | None = column(
        Text,
        nullable=False,
        server_default=_random_id("msg_"),
        info=not_a_reference("the row's own ChatKit id (migration 0025)"),
        default=None,
    )
    created_at: datetime | None = now_column()
    # An unfinished answer's last heartbeat from the attempt running its turn (migration 0026).
    heartbeat_at: datetime | None = column(INSTANT, default=None)


# What a turn stores of what the model wrote must read back through the API (whose serializer
# stops at 255 levels) and fit JSONB and TEXT (no NUL, no lone surrogates).
STORED_DEPTH_MAX = 32  # levels of nesting in stored tool arguments or results
ARGUMENTS_MAX_CHARS = 16_000  # a tool's arguments as JSON (the largest valid ones: ~4 KB)
RESULT_MAX_CHARS = 1_000_000  # a tool's result as JSON (a listing page: ~300 KB at most)
RAW_TEXT_MAX_CHARS = 2_000  # what is kept of arguments stored as text (not storable JSON)
ANSWER_MAX_CHARS = 32_000  # the model's answer, in characters
_REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str, limit: int) -> str:
    """`text` as it may be stored and sent: at most `limit` characters (cut ones end in an
    ellipsis), NUL and lone surrogates replaced by U+FFFD."""
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    if "\x00" in text:
        text = text.replace("\x00", _REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub(_REPLACEMENT, text)
    return text


def storable(value: Any, max_chars: int) -> bool:
    """Whether a JSON value can be stored and served as it is (depth, finite numbers, clean
    strings, `max_chars`); walked without recursion, so any depth is safe."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    budget = max_chars
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > STORED_DEPTH_MAX:
                return False
            budget -= 2 + len(item)
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            budget -= len(item) + 2
            if clean_text(item, len(item) + 1) != item:
                return False
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return False
            budget -= 24
        elif isinstance(item, bool | int) or item is None:
            budget -= len(str(item)) if isinstance(item, int) else 5
        else:
            return False
        if budget < 0:
            return False
    return True


def stored_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as it may be stored: arguments or a result not `storable` kept as text."""
    arguments, result = call.get("arguments"), call.get("result")
    if not storable(arguments, ARGUMENTS_MAX_CHARS):
        arguments = clean_text(
            arguments if isinstance(arguments, str) else _text_of(arguments), RAW_TEXT_MAX_CHARS
        )
    if not storable(result, RESULT_MAX_CHARS):
        result = clean_text(_text_of(result), RAW_TEXT_MAX_CHARS)
    if arguments is call.get("arguments") and result is call.get("result"):
        return call
    return {**call, "arguments": arguments, "result": result}


def _text_of(value: Any) -> str:
    """Some JSON text for a value `storable` refused (its start; a placeholder if too deep)."""
    try:
        return json.dumps(value, ensure_ascii=False)[: RAW_TEXT_MAX_CHARS + 1]
    except (ValueError, RecursionError):
        return "<not storable>"


ConversationId = Annotated[JsonInt, Field(ge=1, le=CONVERSATION_ID_MAX)]
MessageText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX_LENGTH),
    MultiLineText,
]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: Annotated[ConversationId, Reference(CONVERSATIONS, None)] | None = Field(
        default=None,
        description="The conversation to continue (from an earlier answer or "
        "`GET /api/conversations`); absent or null starts a new one.",
        examples=[None],
    )
    message: MessageText = Field(
        description=f"What the user says (1-{MESSAGE_MAX_LENGTH} characters after trimming).",
        examples=["Add a task to buy milk"],
    )


class ToolCallPublic(BaseModel):
    """One tool the agent called, in order: its name, its arguments and how it went."""

    name: str = Field(examples=["add_task"])
    arguments: Any = Field(
        description="The arguments the model sent (an object; the raw text if it was not JSON).",
        examples=[{"title": "Buy milk"}],
    )
    outcome: Literal["ok", "error"] = Field(examples=["ok"])
    error_code: str | None = Field(
        default=None,
        description="The error's code (as in the REST API) when `outcome` is `error`.",
        examples=[None],
    )
    result: Any = Field(
        default=None,
        description="What the tool answered (its result, or the error envelope).",
        examples=[{"task_id": 42, "status": "created", "title": "Buy milk"}],
    )


class TokenUsage(BaseModel):
    input_tokens: int = Field(description="Tokens the provider read (prompt).", examples=[812])
    output_tokens: int = Field(description="Tokens the provider wrote.", examples=[37])


class ChatAnswer(BaseModel):
    conversation_id: int = Field(examples=[3])
    message_id: int = Field(description="The stored assistant message.", examples=[18])
    response: str = Field(
        description="The assistant's answer.", examples=["Added \u201cBuy milk\u201d."]
    )
    tool_calls: list[ToolCallPublic] = Field(description="The tools called, in order.")
    usage: TokenUsage


class ConversationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[3])
    created_at: datetime
    updated_at: datetime = Field(description="When its last message was stored.")


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[17])
    conversation_id: int = Field(examples=[3])
    role: Literal["user", "assistant"]
    content: str = Field(examples=["Add a task to buy milk"])
    tool_calls: list[ToolCallPublic] = Field(
        default_factory=list, description="An assistant message's tool calls (user: none)."
    )
    error_code: str | None = Field(
        default=None,
        description="An assistant message whose turn failed: the error's code (its "
        "`tool_calls` are the ones that committed before it); `CHAT_TURN_UNFINISHED` while "
        "its turn runs, or after its attempt died (retry with the same Idempotency-Key).",
        examples=[None],
    )
    usage: TokenUsage | None = Field(
        default=None, description="An assistant message's token usage (user: null)."
    )
    created_at: datetime
