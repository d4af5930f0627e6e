"""The worker's one way to send HTTP (webhooks, Dapr, Web Push), in production and in tests:
`HttpClient`, httpcore's connection pool (its public API) over sockets that cut every
operation at the call's deadline. httpx bounds each read, not a call (encode/httpx#1450), so a
receiver trickling its answer a byte at a time could hold a thread; here a call ends by its
`seconds` in all (waiting for a connection, connect, TLS, request, answer) and at most
`ANSWER_MAX_BYTES` of its answer is read. No redirect is followed and no proxy from the
environment is used (httpcore does neither). A failed call raises one of `SEND_ERRORS`.
"""

from __future__ import annotations

import base64
import contextvars
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import httpcore
import httpx

# What is read of a receiver's answer at most (an error's first lines are all we keep).
ANSWER_MAX_BYTES = 4096
# httpx's default pool size: the worker's 32 threads a lane never queue for a connection.
CONNECTIONS = 100
# Pools the connections are shared out over, a thread always the same one's: a pool walks all
# its connections on every request (one pool for 32 threads: ~0.25 ms more CPU a webhook, and
# 876 events/s where four sent 1,500: specs/benchmark.md).
POOLS = 4
# Who calls (a webhook's or Dapr's; a push sends none): some firewalls refuse a call without.
USER_AGENT = "task-api-worker"
# httpcore's errors of a call (the receiver's or the network's); anything else is a bug.
SEND_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)

_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("send_deadline")
_T = TypeVar("_T")


class DeadlinePassed(httpcore.TimeoutException):
    """The call's whole deadline passed."""


def _within(operation: Callable[[float], _T]) -> _T:
    """`operation(timeout)` with what this thread's call has left of its deadline."""
    left = _DEADLINE.get() - time.monotonic()
    try:
        if left <= 0:
            raise httpcore.TimeoutException
        return operation(left)
    except httpcore.TimeoutException as exc:
        raise DeadlinePassed("the send's deadline passed") from exc


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _within(lambda left: self._inner.read(max_bytes, left))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _within(lambda left: self._inner.write(buffer, left))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: Any = None
    ) -> httpcore.NetworkStream:
        return _Stream(
            _within(lambda left: self._inner.start_tls(ssl_context, server_hostname, left))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Sockets(httpcore.SyncBackend):
    """httpcore's own sockets, each operation cut at the call's deadline."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        connect = super().connect_tcp
        return _Stream(
            _within(lambda left: connect(host, port, left, local_address, socket_options))
        )


@dataclass(frozen=True)
class Answer:
    """A receiver's answer, at most `ANSWER_MAX_BYTES` of its body (`cut`: more, unread)."""

    status_code: int
    headers: httpx.Headers
    head: bytes
    cut: bool


@lru_cache(maxsize=256)
def _target(url: str) -> tuple[httpcore.URL, tuple[tuple[str, str], ...]]:
    """A URL's httpcore form and the headers it implies: `Host`, ours, and Basic auth from its
    user info, as httpx sends it (parsed by httpx's URL; a URL the settings hold, so a few)."""
    u = httpx.URL(url)
    own = [("Host", u.netloc.decode("ascii")), ("Accept", "*/*"), ("User-Agent", USER_AGENT)]
    if u.userinfo:
        pair = f"{u.username}:{u.password}".encode()
        own.append(("Authorization", "Basic " + base64.b64encode(pair).decode()))
    core = httpcore.URL(scheme=u.raw_scheme, host=u.raw_host, port=u.port, target=u.raw_path)
    return core, tuple(own)


class HttpClient:
    """POSTs, each ending by `seconds` in all, over `POOLS` pools of kept-alive connections."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._pools = [
            httpcore.ConnectionPool(
                max_connections=CONNECTIONS // POOLS,
                # As many kept as open: httpcore closes an idle one whenever it holds more.
                max_keepalive_connections=CONNECTIONS // POOLS,
                keepalive_expiry=5.0,  # httpx's: an idle connection closed after 5 s
                network_backend=_Sockets(),
            )
            for _ in range(POOLS)
        ]

    def post(
        self,
        url: str | httpcore.URL,
        headers: dict[str, str],
        content: bytes,
        extensions: dict[str, Any] | None = None,
    ) -> Answer:
        """POST `content` to `url` (a string: with the headers it implies; httpcore's: `Host`
        in `headers`), reading at most `ANSWER_MAX_BYTES` of the answer; the rest unread, its
        connection is closed, not reused. Raises one of `SEND_ERRORS`."""
        sent: list[tuple[str, str]] = [*headers.items()]
        if isinstance(url, str):
            url, own = _target(url)
            sent[:0] = own
        limits = {"timeout": {"pool": self.seconds}}
        pool = self._pools[threading.get_native_id() % POOLS]  # a thread's own, its TID in turn
        token = _DEADLINE.set(time.monotonic() + self.seconds)
        try:
            with pool.stream(
                "POST",
                url,
                headers=sent,
                content=content,
                extensions={**limits, **(extensions or {})},
            ) as answer:
                head = b""
                for chunk in answer.iter_stream():
                    head += chunk
                    if len(head) > ANSWER_MAX_BYTES:
                        break
        finally:
            _DEADLINE.reset(token)
        cut = len(head) > ANSWER_MAX_BYTES
        return Answer(answer.status, httpx.Headers(answer.headers), head[:ANSWER_MAX_BYTES], cut)

    def close(self) -> None:
        for pool in self._pools:
            pool.close()
