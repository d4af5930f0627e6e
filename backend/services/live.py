"""The live streams' service (specs/events.md, "The live stream"). `LiveFeeds` (one per app) runs
one reader while a stream is open: each `STREAM_POLL_MS` it reads which feeds moved, then every
woken stream's page in one message. Polling, not `LISTEN`/`NOTIFY`: the write path sends nothing,
and a pooled endpoint (which drops `LISTEN`) serves."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio
from sqlalchemy import BigInteger, Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.errors import RateLimited, ServiceUnavailable, database_error, database_failure
from backend.models.task_event import DAV_TYPES, FEED_TYPES
from backend.services.accounts import stream_tickets
from backend.services.history.changes import CallerPage, ChangeFeed, ChangePage, pages
from backend.services.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Changes per feed read; a stream reads again at once while `has_more`.
PAGE = 100
# What a reconnecting EventSource waits, in ms (the `retry:` hint; also a 429's Retry-After).
RETRY_MS = 2000
# How far back the reader looks again for later commits of lower ids (then the heartbeat).
RESCAN_SECONDS = 2.0
_MOVED_LIMIT = 5000
# Feed reads a poll at most: the first, and again for the streams whose page was full.
_ROUNDS = 4

# The feed's kinds (its types, and a child's event: a task and a row), without DAV's own.
_TYPES = ", ".join(f"'{t}'" for t in FEED_TYPES)
_DAV = ", ".join(f"'{t}'" for t in DAV_TYPES)
# The newest rows less the ids already seen, each with the users it wakes.
_MOVED_SQL = """
SELECT e.id, e.user_id, array_remove(array_agg(m.member_id), NULL) AS members
FROM task_events AS e
LEFT JOIN list_members AS m ON m.user_id = e.user_id AND m.list_id = e.list_id
WHERE e.id > :floor AND (e.type IN ({types})
    OR (e.task_id IS NOT NULL AND e.object IS NOT NULL AND e.type NOT IN ({dav})))
  AND e.id <> ALL(:seen)
GROUP BY e.id
ORDER BY e.id
LIMIT :limit
"""
_MOVED = text(_MOVED_SQL.format(types=_TYPES, dav=_DAV)).bindparams(
    bindparam("seen", type_=ARRAY(BigInteger))
)
_HEAD = text("SELECT coalesce(max(id), 0) FROM task_events")


@dataclass(frozen=True)
class Moved:
    """An event the reader had not seen: its id and the users whose feeds it moves."""

    id: int
    users: tuple[str, ...]


def feed_head(conn: Connection) -> int:
    """The newest change event's id (every user's): where the reader starts."""
    return int(conn.execute(_HEAD).scalar_one())


def moved_since(conn: Connection, floor: int, seen: Iterable[int], limit: int) -> list[Moved]:
    """Events after `floor` but those in `seen`, oldest first."""
    rows = conn.execute(_MOVED, {"floor": floor, "seen": list(seen), "limit": limit}).all()
    return [Moved(int(r.id), (str(r.user_id), *r.members)) for r in rows]


class Listener:
    """One open stream's place: the reader reads its feed from `position` when it may have
    moved (`due`), queues the pages (`pages`) and sets `wake`; `ended`: why it ended it."""

    __slots__ = ("claims", "due", "ended", "pages", "position", "user_id", "wake")

    def __init__(self, claims: TokenClaims) -> None:
        self.claims = claims
        self.user_id = claims.subject
        self.wake = asyncio.Event()
        self.position: int | None = None  # unknown (left alone) until its start was read
        self.due = False
        self.pages: list[ChangePage] = []
        self.ended: str | None = None

    def started(self, first: ChangePage | int) -> None:
        """Where the stream's start left it (read on at once when the first page was full)."""
        if isinstance(first, int):
            self.position = first
        else:
            self.position = first.next
            self.due = self.due or first.has_more

    def check(self) -> None:
        """The heartbeat: the next poll reads this stream's feed (its account checked)."""
        self.due = True

    def take(self) -> list[ChangePage]:
        pages, self.pages = self.pages, []
        return pages


class LiveFeeds:
    def __init__(
        self, engine: Engine, settings: Settings, transaction_locals: str | None = None
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._locals = transaction_locals
        self._by_user: dict[str, set[Listener]] = {}
        self._open = 0
        self._reader: asyncio.Task[None] | None = None
        self._reads: anyio.CapacityLimiter | None = None
        self._conn: Connection | None = None  # the reader's own, while it runs
        self.polls = 0  # the reader's wake-up queries, for tests and the benchmark
        self.reads = 0  # the reader's feed reads (one statement each, every woken stream)
        # Polls failed in a row (the database away): logged when it starts and when it ends.
        self.failed_polls = 0

    # -- the streams' places ------------------------------------------------------------

    def admit(self, claims: TokenClaims) -> Listener:
        """A place for a new stream, or 429 (the user's bound) / 503 (the worker's)."""
        settings = self._settings
        user_id = claims.subject
        mine = self._by_user.get(user_id, set())
        if len(mine) >= settings.stream_max_per_user:
            raise RateLimited(
                f"At most {settings.stream_max_per_user} live streams per user; close one",
                extra_headers={"Retry-After": str(max(1, RETRY_MS // 1000))},
            )
        if self._open >= settings.stream_max_per_worker:
            raise ServiceUnavailable("This server holds all the live streams it can; reconnect")
        listener = Listener(claims)
        self._by_user.setdefault(user_id, mine).add(listener)
        self._open += 1
        if self._reader is None or self._reader.done():
            # A context of its own: it outlives the first stream's request (no stale request id).
            self._reader = asyncio.get_running_loop().create_task(
                self._read_heads(), context=contextvars.Context()
            )
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
            self._reader.cancel()  # no stream to wake: no query (its connection goes back)
            self._reader = None

    # -- where a stream starts (its own read, off the event loop) -----------------------

    async def start(self, claims: TokenClaims, after: int | None) -> ChangePage | int:
        """Where a stream starts: the position now, or its first page after `after`."""
        if after is None:
            return await self._off_loop(lambda: self._feed(claims, ChangeFeed.head))
        return await self._off_loop(
            lambda: self._feed(claims, lambda changes: changes.page(after, PAGE))
        )

    async def use_ticket(self, ticket: str) -> TokenClaims | None:
        """The claims a stream ticket was made with, or None; the ticket is used up."""
        return await self._off_loop(lambda: stream_tickets.use(self._engine, ticket))

    def _feed(self, claims: TokenClaims, read: Callable[[ChangeFeed], T]) -> T:
        """`read` of the caller's change feed, in a unit of work of its own."""
        with UnitOfWork(
            self._engine, self._settings, claims=claims, transaction_locals=self._locals
        ) as work:
            changes: ChangeFeed = work.service(ChangeFeed)
            return read(changes)

    async def _off_loop(self, function: Callable[[], T]) -> T:
        if self._reads is None:
            self._reads = anyio.CapacityLimiter(self._settings.stream_read_concurrency)
        return await anyio.to_thread.run_sync(function, limiter=self._reads)

    # -- the worker's one reader ----------------------------------------------------------

    def _wake(self, users: set[str]) -> None:
        for user in users:
            for listener in self._by_user.get(user, ()):
                listener.due = True

    async def _read_heads(self) -> None:
        """The worker's one reader: runs while a stream is open."""
        try:
            await self._follow_heads()
        finally:
            if self.failed_polls:
                logger.warning(
                    "The live streams' reader stopped (no stream open) after %d failed polls",
                    self.failed_polls,
                )
                self.failed_polls = 0
            conn, self._conn = self._conn, None
            if conn is not None:
                await anyio.to_thread.run_sync(conn.close)  # `_on_return`

    async def _follow_heads(self) -> None:
        interval = self._settings.stream_poll_ms / 1000
        loop = asyncio.get_running_loop()
        # Streams opened before the head is known catch up in the first read.
        await asyncio.sleep(interval)
        head = await self._poll(None)
        self._wake(set(self._by_user))
        await self._deliver()
        # The query starts at the head of `RESCAN_SECONDS` ago, less the ids seen since.
        heads: deque[tuple[float, int]] = deque([(time.monotonic(), head)])
        seen: set[int] = set()
        tick = loop.time()
        while self._open:
            # A fixed rate: a slow poll does not push the next one back.
            tick = max(tick + interval, loop.time())
            await asyncio.sleep(tick - loop.time())
            now = time.monotonic()
            while len(heads) > 1 and heads[1][0] < now - RESCAN_SECONDS:
                heads.popleft()
            floor = heads[0][1]
            seen = {i for i in seen if i > floor}
            moved = await self._poll(floor, seen)
            if moved is not None:
                users = {user for event in moved for user in event.users}
                if len(moved) >= _MOVED_LIMIT:  # far behind: every stream reads
                    users = set(self._by_user)
                seen.update(event.id for event in moved)
                newest = max((event.id for event in moved), default=heads[-1][1])
                heads.append((now, max(newest, heads[-1][1])))
                self._wake(users)
            await self._deliver()

    async def _deliver(self) -> None:
        """Every due stream's page in one statement, again at once for full pages; a stream still
        sending waits, so a slow client costs its socket, never the server's memory."""
        for _ in range(_ROUNDS):
            due = [
                listener
                for mine in self._by_user.values()
                for listener in mine
                if listener.due
                and listener.position is not None
                and not listener.pages
                and listener.ended is None
            ]
            if not due:
                return
            for listener in due:
                listener.due = False
            positions = [(listener.user_id, cast(int, listener.position)) for listener in due]
            try:
                answers = await anyio.to_thread.run_sync(self._pages, positions)
            except Exception as exc:  # the database away: these streams end (they reconnect)
                logger.warning(
                    "The live streams' reader could not read %d streams' feeds (%s)",
                    len(due),
                    database_failure(exc) if database_error(exc) else type(exc).__name__,
                )
                await self._drop_conn()
                for listener in due:
                    listener.ended = "unavailable"
                    listener.wake.set()
                return
            for listener, answer in zip(due, answers, strict=True):
                self._hand(listener, answer)

    @staticmethod
    def _hand(listener: Listener, answer: CallerPage) -> None:
        claims = listener.claims
        if not answer.account or (claims.local and answer.account_version != claims.token_version):
            listener.ended = "account"  # revoked or deleted: the reconnect is refused (401)
        elif answer.page is None:
            listener.ended = "expired"  # pruned past its position: the reconnect gets 410
        else:
            page = answer.page
            listener.position = page.next
            listener.due = listener.due or page.has_more
            if not page.changes:
                return
            listener.pages.append(page)
        listener.wake.set()

    def _pages(self, positions: list[tuple[str, int]]) -> list[CallerPage]:
        conn = self._connection()
        self.reads += 1
        return pages(conn, self._locals or "", positions, PAGE)

    async def _poll(self, floor: int | None, seen: Iterable[int] = ()) -> Any:
        try:
            answer = await anyio.to_thread.run_sync(self._query, floor, seen)
        except Exception as exc:  # the database away: the streams' heartbeats read on their own
            if not self.failed_polls:  # one line while it lasts, not one a poll
                logger.warning(
                    "The live streams' reader cannot read the feed's head (%s); polling on",
                    database_failure(exc) if database_error(exc) else type(exc).__name__,
                )
            self.failed_polls += 1
            await self._drop_conn()
            return None if floor is not None else 0
        if self.failed_polls:
            logger.warning(
                "The live streams' reader reads the feed's head again after %d failed polls",
                self.failed_polls,
            )
            self.failed_polls = 0
        return answer

    async def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await anyio.to_thread.run_sync(conn.invalidate)

    def _connection(self) -> Connection:
        """The reader's own connection (autocommitted: no transaction held between polls)."""
        if self._conn is None:
            conn = self._engine.connect()
            _autocommit(conn)
            self._conn = conn
        return self._conn

    def _query(self, floor: int | None, seen: Iterable[int]) -> int | list[Moved]:
        """One poll on the reader's own connection."""
        conn = self._connection()
        self.polls += 1
        if floor is None:
            return feed_head(conn)
        return moved_since(conn, floor, seen, _MOVED_LIMIT)


def _autocommit(conn: Connection) -> None:
    """Autocommit until the connection goes back to the pool (`_on_return`)."""
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not dbapi.closed:
        dbapi.autocommit = True
