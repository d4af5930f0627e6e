"""Small ASGI middlewares that do not belong to one route."""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import error_response
from backend.server import OVER_CONNECTION_LIMIT

# RFC 9112 3.2 / RFC 3986 3.2.2: uri-host [":" port], the host an IP literal or a reg-name
# (unreserved, percent-encoded and sub-delims characters; empty is allowed).
_HOST = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:[0-9]*)?")
_OVER_LIMIT_MESSAGE = "The server is at its connection limit; retry shortly"


class TrailingSlashMiddleware:
    """Route `/api/tasks/` exactly like `/api/tasks`, with no redirect.

    A redirect would drop the Authorization header in some clients and costs a round trip.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                # In place, not on a copy: the access log reads the matched route from the
                # same scope dict the router writes it to.
                scope["path"] = path.rstrip("/") or "/"
                raw = scope.get("raw_path")
                if isinstance(raw, bytes):
                    scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuse request bodies over the limit with the 413 envelope.

    A declared Content-Length over the limit is refused before anything is read; a streamed
    (chunked) body is counted as it arrives and refused once it crosses the limit. (FastAPI's
    own `max_body_size` answers in plain text from outside every middleware, so it is not used.)
    """

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"Request body is larger than {self.max_body_size} bytes"
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            await error_response(413, "PAYLOAD_TOO_LARGE", too_large)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    # An HTTPException, because FastAPI turns any other error raised while
                    # reading the body into a 400; the handler gives it the envelope.
                    raise HTTPException(413, detail=too_large)
            return message

        await self.app(scope, counting_receive, send)


class RequestGateMiddleware:
    """Requests refused before any route sees them, with the envelope (400 or 503).

    - `Host`: RFC 9112 3.2 requires a 400 for an HTTP/1.1 request without one, and for any
      request with more than one or with an invalid value (uvicorn's httptools protocol
      passes all three on); a proxy or a virtual-host router could disagree with the app about
      which host was meant.
    - A request on a connection the server opened beyond `HTTP_MAX_CONNECTIONS`
      (`backend/server.py` marks it): 503 with `Retry-After: 1` and `Connection: close`, except
      `GET /health`, which touches nothing and must keep telling a probe the worker is alive.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(scope: Scope) -> ASGIApp | None:
    if OVER_CONNECTION_LIMIT in scope.get("extensions", ()) and scope["path"] != "/health":
        headers = {"Retry-After": "1", "Connection": "close"}
        return error_response(503, "SERVICE_UNAVAILABLE", _OVER_LIMIT_MESSAGE, headers=headers)
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    if len(hosts) > 1:
        message = "More than one Host header"
    elif not hosts:
        if scope.get("http_version") != "1.1":
            return None  # HTTP/1.0 may omit it
        message = "The Host header is missing"
    elif _HOST.fullmatch(hosts[0]) is None:
        message = "The Host header is not a valid host"
    else:
        return None
    return error_response(400, "BAD_REQUEST", message)
