"""`POST /api/chatkit`: OpenAI ChatKit's protocol on our chat (specs/chat.md, "ChatKit"), parsed,
checked and begun by `backend.chat.chatkit_server`. Async: a turn waits seconds on the model,
which must hold no thread-pool worker or database connection (its database work: worker threads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from backend.api.deps import Door, DoorRoute
from backend.api.responses import (
    CHAT_NOT_CONFIGURED,
    CHATKIT_ITEM_NOT_FOUND,
    CONVERSATION_NOT_FOUND,
    KEY_IN_USE,
    RATE_LIMIT_EXCEEDED,
    UNAVAILABLE,
    VALIDATION,
    errors,
    rate_limited,
)
from backend.api.routes.chat import ChatIdempotencyKey, chat_caller, chat_model

if TYPE_CHECKING:  # ChatKit loads on the first request (backend/chat/stack.py)
    from backend.chat.chatkit_server import TaskChatKitServer

router = APIRouter(tags=["chat"], responses=errors(401, 422), route_class=DoorRoute)

STREAM = "text/event-stream"
# Proxies (nginx, some ingresses) buffer a response unless told not to: a stream would arrive
# in one piece at the end.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
REQUEST_TYPES = (
    "threads.create",
    "threads.add_user_message",
    "threads.retry_after_item",
    "threads.custom_action",
    "threads.get_by_id",
    "threads.list",
    "threads.update",
    "threads.delete",
    "items.list",
    "items.feedback",
    "threads.add_client_tool_output",
    "threads.add_structured_input",
    "threads.sync_custom_action",
    "attachments.create",
    "attachments.delete",
    "input.transcribe",
)

_DESCRIPTION = f"""\
The endpoint for OpenAI's ChatKit front end (`@openai/chatkit-react`, `CustomApiConfig.url`; \
see `examples/chatkit/`): ChatKit's own protocol, as the `openai-chatkit` Python SDK \
defines it, on the same chat as `POST /api/chat`. A ChatKit thread is a conversation \
(`GET /api/conversations` lists it), its items are the conversation's messages plus the \
widgets ChatKit shows; the agent, its tools, limits and failures are `/api/chat`'s.

The body is `{{"type", "params", "metadata"}}`. `threads.create`, \
`threads.add_user_message`, `threads.retry_after_item` and `threads.custom_action` answer \
`{STREAM}` (ChatKit's `data:` frames: `thread.created`, `thread.item.added/updated/done/\
replaced`, `error`, ...); the others answer JSON. Attachments, dictation, client tools, \
structured input and synchronous actions answer 422 (not supported).

Everything a client can get wrong is answered before the stream starts, as a status with \
the error envelope: a body that is not a ChatKit request (422), a thread or item that is not \
the caller's (the 404 a missing one gets), the chat rate limit (429) and a server without a \
chat model (503). A turn's failure after it began is the stream's `error` event, and is \
stored as on `/api/chat`. The task widget's Complete and Delete buttons run the task routes' \
service, for the caller, counted as a write."""

_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["type", "params"],
                "properties": {
                    "type": {"type": "string", "enum": list(REQUEST_TYPES)},
                    "params": {"type": "object"},
                    "metadata": {"type": "object"},
                },
            },
            "example": {
                "type": "threads.create",
                "params": {
                    "input": {
                        "content": [{"type": "input_text", "text": "Add a task to buy milk"}],
                        "attachments": [],
                        "inference_options": {},
                    }
                },
            },
        }
    },
}

_OK = rate_limited(200, "ChatKit's answer: JSON, or server-sent events for a turn or action.")
_OK[200]["content"] = {
    "application/json": {"schema": {"type": "object"}},
    # Each server-sent event: one `data:` line holding a ChatKit event as JSON.
    STREAM: {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "string", "description": "A ChatKit event, as JSON."}},
            "description": "ChatKit's server-sent events.",
        }
    },
}
_EXAMPLES = (
    CONVERSATION_NOT_FOUND,
    CHATKIT_ITEM_NOT_FOUND,
    KEY_IN_USE,
    VALIDATION,
    RATE_LIMIT_EXCEEDED,
    CHAT_NOT_CONFIGURED,
    UNAVAILABLE,
)


@router.post(
    "/api/chatkit",
    operation_id="chatkit",
    summary="OpenAI ChatKit's protocol",
    description=_DESCRIPTION,
    responses=_OK | errors(404, 409, 413, 429, 503, examples=_EXAMPLES),
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def chatkit(
    door: Door, request: Request, response: Response, idempotency_key: ChatIdempotencyKey = None
) -> Response:
    from chatkit.server import StreamingResult

    from backend.chat.chatkit_server import parse, prepare

    body = await request.body()
    parsed = parse(body)
    caller = chat_caller(door, request)
    prepared = await anyio.to_thread.run_sync(
        prepare, door, caller, parsed, idempotency_key, lambda: chat_model(request)
    )
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    if prepared.body is not None:
        return Response(prepared.body, media_type="application/json", headers=headers)
    prepared.context.outcome = request.scope.setdefault("state", {})
    result = await _server(request).process(body, prepared.context)
    if not isinstance(result, StreamingResult):  # `prepare` answers every JSON request
        raise TypeError(f"{parsed.type} answered without a stream")
    return StreamingResponse(result, media_type=STREAM, headers={**headers, **STREAM_HEADERS})


def _server(request: Request) -> TaskChatKitServer:
    """The app's ChatKit server (it holds no request's state), built on first use."""
    from backend.chat.chatkit_server import TaskChatKitServer

    state = request.app.state
    if getattr(state, "chatkit_server", None) is None:
        state.chatkit_server = TaskChatKitServer(state.chat_turns)
    server: TaskChatKitServer = state.chatkit_server
    return server
