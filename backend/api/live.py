"""The live change stream of one worker (issue 51; specs/events.md, "The live stream").

`Hub` (one per app, `app.state.live`) holds the worker's open streams and its one reader: a
task that polls the feed's head (`backend/services/live.py`) every `STREAM_POLL_MS` while a
stream is open and wakes the streams of the users whose feed moved. `ChangeStream` is one
stream's response: on each wake-up (and each heartbeat, which also catches a missed wake-up
and re-checks the caller) it reads its caller's change feed after its position, through the
door's own `UnitOfWork` and `ChangeFeed.page`, off the event loop and at most
`STREAM_READ_CONCURRENCY` at once. An idle stream holds no thread and no connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from fastapi.sse import format_sse_event
from sqlalchemy import Engine
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backend.api import CONNECTION
from backend.api.pagination import encode_changes_cursor
from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.errors import AppError, RateLimited, ServiceUnavailable, Unauthorized
from backend.models.change import TaskChange
from backend.services.changes import ChangePage
from backend.services.live import feed_head, moved_since
from backend.services.registry import UnitOfWork

logger = logging.getLogger(__name__)

# Changes per feed read; a stream reads again at once while `has_more`.
PAGE = 100
# What a reconnecting EventSource waits, in ms (the `retry:` hint).
RETRY_MS = 2000
# How far back the reader looks again for changes that committed after higher ids did (a
# busy space's, specs/events.md "Order across spaces"): a slower one is caught by the
# stream's heartbeat read, never lost.
RESCAN_SECONDS = 2.0
_MOVED_LIMIT = 5000
_HEARTBEAT = format_sse_event(comment="heartbeat")


class Listener:
    """One open stream's place in the hub: woken when its user's feed may have moved."""

    __slots__ = ("user_id", "wake")

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.wake = asyncio.Event()


class Hub:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._by_user: dict[str, set[Listener]] = {}
        self._open = 0
        self._reader: asyncio.Task[None] | None = None
        self._reads: anyio.CapacityLimiter | None = None
        self.polls = 0  # the reader's queries, for tests and the benchmark

    @property
    def open_streams(self) -> int:
        return self._open

    def admit(self, user_id: str) -> Listener:
        """A place for a new stream, or 429 (the user's bound) / 503 (the worker's)."""
        settings = self._settings
        mine = self._by_user.get(user_id, set())
        if len(mine) >= settings.stream_max_per_user:
            raise RateLimited(
                f"At most {settings.stream_max_per_user} live streams per user; close one",
                extra_headers={"Retry-After": str(max(1, RETRY_MS // 1000))},
            )
        if self._open >= settings.stream_max_per_worker:
            raise ServiceUnavailable("This server holds all the live streams it can; reconnect")
        listener = Listener(user_id)
        self._by_user.setdefault(user_id, mine).add(listener)
        self._open += 1
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_heads())
        return listener

    def leave(self, listener: Listener) -> None:
        mine = self._by_user.get(listener.user_id)
        if mine is None or listener not in mine:
            return
        mine.discard(listener)
        if not mine:
            del self._by_user[listener.user_id]
        self._open -= 1
        if not self._open and self._reader is not None:
            self._reader.cancel()  # no stream to wake: no query
            self._reader = None

    async def read(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in a worker thread, at most `STREAM_READ_CONCURRENCY` at once."""
        if self._reads is None:
            self._reads = anyio.CapacityLimiter(self._settings.stream_read_concurrency)
        return await anyio.to_thread.run_sync(function, *args, limiter=self._reads)

    def _wake(self, users: set[str]) -> None:
        for user in users:
            for listener in self._by_user.get(user, ()):
                listener.wake.set()

    async def _read_heads(self) -> None:
        """The worker's one reader: runs while a stream is open."""
        interval = self._settings.stream_poll_ms / 1000
        # Started by a stream's opening, which read its own start: the streams opened before
        # the head is known catch up with one read each.
        await asyncio.sleep(interval)
        head = await self._poll(None)
        self._wake(set(self._by_user))
        # Recent heads: the query starts at the one of `RESCAN_SECONDS` ago, and ids seen
        # since wake nobody twice.
        heads: deque[tuple[float, int]] = deque([(time.monotonic(), head)])
        seen: set[int] = set()
        while self._open:
            await asyncio.sleep(interval)
            now = time.monotonic()
            while len(heads) > 1 and heads[1][0] < now - RESCAN_SECONDS:
                heads.popleft()
            floor = heads[0][1]
            rows = await self._poll(floor)
            if rows is None:
                continue
            users: set[str] = set()
            for event_id, space, member in rows:
                if event_id not in seen:
                    users.add(space)
                    if member is not None:
                        users.add(member)
            if len(rows) >= _MOVED_LIMIT:  # far behind: every stream reads its own feed
                users = set(self._by_user)
            seen = {row[0] for row in rows} | {i for i in seen if i > floor}
            newest = max((row[0] for row in rows), default=heads[-1][1])
            heads.append((now, max(newest, heads[-1][1])))
            self._wake(users)

    async def _poll(self, floor: int | None) -> Any:
        try:
            return await anyio.to_thread.run_sync(self._query, floor)
        except Exception:  # the database away: the streams' heartbeats read on their own
            logger.warning("The live streams' reader could not read the feed's head")
            return None if floor is not None else 0

    def _query(self, floor: int | None) -> int | Sequence[tuple[int, str, str | None]]:
        self.polls += 1
        if floor is None:
            return feed_head(self._engine)
        return moved_since(self._engine, floor, _MOVED_LIMIT)


def _event(secret: str, user_id: str, row: Any) -> bytes:
    data = TaskChange.from_row(row).model_dump_json()
    return format_sse_event(data_str=data, id=encode_changes_cursor(secret, user_id, row.id))


class ChangeStream(Response):
    """One stream's response (ASGI): `text/event-stream`, ended by the client, the caller's
    token or account, the server's shutdown, a reader too slow, or `STREAM_MAX_SECONDS`."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: Hub,
        settings: Settings,
        claims: TokenClaims,
        listener: Listener,
        first: ChangePage | int,
        transaction_locals: str | None,
    ) -> None:
        self._hub = hub
        self._settings = settings
        self._claims = claims
        self._listener = listener
        self._first = first
        self._locals = transaction_locals
        self._secret = settings.signing_secret()
        super().__init__(media_type=self.media_type)

    def page(self, after: int) -> ChangePage:
        """The caller's feed after `after` (a worker thread): the door's entry checks the
        account (revoked, deleted: `Unauthorized`) in the page's own message."""
        with UnitOfWork(
            self._hub._engine, self._settings, claims=self._claims, transaction_locals=self._locals
        ) as work:
            return work.changes.page(after, PAGE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = scope.get("extensions", {}).get(CONNECTION)
        try:
            await self._run(scope, receive, send, connection)
        finally:
            self._hub.leave(self._listener)

    async def _run(self, scope: Scope, receive: Receive, send: Send, connection: Any) -> None:
        settings = self._settings
        timeout = settings.stream_send_timeout_seconds

        async def emit(chunk: bytes) -> bool:
            try:
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": chunk, "more_body": True}),
                    timeout,
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
        first = self._first
        position = first if isinstance(first, int) else first.next
        chunk = format_sse_event(retry=RETRY_MS)
        more = False
        if not isinstance(first, int):
            chunk += self._events(first.changes)
            more = first.has_more
        if not await emit(chunk):
            return
        gone = asyncio.get_running_loop().create_task(_disconnected(receive))
        closing: asyncio.Event = connection.closing if connection is not None else asyncio.Event()
        ends = time.monotonic() + settings.stream_max_seconds
        wake = self._listener.wake
        try:
            while True:
                beat = False
                if not more:
                    left = min(settings.stream_heartbeat_seconds, ends - time.monotonic())
                    beat = not await _first_of(wake, closing, gone, left)
                if gone.done() or closing.is_set() or time.monotonic() >= ends:
                    break
                expires = self._claims.expires_at
                if expires is not None and expires <= time.time():
                    break  # the token expired: the client signs in again
                wake.clear()
                try:
                    page = await self._hub.read(self.page, position)
                except Unauthorized:
                    break  # revoked or deleted: the reconnect is refused (401)
                except AppError:
                    break  # the database away (503): the client reconnects elsewhere
                position, more = page.next, page.has_more
                chunk = self._events(page.changes)
                if beat:
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
