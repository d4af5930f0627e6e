"""The access log and the HTTP metrics, from one pure ASGI middleware.

It sits just inside CorrelationIdMiddleware (so the request id is set) and outside every
other middleware (so it sees the final status: 413, 500, refused CORS preflights included).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.observability.logging import TOOL_KEY, TOOL_STATUS_KEY, log_access
from backend.observability.metrics import HttpMetrics


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        # Shared with the inner scopes (copies are shallow): the auth dependency puts the
        # user id here through `request.state`.
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500  # if the app fails before answering, the client gets a 500 (or nothing)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = perf_counter() - started
            # Set by the router on a match (also a 405's partial match). `path_format` is the
            # template without convertors: /api/tasks/{task_id}.
            route: str | None = getattr(scope.get("route"), "path_format", None)
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
                path=scope["path"],
                status=status,
                duration_s=seconds,
                client=client[0] if client else None,
                user_id=state.get("user_id"),
                tool=tool,
                tool_status=tool_status,
            )
