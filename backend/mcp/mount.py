"""`/mcp` on the app, the MCP SDK (most of a second to import) loaded in a worker thread beside
the start; until it runs a request to `/mcp` waits, and `/health/ready` answers 503."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from backend.config import Settings
from backend.errors import ServiceUnavailable, describe, error_body

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource" + MCP_PATH
# The endpoint's module: it imports the SDK (tests/test_imports.py: not at import).
ENDPOINT_MODULE = "backend.mcp.http"


def authorization_server(settings: Settings) -> str | None:
    """The JWKS tokens' issuer, where an MCP client sends its user to sign in, if configured."""
    issuer = settings.jwks_issuer
    if settings.jwt_jwks_url is None or issuer is None:
        return None
    return issuer if issuer.startswith(("https://", "http://")) else None


class McpMount:
    """The ASGI app routed at `/mcp`: hands each request to the endpoint once it runs."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._endpoint: Any = None  # backend.mcp.http.McpEndpoint, while it runs
        self._settled: anyio.Event | None = None  # set once it runs, failed, or stopped
        self._loaded = threading.Event()  # the same, for a thread (`wait`)
        self.failed: BaseException | None = None

    @property
    def ready(self) -> bool:
        return self._endpoint is not None

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """For the app's lifespan: load the endpoint and run it, beside the rest of the start."""
        self._settled = anyio.Event()
        self._loaded.clear()
        self.failed = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._serve, self._settled)
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    async def _serve(self, settled: anyio.Event) -> None:
        try:
            endpoint = await anyio.to_thread.run_sync(self._build)
            async with endpoint.run():
                self._endpoint = endpoint
                settled.set()
                self._loaded.set()
                await anyio.sleep_forever()
        except Exception as exc:  # an install without the SDK: never ready
            log.exception("the MCP endpoint failed to load")
            self.failed = exc
        finally:
            self._endpoint = None
            settled.set()
            self._loaded.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block a thread until the endpoint runs or failed to (True), or `timeout` passed."""
        return self._loaded.wait(timeout)

    def _build(self) -> Any:
        # A string, not an import statement: the endpoint imports this module.
        module = importlib.import_module(ENDPOINT_MODULE)
        return module.McpEndpoint(self._app, self._settings)

    async def _running(self) -> Any:
        """The endpoint, once it runs (None: not started, failed, or shutting down)."""
        if self._endpoint is None and self._settled is not None:
            await self._settled.wait()
        return self._endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = await self._running()
        if endpoint is None:
            await _unavailable()(scope, receive, send)
            return
        await endpoint(scope, receive, send)

    async def protected_resource_metadata(self, request: Request) -> Response:
        endpoint = await self._running()
        if endpoint is None:
            return _unavailable()
        response: Response = await endpoint.protected_resource_metadata(request)
        return response


def _unavailable() -> JSONResponse:
    parts = describe(ServiceUnavailable())
    body = error_body(parts.code, parts.message, parts.details)
    return JSONResponse(body, status_code=parts.status, headers=dict(parts.headers))


class _NamedRoute(Route):
    """A route naming itself in the scope, as FastAPI's do: logs and metrics label it `/mcp`."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def install_mcp(app: FastAPI, settings: Settings) -> McpMount:
    """Route `/mcp` (and its RFC 9728 metadata); the caller runs `mount.run()` in the lifespan."""
    mount = McpMount(app, settings)
    # The SDK logs "Terminating session: None" at INFO for every stateless request.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    # Every method, outside the OpenAPI document (`/mcp/` too: the edge's trailing-slash step).
    app.router.routes.append(_NamedRoute(MCP_PATH, mount, name="mcp"))
    if authorization_server(settings) is not None:
        app.add_api_route(
            METADATA_PATH,
            mount.protected_resource_metadata,
            methods=["GET"],
            include_in_schema=False,
        )
    return mount
