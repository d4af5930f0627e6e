"""A TCP proxy in front of PostgreSQL that counts round trips and can add network latency.

Used by the round-trip regression test (tests/test_round_trips.py: counting) and by the
benchmark's `--db-rtt-ms` (a database one region away, without netem or root).

What counts as a round trip: a client message the client then waits on an answer for. With
psycopg2 (libpq's simple query protocol) every statement, `BEGIN` and `COMMIT` included, is one
Query message ('Q'), and several statements joined by `;` in one call are one 'Q'; a client of
the extended protocol (Parse/Bind/Execute) waits only at its Sync ('S'). So the count is the
client's 'Q' plus 'S' messages after start-up; a new connection's start-up and authentication
are counted apart (`connections`). Terminate ('X') and the rest wait for nothing.

The counting reads the client's stream only, so it needs it in clear: the proxy answers
libpq's SSLRequest and GSSENCRequest itself with "no" (the connection to the proxy is on
loopback), so `sslmode=prefer` (libpq's default) falls back to plain text without the server
seeing the request.

The delay: every chunk read from either side is written to the other `delay_ms / 2` later
(one way), queued, so pipelined or concurrent traffic is delayed and not serialised: a fixed
round trip of `delay_ms`, as a distant database adds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
WAITING = frozenset(b"QS")  # Query (simple protocol), Sync (extended protocol)


@dataclass
class Counts:
    round_trips: int = 0
    connections: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    # With `record=True`: the text of every simple-query ('Q') message, in order.
    queries: list[str] = field(default_factory=list)


class _ClientStream:
    """Splits the client's messages after start-up (type byte, length) and counts them."""

    def __init__(self, counts: Counts, lock: threading.Lock, record: bool = False) -> None:
        self.counts = counts
        self.lock = lock
        self.record = record
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            kind = self.buffer[0]
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            body, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
            with self.lock:
                name = chr(kind)
                self.counts.by_type[name] = self.counts.by_type.get(name, 0) + 1
                if kind in WAITING:
                    self.counts.round_trips += 1
                if self.record and name == "Q":
                    self.counts.queries.append(body.rstrip(b"\0").decode(errors="replace"))


class DbProxy:
    """`with DbProxy(url, delay_ms=...) as proxy:` then connect to `proxy.url(url)`.

    Runs its own event loop in a daemon thread, so synchronous code (the app's thread pool, a
    test) can use it. `count=True` parses the client stream (see the module doc); `record=True`
    also keeps the text of every simple-query message (`Counts.queries`).
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        delay_ms: float = 0,
        count: bool = False,
        record: bool = False,
    ) -> None:
        # A host starting with "/" is a Unix socket directory, as libpq reads it.
        self.target = (target_host, target_port)
        self.one_way = delay_ms / 2000
        self.count = count or record
        self.record = record
        self.counts = Counts()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @classmethod
    def for_url(
        cls, url: str, *, delay_ms: float = 0, count: bool = False, record: bool = False
    ) -> DbProxy:
        parsed = make_url(url)
        host = parsed.query.get("host") or parsed.host or "127.0.0.1"
        if isinstance(host, tuple):
            host = host[0]
        return cls(host, parsed.port or 5432, delay_ms=delay_ms, count=count, record=record)

    def url(self, url: str) -> str:
        """`url` pointed at the proxy (same database, user and password; over TCP)."""
        parsed = make_url(url)
        query = {k: v for k, v in parsed.query.items() if k not in ("host", "port")}
        parsed = parsed.set(host="127.0.0.1", port=self.port, query=query)
        return parsed.render_as_string(hide_password=False)

    def start(self) -> DbProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> DbProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> tuple[int, int]:
        """(round trips, connections) so far."""
        with self._lock:
            return self.counts.round_trips, self.counts.connections

    @contextlib.contextmanager
    def measure(self) -> Iterator[Counts]:
        """The round trips and new connections made inside the block (and, recording, the
        simple-query messages sent)."""
        before = self.snapshot()
        with self._lock:
            sent = len(self.counts.queries)
        result = Counts()
        yield result
        after = self.snapshot()
        result.round_trips = after[0] - before[0]
        result.connections = after[1] - before[1]
        with self._lock:
            result.queries = self.counts.queries[sent:]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            # libpq asks for SSL (or GSS encryption) first and waits for the one-byte answer:
            # refused here, so the stream stays readable; then the start-up message follows.
            while True:
                head = await client_r.readexactly(8)
                length, code = struct.unpack("!ii", head)
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    break
                client_w.write(b"N")
            startup = head + await client_r.readexactly(length - 8)
            host, port = self.target
            if host.startswith("/"):
                path = f"{host}/.s.PGSQL.{port}"
                server_r, server_w = await asyncio.open_unix_connection(path)
            else:
                server_r, server_w = await asyncio.open_connection(host, port)
        except (OSError, asyncio.IncompleteReadError):
            client_w.close()
            return
        parser = None
        if self.count:
            parser = _ClientStream(self.counts, self._lock, self.record)
            with self._lock:
                self.counts.connections += 1
        server_w.write(startup)
        upstream = asyncio.ensure_future(self._pipe(client_r, server_w, parser))
        downstream = asyncio.ensure_future(self._pipe(server_r, client_w, None))
        try:
            await asyncio.wait([upstream, downstream], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upstream, downstream):
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: _ClientStream | None,
    ) -> None:
        """Copy `reader` to `writer`, each chunk `one_way` seconds after it arrived."""
        loop = asyncio.get_running_loop()
        queue: deque[tuple[float, bytes]] = deque()
        ready = asyncio.Event()
        done = False

        async def send() -> None:
            while True:
                while not queue:
                    if done:
                        return
                    ready.clear()
                    await ready.wait()
                due, chunk = queue.popleft()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(send()) if self.one_way else None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if parser is not None:
                    parser.feed(data)
                if sender is None:
                    writer.write(data)
                    await writer.drain()
                else:
                    queue.append((loop.time() + self.one_way, data))
                    ready.set()
        finally:
            done = True
            ready.set()
            if sender is not None:
                with contextlib.suppress(Exception):
                    await sender
            with contextlib.suppress(Exception):
                writer.write_eof()
