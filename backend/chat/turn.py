"""One chat turn (specs/chat.md, "A turn"): the chat limit; the door storing the message and
reading the history; the agent, outside any transaction (each tool call its own unit of work);
the answer or error stored. A retry of its key replays the answer or re-runs a failed turn with
its committed calls given as done; a running attempt's claim lives by heartbeats (`_keep`)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from backend.chat.claim import Claim
from backend.config import Settings
from backend.errors import AppError, ChatNotConfigured, NotFound, describe
from backend.mcp.caller import Caller
from backend.models.conversation import ChatAnswer, MessagePublic, TokenUsage
from backend.services.chat.conversations import (
    CONVERSATION_NOT_FOUND,
    ConversationService,
    Reply,
    TurnStart,
)
from backend.services.rate_limits import RateLimiter
from backend.services.unit_of_work import UnitOfWork

if TYPE_CHECKING:  # the chat stack loads on first use (backend/chat/stack.py)
    from agents.items import TResponseInputItem
    from agents.models.interface import Model

    from backend.chat.tools import Emit, Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnRequest:
    conversation_id: int | None
    message: str
    key: str | None


def begin(
    door: UnitOfWork, caller: Caller, request: TurnRequest, path_user: str | None = None
) -> TurnStart:
    """The limit and the door, in a worker thread. `path_user`: `/api/{user_id}/chat`'s id,
    which must be the caller's (else a missing conversation's answer)."""
    settings = caller.settings
    if not settings.chat_configured:
        raise ChatNotConfigured()
    limit_headers: dict[str, str] = {}
    gate = UnitOfWork(
        caller.engine, settings, client_ip=caller.client_ip, response_headers=limit_headers
    )
    with gate:
        limits: RateLimiter = gate.service(RateLimiter)
        limits.chat(caller.claims.subject)
    # Before the claim is stored: the lease counts from no earlier than this.
    since = time.monotonic()
    try:
        with door:
            if path_user is not None and path_user != door.caller_id:
                raise NotFound(CONVERSATION_NOT_FOUND)
            conversations: ConversationService = door.service(ConversationService)
            start = conversations.begin_turn(
                request.conversation_id,
                request.message,
                request.key,
                history_messages=settings.chat_history_messages,
                running_for=lease(settings),
                unbeaten_for=unbeaten_lease(settings),
            )
        return replace(start, since=since)
    finally:
        _merge(door.response_headers, limit_headers)


def lease(settings: Settings) -> timedelta:
    """How long an attempt holds its turn after its last beat: three beats and a database wait.
    Its calls start within two beats of its newest confirmed one (`Claim.check`) and end within
    a database wait, so none runs once a retry may take over."""
    return timedelta(seconds=3 * settings.chat_heartbeat_seconds + _database_wait(settings))


def unbeaten_lease(settings: Settings) -> timedelta:
    """The lease of an attempt that never beats (older code in a rolling deploy): the longest a
    turn may run, a database wait for each of its last writes, and a margin."""
    return timedelta(seconds=settings.chat_timeout_seconds + 2 * _database_wait(settings) + 5)


def _database_wait(settings: Settings) -> float:
    """The longest one database call waits: for a pooled connection, then for the answer."""
    return settings.db_pool_timeout_seconds + settings.effective_db_response_timeout_ms / 1000


def _merge(headers: Any, chat: dict[str, str]) -> None:
    """The chat limit's RateLimit headers beside the write limit's (one list per header)."""
    for name in ("RateLimit-Policy", "RateLimit"):
        if name in chat:
            mine = headers.get(name)
            headers[name] = f"{mine}, {chat[name]}" if mine else chat[name]


async def run(
    model: Model, caller: Caller, start: TurnStart, message: str, emit: Emit | None = None
) -> ChatAnswer:
    """The agent and the stored answer: the answer, or the AppError to send."""
    if start.answered is not None:
        return answer_of(start.answered)
    from backend.chat.agent import TurnFailed, call_items, history_items, run_agent
    from backend.chat.tools import Ledger
    from backend.mcp.tools import withheld_call

    settings = caller.settings
    # As a stored call is read (never a credential): what the ledger replays and stores again.
    start = replace(start, earlier_calls=[withheld_call(c) for c in start.earlier_calls])
    claim = Claim(settings.chat_heartbeat_seconds, start.since)
    ledger = Ledger(earlier=start.earlier_calls, message_id=start.message_id, claim=claim)
    items: list[TResponseInputItem] = [
        *history_items(start.history, settings),
        {"role": "user", "content": message},
        *call_items(start.earlier_calls, f"retry{start.message_id}"),
    ]
    beating = asyncio.create_task(_keep(caller, start, claim))
    try:
        try:
            outcome = await run_agent(model, settings, caller, items, ledger, emit)
        finally:
            _stop(beating)
    except TurnFailed as failed:
        error = failed.error
        reply = Reply(
            start.conversation_id,
            start.message_id,
            "",
            _committed(start, ledger),
            failed.input_tokens,
            failed.output_tokens,
            error_code=error.code,
            held=start.held,
        )
        await _store_or_report(caller, reply, _holds_until(settings, claim))
        raise _reported(error, start.conversation_id, reply.tool_calls) from None
    # The calls of a first attempt that this one did not make again stay on the record.
    made = [c for c in start.earlier_calls if c not in ledger.calls]
    reply = Reply(
        start.conversation_id,
        start.message_id,
        outcome.text,
        [*made, *ledger.calls],
        outcome.input_tokens,
        outcome.output_tokens,
        held=start.held,
    )
    return answer_of(await _store_or_report(caller, reply, _holds_until(settings, claim)))


async def _keep(caller: Caller, start: TurnStart, claim: Claim) -> None:
    """Renew the claim every beat while the attempt runs: a confirmed beat moves it on, a
    refused one loses it, a failed one tells nothing."""
    due = start.since + claim.period
    while not claim.lost:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        try:
            sent, held = await anyio.to_thread.run_sync(_beat, caller, start)
        except Exception as exc:
            log.warning("chat turn heartbeat failed: %s", describe(exc).code)
            due += claim.period
            continue
        if held:
            claim.confirm(sent)
        else:
            claim.lost = True
        due = sent + claim.period


def _beat(caller: Caller, start: TurnStart) -> tuple[float, bool]:
    """One beat (in a worker thread): when it was sent, and whether the claim still stands."""
    sent = time.monotonic()
    with caller.work() as work:
        conversations: ConversationService = work.service(ConversationService)
        return sent, conversations.beat(start.message_id, start.held)


# Ended attempts' beats until their last returns (a task nobody references may be collected).
_BEATING: set[asyncio.Task[None]] = set()


def _stop(beating: asyncio.Task[None]) -> None:
    """Stop the beats, not waiting for one in flight (it renews only this attempt's record)."""
    beating.cancel()
    _BEATING.add(beating)
    beating.add_done_callback(_BEATING.discard)


def _holds_until(settings: Settings, claim: Claim) -> float:
    """Until when (monotonic) a try to store the record ends inside its newest beat's lease."""
    return claim.confirmed + lease(settings).total_seconds() - _database_wait(settings)


def _committed(start: TurnStart, ledger: Ledger) -> list[dict[str, Any]]:
    """The calls that committed, this attempt's and earlier ones' (a replayed one once)."""
    return _unique([*start.earlier_calls, *(c for c in ledger.calls if c["outcome"] == "ok")])


async def _store_or_report(caller: Caller, reply: Reply, holds_until: float) -> Any:
    """Store the answer; if that fails, the error names the conversation and the committed
    calls, and the error record is stored once the database answers again, within the lease."""
    try:
        return await anyio.to_thread.run_sync(_store, caller, reply)
    except Exception as exc:
        parts = describe(exc)
        committed = _unique([c for c in reply.tool_calls if c["outcome"] == "ok"])
        error = AppError(parts.message, details=list(parts.details))
        error.status_code, error.code = parts.status, parts.code
        error.extra_headers = dict(parts.headers)
        failed = replace(reply, content="", tool_calls=committed, error_code=parts.code)
        if parts.status != _UNAVAILABLE:  # taken over by a retry, or never storable
            raise _reported(error, reply.conversation_id, committed) from exc
        task = asyncio.create_task(_store_later(caller, failed, holds_until))
        _STORING.add(task)
        task.add_done_callback(_STORING.discard)
        raise _reported(error, reply.conversation_id, committed) from exc


_STORING: set[asyncio.Task[None]] = set()  # error records waiting (held, as `_BEATING` is)
_UNAVAILABLE = 503  # a database that does not answer
_STORE_RETRY_SECONDS = 1.0


async def _store_later(caller: Caller, reply: Reply, deadline: float) -> None:
    """Store an error record once the database answers, until the lease runs out (a retry's)."""
    while True:
        await asyncio.sleep(_STORE_RETRY_SECONDS)
        if time.monotonic() >= deadline:
            return
        try:
            await anyio.to_thread.run_sync(_store, caller, reply)
        except Exception as exc:
            if describe(exc).status == _UNAVAILABLE:
                continue  # still not answering: the next try will tell
            return  # taken over by a retry, or never storable
        return


def _unique(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A retried call's replayed record counts once."""
    return [call for i, call in enumerate(calls) if call not in calls[:i]]


def _store(caller: Caller, reply: Reply) -> Any:
    with caller.work() as work:
        conversations: ConversationService = work.service(ConversationService)
        return conversations.answer(reply)


def _reported(error: AppError, conversation_id: int, calls: list[dict[str, Any]]) -> AppError:
    """The error, naming the conversation and each tool call that committed before it."""
    error.details = [
        {"field": "conversation_id", "message": str(conversation_id), "type": "conversation"},
        *(
            {"field": f"tool_calls[{i}]", "message": call["name"], "type": "tool_call"}
            for i, call in enumerate(calls)
        ),
    ]
    return error


def answer_of(row: Any) -> ChatAnswer:
    message = MessagePublic.model_validate(message_view(row))
    return ChatAnswer(
        conversation_id=message.conversation_id,
        message_id=message.id,
        response=message.content,
        tool_calls=message.tool_calls,
        usage=message.usage or TokenUsage(input_tokens=0, output_tokens=0),
    )


def message_view(row: Any) -> dict[str, Any]:
    """A stored message as `MessagePublic` reads it (its calls as `withheld_call` reads them)."""
    # Not at import: the MCP SDK loads beside the app's start (backend/mcp/mount.py).
    from backend.mcp.tools import withheld_call

    assistant = row.role == "assistant"
    return {
        "id": row.id,
        "conversation_id": row.conversation_id,
        "role": row.role,
        "content": row.content,
        "tool_calls": [withheld_call(call) for call in row.tool_calls or []],
        "error_code": row.error_code,
        "usage": {"input_tokens": row.input_tokens or 0, "output_tokens": row.output_tokens or 0}
        if assistant
        else None,
        "created_at": row.created_at,
    }
