"""`/api/chat` (and `/api/{user_id}/chat`) and `/api/conversations` (specs/chat.md): the turn is
`backend.chat.turn`, the rows `ConversationService`. The chat endpoint is async: a turn waits
seconds on the model, which must hold no thread-pool worker or database connection (its
database work goes through the door in worker threads, never on the loop).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Path, Request, Response, status
from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.datastructures import MutableHeaders

from backend.api.deps import Door, DoorRoute, uses
from backend.api.idempotency import REPLAYED_HEADER
from backend.api.pagination import Cursor, PageSize, row_page
from backend.api.responses import (
    CHAT_NOT_CONFIGURED,
    CHAT_PROVIDER_ERROR,
    CHAT_PROVIDER_TIMEOUT,
    CHAT_PROVIDER_UNAVAILABLE,
    CHAT_TOO_MANY_TURNS,
    CONVERSATION_NOT_FOUND,
    INVALID_CURSOR,
    KEY_IN_USE,
    KEY_MISMATCH,
    RATE_LIMIT_EXCEEDED,
    UNAVAILABLE,
    VALIDATION,
    errors,
    rate_limited,
)
from backend.api.routes.user_tasks import UserId
from backend.chat import turn
from backend.errors import describe, error_body
from backend.mcp.caller import Caller
from backend.models.common import DecimalDigits
from backend.models.conversation import (
    CONVERSATION_ID_MAX,
    ChatRequest,
    ConversationPublic,
    MessagePublic,
)
from backend.models.envelopes import ChatEnvelope, ConversationsEnvelope, MessagesEnvelope
from backend.models.idempotency import KEY_MAX_LENGTH
from backend.models.references import CONVERSATIONS, Reference
from backend.observability.logging import OUTCOME_STATUS_KEY
from backend.services.chat.conversations import ConversationService

router = APIRouter(tags=["chat"], responses=errors(401, 422), route_class=DoorRoute)

ConversationId = Annotated[
    int,
    Path(ge=1, le=CONVERSATION_ID_MAX, description="The conversation's id.", examples=[3]),
    DecimalDigits,
    Reference(CONVERSATIONS, None),
]
STREAM = "text/event-stream"
# The Idempotency-Key of a chat turn: kept with the user's message (as long as the
# conversation), and a failed turn's retry runs again rather than replaying the failure.
ChatIdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=KEY_MAX_LENGTH,
        pattern=r"^[!-~]+$",
        description="A unique value (1-255 visible ASCII characters, e.g. a UUID) that makes "
        "a retry of this turn safe, for as long as its conversation exists: a turn that "
        f"answered is replayed (`{REPLAYED_HEADER}: true`, no model call); one that failed "
        "runs again, and the tool calls that committed the first time are not repeated. "
        "The same key with another message or conversation is 422 "
        "`IDEMPOTENCY_KEY_MISMATCH`; while the first attempt runs, 409 "
        "`IDEMPOTENCY_KEY_IN_USE`. Keys are per user, shared by no other route.",
        examples=["0b6f5a8e-6c1e-4a7b-9d83-2f0e3c7a9b41"],
    ),
]

_CHAT_DESCRIPTION = f"""\
One turn of a conversation with the task agent: your message is stored, the agent reads the \
conversation's recent history, calls task tools for you (the MCP tools: `add_task`, \
`list_tasks`, `complete_task`, `delete_task`, `update_task`, ...) and answers; the answer \
and its tool calls are stored. No `conversation_id` starts a new conversation.

With `Accept: {STREAM}` the same turn streams server-sent events: `start` \
(`{{"conversation_id"}}`), `delta` (`{{"text"}}`, the answer as it is written), \
`tool_call_start` and `tool_call_end` (each tool call), then `done` (the whole answer, as \
the JSON response's `data`) or `error` (the error envelope). What is stored is the same; a \
client that disconnects leaves the turn to finish and be stored.

An `Idempotency-Key` makes a retry safe: a turn that answered is replayed \
(`{REPLAYED_HEADER}: true`); one that failed runs again without repeating the tool calls \
that committed. Chat has its own per-user rate limit (`RateLimit` policy `"chat"`)."""

# The turn's own refusals, then the model's and the database's failures.
_TURN = (CONVERSATION_NOT_FOUND, KEY_IN_USE, VALIDATION, KEY_MISMATCH, RATE_LIMIT_EXCEEDED)
_MODEL = (CHAT_PROVIDER_ERROR, CHAT_TOO_MANY_TURNS, CHAT_NOT_CONFIGURED, CHAT_PROVIDER_UNAVAILABLE)
_EXAMPLES = (*_TURN, *_MODEL, UNAVAILABLE, CHAT_PROVIDER_TIMEOUT)
_IN_USE = {
    409: "The first turn with this `Idempotency-Key` has not answered yet "
    "(`IDEMPOTENCY_KEY_IN_USE`); retry after `Retry-After`."
}
_ERRORS = errors(400, 404, 409, 413, 429, 502, 503, 504, examples=_EXAMPLES, descriptions=_IN_USE)
_OK = rate_limited(200, "The answer and the tool calls it made.", REPLAYED_HEADER)
_OK[200]["content"] = {STREAM: {"schema": {"type": "string", "description": "Server-sent events."}}}


@router.post(
    "/api/chat",
    operation_id="chat",
    response_model=ChatEnvelope,
    summary="Chat with your tasks",
    description=_CHAT_DESCRIPTION,
    responses=_OK | _ERRORS,
)
async def chat(
    door: Door,
    body: ChatRequest,
    request: Request,
    response: Response,
    idempotency_key: ChatIdempotencyKey = None,
) -> ChatEnvelope | Response:
    return await _turn(door, body, request, response, idempotency_key, None)


@router.post(
    "/api/{user_id}/chat",
    operation_id="chatForUser",
    response_model=ChatEnvelope,
    summary="Chat with your tasks",
    description=f"{_CHAT_DESCRIPTION}\n\nThe published contract's path for `POST /api/chat`: "
    "the same answer when `user_id` is the caller's id, 404 when it is not.",
    responses=_OK | _ERRORS,
)
async def chat_for_user(
    user_id: UserId,
    door: Door,
    body: ChatRequest,
    request: Request,
    response: Response,
    idempotency_key: ChatIdempotencyKey = None,
) -> ChatEnvelope | Response:
    return await _turn(door, body, request, response, idempotency_key, user_id)


async def _turn(
    door: Door,
    body: ChatRequest,
    request: Request,
    response: Response,
    key: str | None,
    path_user: str | None,
) -> ChatEnvelope | Response:
    app = request.app
    caller = chat_caller(door, request)
    asked = turn.TurnRequest(body.conversation_id, body.message, key)
    start = await anyio.to_thread.run_sync(turn.begin, door, caller, asked, path_user)
    model = chat_model(request)
    if start.answered is not None:
        response.headers[REPLAYED_HEADER] = "true"
    if STREAM not in request.headers.get("accept", ""):
        return ChatEnvelope(data=await turn.run(model, caller, start, body.message))
    outcome = request.scope.setdefault("state", {})
    events = _events(app.state.chat_turns, model, caller, start, body.message, outcome)
    return EventSourceResponse(events, headers=_copied(response.headers))


def chat_caller(door: Door, request: Request) -> Caller:
    """The caller a chat turn's units of work are for: the door's verified token."""
    claims = door.claims
    if claims is None:  # `Door` always verifies one
        raise TypeError("chat needs a signed-in caller's door")
    return Caller(
        engine=request.app.state.engine,
        settings=request.app.state.settings,
        claims=claims,
        client_ip=request.client.host if request.client else "unknown",
    )


def chat_model(request: Request) -> Any:
    """The app's model client, built on first use (chat may never be used): the Agents SDK
    and the `openai` client are imported then, not at start (backend/chat/stack.py)."""
    state = request.app.state
    if getattr(state, "chat_model", None) is None:
        from backend.chat.provider import build_model

        state.chat_model = build_model(state.settings)
    return state.chat_model


def _copied(headers: MutableHeaders) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "content-length"}


async def _events(
    running: set[asyncio.Task[None]],
    model: Any,
    caller: Caller,
    start: Any,
    message: str,
    outcome: dict[str, Any],
) -> AsyncIterator[bytes]:
    """The turn as server-sent events, run as a task of its own: a client that goes away stops
    hearing it, not the turn. A failure's status goes to `outcome`, so the access log and the
    metrics record it rather than the 200 the stream began with."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def emit(event: str, data: dict[str, Any]) -> None:
        queue.put_nowait((event, data))

    async def work() -> None:
        try:
            answer = await turn.run(model, caller, start, message, emit)
            emit("done", answer.model_dump(mode="json"))
        except Exception as exc:  # every failure is the stream's last event
            parts = describe(exc)
            outcome[OUTCOME_STATUS_KEY] = parts.status
            emit("error", error_body(parts.code, parts.message, parts.details))

    task = asyncio.create_task(work())
    running.add(task)
    task.add_done_callback(running.discard)
    yield format_sse_event(
        event="start", data_str=json.dumps({"conversation_id": start.conversation_id})
    )
    while True:
        event, data = await queue.get()
        yield format_sse_event(event=event, data_str=json.dumps(data, ensure_ascii=False))
        if event in ("done", "error"):
            return


@router.get(
    "/api/conversations",
    operation_id="listConversations",
    response_model=ConversationsEnvelope,
    summary="List your conversations",
    description="Newest activity first, keyset-paged: follow `meta.next_cursor` until null.",
    responses=errors(422, examples=(VALIDATION, INVALID_CURSOR)),
)
def list_conversations(
    door: Door,
    conversations: Annotated[ConversationService, uses(ConversationService)],
    limit: PageSize = 20,
    cursor: Cursor = None,
) -> ConversationsEnvelope:
    def read(after: tuple[int, int] | None) -> tuple[Sequence[Any], bool]:
        if after is None:
            return conversations.page(limit, None)
        micros, last_id = after
        return conversations.page(limit, (datetime.fromtimestamp(micros / 1_000_000, UTC), last_id))

    def key(row: Any) -> int:
        return round(float(row.updated_at.timestamp()) * 1_000_000)

    rows, meta = row_page(door, "conversations", limit, cursor, read, key)
    return ConversationsEnvelope(
        data=[ConversationPublic.model_validate(row) for row in rows], meta=meta
    )


@router.get(
    "/api/conversations/{conversation_id}/messages",
    operation_id="listConversationMessages",
    response_model=MessagesEnvelope,
    summary="List a conversation's messages",
    description="Oldest first, keyset-paged. An assistant's message keeps its tool calls, its "
    "token usage and, for a turn that failed, the error's code.",
    responses=errors(404, 422, examples=(CONVERSATION_NOT_FOUND, VALIDATION, INVALID_CURSOR)),
)
def list_conversation_messages(
    door: Door,
    conversations: Annotated[ConversationService, uses(ConversationService)],
    conversation_id: ConversationId,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> MessagesEnvelope:
    def read(after: int | None) -> tuple[Sequence[Any], bool]:
        return conversations.messages(conversation_id, limit, after)

    rows, meta = row_page(door, f"messages/{conversation_id}", limit, cursor, read)
    return MessagesEnvelope(
        data=[MessagePublic.model_validate(turn.message_view(row)) for row in rows], meta=meta
    )


@router.delete(
    "/api/conversations/{conversation_id}",
    operation_id="deleteConversation",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a conversation and its messages",
    responses=rate_limited(204, "Deleted, with its messages.")
    | errors(404, 429, examples=(CONVERSATION_NOT_FOUND,)),
)
def delete_conversation(
    conversations: Annotated[ConversationService, uses(ConversationService)],
    conversation_id: ConversationId,
) -> None:
    conversations.delete(conversation_id)
