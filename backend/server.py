"""The HTTP/1.1 protocol `serve` runs: uvicorn's httptools protocol plus the bounds it lacks
(specs/reliability.md): the head's size (431), a deadline to receive a request (408, or closed
mid-body) and connections per worker (marked for the app's gate: 503 with the envelope, which
uvicorn's `limit_concurrency` does not give). h11 bounds the head too, but answers 400, has no
receive deadline and parses in Python."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from backend.api import CONNECTION, OVER_CONNECTION_LIMIT

# Nothing heavier at import: each spawned worker imports this before its 5 s health check.
if TYPE_CHECKING:
    from backend.config import Settings

# Raw answers never reach the app's header middleware: an API error's protective headers.
_PROTECTIVE = (
    b"x-content-type-options: nosniff\r\nx-frame-options: DENY\r\ncache-control: no-store\r\n"
    b"content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n"
)
logger = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    request_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            request_timeout_seconds=settings.http_request_timeout_seconds,
            max_connections=settings.http_max_connections,
        )


def protocol_factory(limits: HttpLimits) -> Any:
    """uvicorn's `http`, per connection: a partial of a module-level class pickles into workers."""
    return functools.partial(BoundedHttpToolsProtocol, limits=limits)


def raw_error(status: int, code: str, message: str) -> bytes:
    """An HTTP/1.1 error response with the envelope, closing, for before the app has a request."""
    from backend.api.errors import error_response  # imported by the app long before

    response = error_response(status, code, message, headers={"Connection": "close"})
    headers = b"".join(name + b": " + value + b"\r\n" for name, value in response.raw_headers)
    return STATUS_LINE[status] + headers + _PROTECTIVE + b"\r\n" + response.body


class LongResponse:
    """What a long request or response may ask of its connection (`CONNECTION`, backend/api)."""

    __slots__ = ("_protocol", "_transport", "closing")

    def __init__(self, transport: asyncio.Transport, protocol: BoundedHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.closing = asyncio.Event()

    def abort(self) -> None:
        self._transport.abort()

    def receive_within(self, seconds: float) -> None:
        """The body may take `seconds` from now (an upload: ATTACHMENTS_UPLOAD_SECONDS)."""
        self._protocol.receive_within(seconds)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        # Until the next head is complete: the bytes fed meanwhile count against the limit.
        self._awaiting_head = True
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._over_limit = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._connection = LongResponse(transport, self)
        self._over_limit = len(self.connections) > self.limits.max_connections
        self._arm()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._awaiting_head:  # a body, or bytes after a refused request
            super().data_received(data)
            return
        self._arm()  # the first byte of a request on a kept-alive connection
        budget = self.limits.max_header_bytes - self._head_bytes
        if len(data) <= budget:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Feed at most the limit: a head not complete within it is too large (the rest unread).
        self._head_bytes += budget
        super().data_received(data[:budget])
        if self.transport.is_closing():
            return
        if self._awaiting_head:
            limit = self.limits.max_header_bytes
            logger.warning("Request line and headers over %d bytes: 431", limit)
            self._refuse(
                431,
                "HEADERS_TOO_LARGE",
                f"The request line and headers are larger than {limit} bytes",
            )
            return
        self.data_received(data[budget:])

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        extensions: dict[str, Any] = {CONNECTION: self._connection}
        if self._over_limit:
            extensions[OVER_CONNECTION_LIMIT] = {}
        self.scope["extensions"] = extensions
        super().on_headers_complete()

    def shutdown(self) -> None:
        # A response still running (a live stream) is told, and ends itself cleanly.
        self._connection.closing.set()
        super().shutdown()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._awaiting_head = True
        self._head_bytes = 0

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection is the WebSocket protocol's from here
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(
                self.limits.request_timeout_seconds, self._timed_out
            )

    def receive_within(self, seconds: float) -> None:
        if self._awaiting_head or self.transport.is_closing():
            return  # the body is in (or the connection going): nothing left to time
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._awaiting_head and (self.cycle is None or self.cycle.response_complete):
            self._refuse(
                408, "REQUEST_TIMEOUT", "The request was not received in time; send it again"
            )
        else:
            # The app is running: no answer over its own; it sees a disconnect.
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # What the parser refuses (a bad Content-Length or request line): the envelope, not text.
        self._refuse(400, "BAD_REQUEST", msg)

    def _refuse(self, status: int, code: str, message: str) -> None:
        self.transport.write(raw_error(status, code, message))
        self.transport.close()
