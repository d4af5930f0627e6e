"""The edge: everything a request meets before its route, in one pure ASGI middleware
(specs/api-contract.md: "HEAD", "Trailing slash", the response headers; specs/reliability.md).

In order, outermost first (the request id, `asgi_correlation_id`, is set just outside):
1. access log and metrics: outside the rest, so they see the final status and HEAD as HEAD;
2. HEAD in as a GET on a copy of the scope (the server's own keeps HEAD, so it sends no body),
   and the protective headers on every answer that lacks them;
3. the request gate: `Host` (RFC 9112 3.2: 400), and a connection beyond `HTTP_MAX_CONNECTIONS`
   (503) except `GET /health`, which must keep telling a probe the worker lives;
4. trailing slash routed as without it, no redirect (it drops Authorization in some clients);
5. CORS, Starlette's: preflights end here;
6. body size, each mount's (`mounts`; `bounded` by default): a declared `Content-Length` over
   the limit refused before reading, an undeclared one counted as it arrives (FastAPI's own
   limit answers plain text from outside every middleware);
7. unhandled errors: the 500 envelope, logged with the request id (Starlette's last-resort
   handler sits outside every middleware: its answer would miss the id, CORS and headers).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from asgi_correlation_id import correlation_id
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api import OVER_CONNECTION_LIMIT
from backend.api.errors import error_response
from backend.errors import loggable
from backend.observability.logging import (
    OUTCOME_STATUS_KEY,
    TOOL_KEY,
    TOOL_STATUS_KEY,
    UNMATCHED,
    log_access,
)
from backend.observability.metrics import HttpMetrics

# Logged as `backend.errors`, the name operators' log queries and alerts match on.
logger = logging.getLogger("backend.errors")

DOCS_PREFIXES = ("/docs", "/redoc", "/openapi.json", "/static-offline-docs/")

# RFC 9112 3.2 / RFC 3986 3.2.2: uri-host [":" port], the host an IP literal or a reg-name
# (unreserved, percent-encoded and sub-delims characters; empty is allowed).
_HOST = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:[0-9]*)?")
_OVER_LIMIT_MESSAGE = "The server is at its connection limit; retry shortly"
# In the request's `state` (shared by the HEAD copy of the scope): the status once the
# response has started, so an error raised after that is not answered a second time.
_STATUS = "task_api.status"

HeaderList = list[tuple[bytes, bytes]]


# The headers the edge adds to every answer that lacks them.
_EDGE_NAMES = frozenset(
    {b"x-content-type-options", b"x-frame-options", b"cache-control", b"content-security-policy"}
)


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics | None,
        hsts_max_age: int,
        max_body_size: int,
        mounts: Sequence[tuple[str, re.Pattern[str], Step]] = (),
        cors_origins: Sequence[str],
        cors_allow_headers: Sequence[str],
        cors_expose_headers: Sequence[str],
    ) -> None:
        self.app = app
        self.metrics = metrics

        def cors(step: Step) -> ASGIApp:
            return CORSMiddleware(
                step(app),
                allow_origins=cors_origins,
                allow_credentials=True,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=cors_allow_headers,
                expose_headers=cors_expose_headers,
                max_age=600,
            )

        self.cors = cors(bounded(max_body_size))
        # (method or `*`, path pattern, CORS around that mount's own steps 6-7)
        self.mounts = tuple((method, pattern, cors(step)) for method, pattern, step in mounts)
        common: HeaderList = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
        ]
        if hsts_max_age > 0:
            common.append((b"strict-transport-security", f"max-age={hsts_max_age}".encode()))
        no_store = (b"cache-control", b"no-store")
        self.api_headers: HeaderList = [
            *common,
            no_store,
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        ]
        self.docs_headers: HeaderList = [
            *common,
            (b"content-security-policy", b"frame-ancestors 'none'"),
        ]
        self.docs_error_headers: HeaderList = [*self.docs_headers, no_store]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        # Shared with the inner scopes (copies are shallow): the auth dependency puts the user
        # id here through `request.state`, MCP the tool it ran.
        state: dict[str, Any] = scope.setdefault("state", {})
        docs = scope["path"].startswith(DOCS_PREFIXES)
        head = scope["method"] == "HEAD"

        async def respond(message: Message) -> None:
            if message["type"] == "http.response.start":
                state[_STATUS] = status = message["status"]
                if not docs:
                    extra = self.api_headers
                else:
                    extra = self.docs_headers if status < 400 else self.docs_error_headers
                own = message.get("headers", ())
                # A response that set one of these itself (a download's stricter CSP and
                # caching) keeps its own.
                named = {name.lower() for name, _ in own}
                if named.isdisjoint(_EDGE_NAMES):
                    message = {**message, "headers": [*own, *extra]}
                else:
                    kept = [header for header in extra if header[0] not in named]
                    message = {**message, "headers": [*own, *kept]}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            # Step 3, the request gate: the answer to a request no route may see.
            refusal = None
            hosts = [value for name, value in scope["headers"] if name == b"host"]
            if OVER_CONNECTION_LIMIT in scope.get("extensions", ()) and scope["path"] != "/health":
                headers = {"Retry-After": "1", "Connection": "close"}
                refusal = error_response(
                    503, "SERVICE_UNAVAILABLE", _OVER_LIMIT_MESSAGE, headers=headers
                )
            elif len(hosts) > 1:
                refusal = error_response(400, "BAD_REQUEST", "More than one Host header")
            elif not hosts and scope.get("http_version") == "1.1":  # HTTP/1.0 may omit it
                refusal = error_response(400, "BAD_REQUEST", "The Host header is missing")
            elif hosts and _HOST.fullmatch(hosts[0]) is None:
                message = "The Host header is not a valid host"
                refusal = error_response(400, "BAD_REQUEST", message)
            if refusal is not None:
                await refusal(scope, receive, respond)
            else:
                # Step 4, trailing slash: in place, not on a copy (the access log reads the
                # matched route from the same scope dict the router writes it to).
                path: str = scope["path"]
                if len(path) > 1 and path.endswith("/"):
                    scope["path"] = path = path.rstrip("/") or "/"
                    raw = scope.get("raw_path")
                    if isinstance(raw, bytes):
                        scope["raw_path"] = raw.rstrip(b"/") or b"/"
                inside = self.cors  # step 5, then the mount's steps 6-7
                for verb, pattern, mounted in self.mounts:
                    if verb in (scope["method"], "*") and pattern.match(path):
                        inside = mounted
                if not head:
                    await inside(scope, receive, respond)
                else:
                    inner = {**scope, "method": "GET"}
                    try:
                        await inside(inner, receive, respond)
                    finally:
                        # The access log and the metrics read the matched route from this scope.
                        if "route" in inner:
                            scope["route"] = inner["route"]
        finally:
            seconds = perf_counter() - started
            # If the app failed before answering, the client got a 500 (or nothing).
            status: int = state.get(_STATUS, 500)
            # A stream that began as 200 and ended with an error event: the error's status.
            status = state.get(OUTCOME_STATUS_KEY) or status
            # The router's match inline (one call fewer on every request), else by path.
            route: str | None = getattr(scope.get("route"), "path_format", None)
            if route is None:
                route = route_template(scope)
            method: str = scope["method"]
            tool, tool_status = state.get(TOOL_KEY), state.get(TOOL_STATUS_KEY)
            if metrics is not None:
                metrics.in_flight.dec()
                metrics.observe(method, route, status, seconds)
                if tool is not None:
                    metrics.observe_tool(tool, tool_status or 0)
            client = scope.get("client")
            log_access(
                method=method,
                route=route,
                status=status,
                duration_s=seconds,
                client=client[0] if client else None,
                user_id=state.get("user_id"),
                tool=tool,
                tool_status=tool_status,
            )


Step = Callable[[ASGIApp], ASGIApp]


def bounded(limit: int) -> Step:
    """Steps 6-7 of a mount whose bodies hold at most `limit` bytes (module docstring)."""
    return lambda app: _Bounded(app, limit)


class _Bounded:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit
        too_large = f"Request body is larger than {limit} bytes"
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and not (declared.isascii() and declared.isdigit()):
            # A negative or non-numeric length (a server in front usually refuses it first).
            invalid = "Content-Length must be a number of bytes"
            await error_response(400, "BAD_REQUEST", invalid)(scope, receive, send)
            return
        if declared is not None and int(declared) > limit:
            await error_response(413, "PAYLOAD_TOO_LARGE", too_large)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:  # a body of no declared length
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, because FastAPI turns any other error raised while
                    # reading the body into a 400; the handler gives it the envelope.
                    raise HTTPException(413, detail=too_large)
            return message

        try:
            # A declared length frames the body (the server reads no more than it says).
            await self.app(scope, receive if declared is not None else counting_receive, send)
        except Exception as exc:
            logger.error(
                "unhandled error on %s %s (request id %s)",
                scope.get("method"),
                logged_route(scope),
                correlation_id.get(),
                exc_info=loggable(exc),
            )
            if _STATUS in scope["state"]:
                raise
            response = error_response(500, "INTERNAL_ERROR", "Internal server error")
            await response(scope, receive, send)


def route_template(scope: Scope) -> str | None:
    """The template of the route `scope`'s path is for (`/api/tasks/{task_id}`: no ids, no
    tokens): the router's match (a 405's too), else by path alone (a request refused before
    routing); None for a path no route has, never shown: it may hold a secret cut anywhere."""
    template: str | None = getattr(scope.get("route"), "path_format", None)
    if template is not None:
        return template
    routes = getattr(getattr(scope.get("app"), "router", None), "routes", None)
    path: str = scope.get("path", "")
    return _template_of(routes or (), path.rstrip("/") or "/", "")


def _template_of(routes: Sequence[Any], path: str, prefix: str) -> str | None:
    """The first of `routes` (and of the routers included in them, FastAPI's
    `original_router`) whose pattern matches `path`: its template."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            found = _template_of(inner.routes, path, prefix + getattr(context, "prefix", ""))
            if found is not None:
                return found
            continue
        pattern, template = getattr(route, "path_regex", None), getattr(route, "path_format", None)
        if pattern is None or template is None or not path.startswith(prefix):
            continue
        if pattern.match(path[len(prefix) :]):
            return f"{prefix}{template}"
    return None


def logged_route(scope: Scope) -> str:
    """What a log line shows for the request's path: its route template, or `<unmatched>`."""
    return route_template(scope) or f"<{UNMATCHED}>"
