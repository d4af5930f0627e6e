"""One live change stream's response over ASGI (specs/events.md, "The live stream"): what it
reads is `backend/services/live.py`'s; this waits for the reader's pages, the heartbeat, the
client leaving or shutdown, and writes to the socket unbuffered (a client that stops reading is
disconnected).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from fastapi.sse import format_sse_event
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backend.api import CONNECTION
from backend.api.pagination import encode_changes_cursor
from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.models.change import TaskChange
from backend.services.history.changes import ChangePage
from backend.services.live import RETRY_MS, Listener, LiveFeeds

logger = logging.getLogger(__name__)

_HEARTBEAT = format_sse_event(comment="heartbeat")


# The JSON of recent changes, by id: a poll hands the same change to every member's stream,
# differing only where the task does (its own reminders), so each distinct one is encoded once.
_ENCODED: OrderedDict[int, list[tuple[Any, str]]] = OrderedDict()
_ENCODED_MOST = 2048


def _data(row: Any) -> str:
    known = _ENCODED.get(row.id)
    if known is not None:
        for task, data in known:
            if task == row.task:
                return data
    data = TaskChange.from_row(row).model_dump_json()
    if known is None:
        known = _ENCODED[row.id] = []
        if len(_ENCODED) > _ENCODED_MOST:
            _ENCODED.popitem(last=False)
    known.append((row.task, data))
    return data


def _event(secret: str, user_id: str, row: Any) -> bytes:
    return format_sse_event(data_str=_data(row), id=encode_changes_cursor(secret, user_id, row.id))


class ChangeStream(Response):
    """One stream's response (ASGI): `text/event-stream`, ended by the client, the caller's
    token or account, the server's shutdown, a reader too slow, or `STREAM_MAX_SECONDS`."""

    media_type = "text/event-stream"

    def __init__(
        self,
        live: LiveFeeds,
        settings: Settings,
        claims: TokenClaims,
        listener: Listener,
        first: ChangePage | int,
    ) -> None:
        self._live = live
        self._settings = settings
        self._claims = claims
        self._listener = listener
        self._first = first
        self._secret = settings.signing_secret()
        super().__init__(media_type=self.media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = scope.get("extensions", {}).get(CONNECTION)
        try:
            await self._run(scope, receive, send, connection)
        finally:
            self._live.leave(self._listener)

    async def _run(self, scope: Scope, receive: Receive, send: Send, connection: Any) -> None:
        settings = self._settings
        timeout = settings.stream_send_timeout_seconds

        async def emit(chunk: bytes) -> bool:
            try:
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": chunk, "more_body": True}), timeout
                )
            except TimeoutError:
                # Not reading: the socket's buffer is full. Dropped, never buffered here.
                logger.info("A live stream's reader stopped taking events: disconnected")
                if connection is not None:
                    connection.abort()
                return False
            return True

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        listener = self._listener
        first = self._first
        chunk = format_sse_event(retry=RETRY_MS)
        if not isinstance(first, int):
            chunk += self._events(first.changes)
        # The reader reads on from here (at once if the first page was full).
        listener.started(first)
        if not await emit(chunk):
            return
        gone = asyncio.get_running_loop().create_task(_disconnected(receive))
        closing: asyncio.Event = connection.closing if connection is not None else asyncio.Event()
        ends = time.monotonic() + settings.stream_max_seconds
        wake = listener.wake
        # The first heartbeat at a random point of the second half of the period: streams
        # opened together (a reconnecting crowd, the benchmark) do not beat all at once.
        heartbeat = settings.stream_heartbeat_seconds * random.uniform(0.5, 1.0)  # noqa: S311
        try:
            while True:
                left = min(heartbeat, ends - time.monotonic())
                beat = not await _first_of(wake, closing, gone, left)
                if beat:
                    heartbeat = settings.stream_heartbeat_seconds
                if gone.done() or closing.is_set() or time.monotonic() >= ends:
                    break
                expires = self._claims.expires_at
                if expires is not None and expires <= time.time():
                    break  # the token expired: the client signs in again
                wake.clear()
                chunk = b"".join(self._events(page.changes) for page in listener.take())
                if listener.ended is not None:
                    # Revoked or deleted (the reconnect is refused: 401), pruned past its
                    # position (410), the database away (503): the client reconnects.
                    if chunk:
                        await emit(chunk)
                    break
                if beat:
                    # The next poll checks the account and reads the feed for this stream.
                    listener.check()
                    chunk += _HEARTBEAT
                if chunk and not await emit(chunk):
                    return
            if not gone.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()

    def _events(self, changes: Sequence[Any]) -> bytes:
        user_id = self._claims.subject
        return b"".join(_event(self._secret, user_id, row) for row in changes)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _first_of(
    wake: asyncio.Event, closing: asyncio.Event, gone: asyncio.Task[None], seconds: float
) -> bool:
    """Wait for a wake-up, the shutdown or the client's leaving, at most `seconds`: whether
    one of them came."""
    waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(closing.wait())]
    try:
        done, _ = await asyncio.wait(
            [*waits, gone], timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiting in waits:
            waiting.cancel()
    return bool(done)
