"""Every send to a receiver bounded: a total deadline per call (`deadline`, which
`DeadlineBackend`'s sockets obey: httpx bounds each read, not a call, so a receiver trickling
a byte at a time could hold a thread) and at most `ANSWER_MAX_BYTES` of its answer read.
"""

from __future__ import annotations

import contextvars
import itertools
import ssl
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

# How many connection pools a client's connections are shared out over (`DeadlineTransport`).
POOLS = 4
# What is read of a receiver's answer at most (an error's first lines are all we keep).
ANSWER_MAX_BYTES = 4096

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "delivery_deadline", default=None
)


class DeadlinePassed(httpcore.TimeoutException):
    """The call's whole deadline passed (httpx maps it to a `TimeoutException`)."""


def _left(timeout: float | None) -> float | None:
    """The timeout of one operation: the smaller of its own and what the call has left."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed("the send's deadline passed")
    return left if timeout is None else min(timeout, left)


def _passed() -> bool:
    deadline = _DEADLINE.get()
    return deadline is not None and time.monotonic() >= deadline


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._inner.read(max_bytes, _left(timeout))
        except httpcore.TimeoutException as exc:  # its own timeout, or the call's deadline
            if _passed():
                raise DeadlinePassed("the send's deadline passed") from exc
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._inner.write(buffer, _left(timeout))
        except httpcore.TimeoutException as exc:
            if _passed():
                raise DeadlinePassed("the send's deadline passed") from exc
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, each operation cut at the call's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.connect_tcp(host, port, _left(timeout), local_address, socket_options)
        return _Stream(inner)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# httpcore's errors as httpx raises them (the sinks catch `httpx.HTTPError`).
_TRANSPORT_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


@contextmanager
def _as_httpx(request: httpx.Request | None) -> Iterator[None]:
    """httpcore's error as httpx's of the same name (`ConnectError`, `ReadTimeout`, ...)."""
    try:
        yield
    except (httpcore.TimeoutException, *_TRANSPORT_ERRORS) as exc:
        fallback = (
            httpx.TimeoutException
            if isinstance(exc, httpcore.TimeoutException)
            else httpx.TransportError
        )
        same = getattr(httpx, type(exc).__name__, None)
        kind = same if isinstance(same, type) and issubclass(same, fallback) else fallback
        raise kind(str(exc), request=request) from exc


class _Answer(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], request: httpx.Request) -> None:
        self.stream, self.request = stream, request

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx(self.request):
            yield from self.stream

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


def _core_url(u: httpx.URL) -> httpcore.URL:
    return httpcore.URL(scheme=u.raw_scheme, host=u.raw_host, port=u.port, target=u.raw_path)


def _head(chunks: Iterable[bytes]) -> tuple[bytes, bool]:
    """At most `ANSWER_MAX_BYTES` of an answer's body, and whether there was more (unread)."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) > ANSWER_MAX_BYTES:
            return head[:ANSWER_MAX_BYTES], True
    return head, False


class DeadlineTransport(httpx.BaseTransport):
    """httpx's requests over httpcore's connection pools (both libraries' public API), their
    sockets `DeadlineBackend`'s; no proxy from the environment (specs/events.md)."""

    def __init__(self, limits: httpx.Limits = httpx.Limits()) -> None:
        # httpx's 100 connections, not httpcore's 10 (for which 32 threads would queue), over
        # `POOLS` pools, a thread always the same one's: a pool walks all its connections on
        # every request (~0.2 ms of a webhook's CPU at 32). Keep-alive = its max: httpcore
        # closes an idle connection whenever its pool holds more than its keep-alive.
        share = -(-limits.max_connections // POOLS) if limits.max_connections else None
        self.pools = [
            httpcore.ConnectionPool(
                ssl_context=httpx.create_ssl_context(),
                max_connections=share,
                max_keepalive_connections=share,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=DeadlineBackend(),
            )
            for _ in range(POOLS)
        ]
        self._turn = itertools.count()
        self._mine = threading.local()
        self._targets: dict[str, tuple[httpcore.URL, list[tuple[bytes, bytes]]]] = {}

    @property
    def pool(self) -> httpcore.ConnectionPool:
        """This thread's pool."""
        mine: httpcore.ConnectionPool | None = getattr(self._mine, "pool", None)
        if mine is None:
            mine = self._mine.pool = self.pools[next(self._turn) % POOLS]
        return mine

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sent = httpcore.Request(
            method=request.method,
            url=_core_url(request.url),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx(request):
            answer = self.pool.handle_request(sent)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Answer(answer.stream, request),  # type: ignore[arg-type]
            extensions=answer.extensions,
        )

    def post(
        self,
        url: httpcore.URL,
        headers: list[tuple[bytes, bytes]],
        content: bytes,
        *,
        seconds: float,
        extensions: dict[str, Any] | None = None,
    ) -> Answer:
        """`post`'s bounds straight over the pool, `headers` sent as they are: no httpx request,
        response or cookie jar (a third of a Web Push's CPU, specs/benchmark.md)."""
        limits = {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
        request = httpcore.Request(
            "POST",
            url,
            headers=headers,
            content=content,
            extensions={**(extensions or {}), "timeout": limits},
        )
        with deadline(seconds), _as_httpx(None):
            answer = self.pool.handle_request(request)
            try:
                head, cut = _head(answer.stream)  # type: ignore[arg-type]
            finally:
                answer.close()  # the rest unread: the connection is closed, not reused
        return Answer(answer.status, httpx.Headers(answer.headers), head, cut)

    def close(self) -> None:
        for pool in self.pools:
            pool.close()

    def to(self, client: httpx.Client, url: str) -> tuple[httpcore.URL, list[tuple[bytes, bytes]]]:
        """`url` as httpcore's, and the headers `client` would send to it before a request's
        own (`Host`, its defaults, Basic auth from the URL's user info): made once a URL."""
        made = self._targets.get(url)
        if made is None:
            request = client.build_request("POST", url)
            if request.url.userinfo:
                flow = httpx.BasicAuth(request.url.username, request.url.password)
                request = next(flow.sync_auth_flow(request))
            made = (
                _core_url(request.url),
                [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"],
            )
            self._targets[url] = made
        return made


# The transport of each client `bounded_client` made, for `DeadlineTransport.post`.
_TRANSPORTS: weakref.WeakKeyDictionary[httpx.Client, DeadlineTransport] = (
    weakref.WeakKeyDictionary()
)


def bounded_client(timeout: float, **options: Any) -> httpx.Client:
    """An httpx client whose every connection goes through `DeadlineBackend`."""
    options.setdefault("trust_env", False)
    transport = DeadlineTransport()
    client = httpx.Client(timeout=timeout, transport=transport, **options)
    _TRANSPORTS[client] = transport
    return client


def transport_of(client: httpx.Client) -> DeadlineTransport | None:
    """The `DeadlineTransport` of a client `bounded_client` made (None for another)."""
    return _TRANSPORTS.get(client)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every network operation of this thread within the block ends by `seconds` from now."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


@dataclass(frozen=True)
class Answer:
    """A receiver's answer, at most `ANSWER_MAX_BYTES` of its body (`cut`: more, unread)."""

    status_code: int
    headers: httpx.Headers
    head: bytes
    cut: bool

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.head.decode(errors="replace")


def post(client: httpx.Client, url: str, *, seconds: float | None = None, **options: Any) -> Answer:
    """POST within `seconds` in all (None: the `deadline` around the call), reading at most
    `ANSWER_MAX_BYTES` of the answer. Raises httpx's errors."""
    with ExitStack() as stack:
        if seconds is not None:
            stack.enter_context(deadline(seconds))
        response = stack.enter_context(client.stream("POST", url, **options))
        return Answer(response.status_code, response.headers, *_head(response.iter_raw(1024)))


def post_bytes(
    client: httpx.Client, url: str, content: bytes, headers: list[tuple[bytes, bytes]]
) -> Answer:
    """`post` of `content` as httpx would send it (its headers, then `headers`), straight over
    a `bounded_client`'s pool (a webhook's CPU, specs/benchmark.md). Raises httpx's errors."""
    transport = transport_of(client)
    with _as_httpx(None):
        seconds = _left(client.timeout.read)
    if transport is None or seconds is None:
        return post(client, url, content=content, headers=headers)
    target, before = transport.to(client, url)
    length = (b"Content-Length", str(len(content)).encode())
    return transport.post(target, [*before, *headers, length], content, seconds=seconds)
