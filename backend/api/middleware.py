"""Small ASGI middlewares that do not belong to one route."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import error_response


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
