"""One chat turn, as a request runs it (specs/chat.md, "A turn").

1. The chat limit (per user, its own transaction).
2. The door (`UnitOfWork`): the user's message stored, the history read, committed.
3. The agent runs outside any transaction; each tool call is a unit of work of its own.
4. The assistant's message (or the error, with the calls that committed) in a last one.

A retry with the same Idempotency-Key replays a stored answer, or re-runs a failed turn with its
committed calls given as done (`Ledger`). A running attempt renews its claim every
`CHAT_HEARTBEAT_SECONDS` (`_keep`); after it died the turn is free within a lease.
"""

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
from backend.services.conversations import (
    CONVERSATION_NOT_FOUND,
    ConversationService,
    Reply,
    TurnStart,
)
from backend.services.rate_limits import RateLimiter
from backend.services.registry import UnitOfWork

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
    """Steps 1 and 2, in a worker thread (psycopg2 blocks). `path_user`: the user id of
    `/api/{user_id}/chat`, which must be the caller's (else the answer a missing
    conversation gets)."""
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
    # Before the claim is stored: the attempt's lease counts from no earlier than this.
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
    """How long an attempt holds its turn after its last heartbeat: three beats and one
    database wait (32 s by default). Its tool calls start within two beats of its newest
    confirmed beat (`Claim.check`) and end within a database wait, so none runs once a retry
    may take over; a dead attempt frees the turn when this runs out."""
    return timedelta(seconds=3 * settings.chat_heartbeat_seconds + _database_wait(settings))


def unbeaten_lease(settings: Settings) -> timedelta:
    """The lease of an attempt that never beats (older code during a rolling deploy): the
    longest a turn may run, with a database wait for each of its last writes, and a margin."""
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
    """Steps 3 and 4: the answer, or the AppError to send (after storing either)."""
    if start.answered is not None:
        return answer_of(start.answered)
    # The Agents SDK, on the first turn that runs (backend/chat/stack.py).
    from backend.chat.agent import TurnFailed, call_items, history_items, run_agent
    from backend.chat.tools import Ledger
    from backend.mcp.tools import withheld_call

    settings = caller.settings
    # A failed attempt's calls as a stored call is read (no credential, one stored before the
    # chat withheld them neither): what the ledger replays and this answer stores again.
    start = replace(start, earlier_calls=[withheld_call(c) for c in start.earlier_calls])
    claim = Claim(settings.chat_heartbeat_seconds, start.since)
    ledger = Ledger(earlier=start.earlier_calls, message_id=start.message_id, claim=claim)
    items: list[TResponseInputItem] = [
        *history_items(start.history, settings),
        {"role": "user", "content": message},
        # A failed first attempt's committed calls: done, with their results.
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
    """Renew the claim every beat while the attempt runs, the first a beat after it began. A
    confirmed beat moves the claim on, a refused one loses it, a failed one tells nothing."""
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
    work = UnitOfWork(
        caller.engine, caller.settings, claims=caller.claims, client_ip=caller.client_ip
    )
    with work:
        conversations: ConversationService = work.service(ConversationService)
        return sent, conversations.beat(start.message_id, start.held)


# Heartbeats of attempts that ended, until their last beat (in a worker thread) returns:
# held, as a task nobody references may be collected before it ran.
_BEATING: set[asyncio.Task[None]] = set()


def _stop(beating: asyncio.Task[None]) -> None:
    """Stop the beats, without waiting for one in flight (it can only renew a record that is
    still this attempt's, and the answer stored next ends that)."""
    beating.cancel()
    _BEATING.add(beating)
    beating.add_done_callback(_BEATING.discard)


def _holds_until(settings: Settings, claim: Claim) -> float:
    """Until when (monotonic) the attempt may still try to store its record: a try started
    then ends, with a database wait, inside the lease of its newest confirmed beat."""
    return claim.confirmed + lease(settings).total_seconds() - _database_wait(settings)


def _committed(start: TurnStart, ledger: Ledger) -> list[dict[str, Any]]:
    """The calls that committed, this attempt's and earlier ones' (a replayed one once)."""
    return _unique([*start.earlier_calls, *(c for c in ledger.calls if c["outcome"] == "ok")])


async def _store_or_report(caller: Caller, reply: Reply, holds_until: float) -> Any:
    """Store the answer; if that fails, the error names the conversation and the committed
    calls (already stored with the message, for a retry), and the error record is stored once
    the database answers again (`_store_later`), before the lease ends (`holds_until`)."""
    try:
        return await anyio.to_thread.run_sync(_store, caller, reply)
    except Exception as exc:
        parts = describe(exc)
        committed = _unique([c for c in reply.tool_calls if c["outcome"] == "ok"])
        error = AppError(parts.message, details=list(parts.details))
        error.status_code, error.code = parts.status, parts.code
        error.extra_headers = dict(parts.headers)
        failed = replace(reply, content="", tool_calls=committed, error_code=parts.code)
        if parts.status != _UNAVAILABLE:
            # Nothing to store later: a retry took the turn over (its record is its own), or
            # the store can never succeed (a conversation deleted meanwhile).
            raise _reported(error, reply.conversation_id, committed) from exc
        task = asyncio.create_task(_store_later(caller, failed, holds_until))
        _STORING.add(task)
        task.add_done_callback(_STORING.discard)
        raise _reported(error, reply.conversation_id, committed) from exc


# Error records waiting for the database to answer again (held, as `_BEATING` is).
_STORING: set[asyncio.Task[None]] = set()
# A database that does not answer (a pool wait, a response timed out, a broken connection).
_UNAVAILABLE = 503
# How often a waiting error record is tried again (each try waits up to the response timeout).
_STORE_RETRY_SECONDS = 1.0


async def _store_later(caller: Caller, reply: Reply, deadline: float) -> None:
    """Store a turn's error record once the database answers, until its lease runs out (then
    a retry may take the turn over, and the record is its to write)."""
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
    seen: list[dict[str, Any]] = []
    for call in calls:
        if call not in seen:
            seen.append(call)
    return seen


def _store(caller: Caller, reply: Reply) -> Any:
    work = UnitOfWork(
        caller.engine, caller.settings, claims=caller.claims, client_ip=caller.client_ip
    )
    with work:
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
    # The tools (and the MCP SDK) load as the app starts (backend/mcp/mount.py), not on import.
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
