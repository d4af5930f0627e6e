"""`/mcp`: the MCP server over Streamable HTTP, inside the API app, stateless with JSON responses
(any worker of any replica answers). `McpEndpoint` admits only a verified caller: REST's bearer
check (401 + `WWW-Authenticate`), then the account resolved as a REST request's (a `tools/call`
in the tool's own unit of work, its refusal the HTTP 401; any other request first). With an
external issuer, RFC 9728's protected-resource metadata names it (the built-in issuer is no
OAuth authorization server: nothing is advertised)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.auth import ProtectedResourceMetadata
from starlette.types import Message, Receive, Scope, Send

from backend.auth.bearer import authenticate
from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.errors import ErrorParts, ServiceUnavailable, Unauthorized, describe, error_body
from backend.mcp.caller import Caller
from backend.mcp.mount import MCP_PATH, METADATA_PATH, authorization_server
from backend.mcp.server import build_server
from backend.observability.logging import TOOL_KEY, TOOL_STATUS_KEY
from backend.services.unit_of_work import UnitOfWork

# In the request's scope state: the verified claims; a tool call's refusal of the account (401).
_CLAIMS, _REFUSED = "mcp_claims", "mcp_account_refused"


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The request body (the app's body limit bounds it), and a `receive` that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", receive  # the client went away: the SDK sees the same
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _is_tool_call(body: bytes) -> bool:
    """Whether the body is one `tools/call` (the only method that touches data)."""
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("method") == "tools/call"


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class McpEndpoint:
    """The ASGI app routed at `/mcp`: bearer check, then the SDK's stateless transport."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._issuer = authorization_server(settings)
        self._server = build_server(self._identify)
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run for the app's lifespan (a manager runs once: each lifespan gets a new one)."""
        manager = StreamableHTTPSessionManager(
            app=self._server,
            json_response=True,
            stateless=True,
            # No DNS-rebinding check: it guards cookie- or network-trusting servers, not a token.
            security_settings=None,
        )
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        try:
            claims = await authenticate(self._app.state.token_verifier, _bearer_token(request))
        except Exception as exc:
            await self._refuse(request, describe(exc))(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["user_id"] = claims.subject  # for the access log, as REST routes do
        if request.method != "POST":  # stateless: no stream (GET), no session to end (DELETE)
            refused = ErrorParts(
                405, "METHOD_NOT_ALLOWED", "Method not allowed", headers={"Allow": "POST"}
            )
            await self._refuse(request, refused)(scope, receive, send)
            return
        body, receive = await _buffered(receive)
        if _is_tool_call(body):  # resolved by the tool's unit of work
            send = self._refusing(request, state, send)
        else:
            try:
                await anyio.to_thread.run_sync(self._resolve_account, claims, _client_ip(request))
            except Exception as exc:
                await self._refuse(request, describe(exc))(scope, receive, send)
                return
        manager = self._manager
        if manager is None:  # not started, or shutting down
            await self._refuse(request, describe(ServiceUnavailable()))(scope, receive, send)
            return
        state[_CLAIMS] = claims
        await manager.handle_request(scope, receive, send)

    def _refusing(self, request: Request, state: dict[str, Any], send: Send) -> Send:
        """`send`, but the 401 instead of the SDK's answer once a tool refused the account."""
        replaced = False

        async def sending(message: Message) -> None:
            nonlocal replaced
            refusal = state.get(_REFUSED)
            if message["type"] == "http.response.start" and refusal is not None:
                replaced = True
                await self._refuse(request, describe(refusal))(request.scope, _no_body, send)
            elif not (replaced and message["type"] == "http.response.body"):
                await send(message)

        return sending

    def _resolve_account(self, claims: TokenClaims, client_ip: str) -> None:
        """A REST request's entry: 401 for a revoked token or deleted account, or provisioning."""
        with UnitOfWork(self._app.state.engine, self._settings, claims=claims, client_ip=client_ip):
            pass

    async def _identify(self, ctx: ServerRequestContext[Any, Any]) -> Caller:
        request = ctx.request
        if not isinstance(request, Request):  # never: only __call__ hands requests in
            raise Unauthorized("Missing bearer token")
        claims = getattr(request.state, _CLAIMS, None)
        if not isinstance(claims, TokenClaims):
            raise Unauthorized("Missing bearer token")
        return Caller(
            self._app.state.engine,
            self._settings,
            claims,
            _client_ip(request),
            refused=lambda exc: setattr(request.state, _REFUSED, exc),
            observed=lambda tool, status: _observe(request.scope, tool, status),
        )

    def _refuse(self, request: Request, parts: ErrorParts) -> JSONResponse:
        headers = dict(parts.headers)
        if parts.status == 401:
            headers["WWW-Authenticate"] = self.challenge(request)
        body = error_body(parts.code, parts.message, parts.details)
        return JSONResponse(body, status_code=parts.status, headers=headers)

    def challenge(self, request: Request) -> str:
        if self._issuer is None:
            return "Bearer"
        return f'Bearer resource_metadata="{_base_url(request)}{METADATA_PATH}"'

    async def protected_resource_metadata(self, request: Request) -> JSONResponse:
        """RFC 9728 metadata of `/mcp`: the external issuer is where its user signs in."""
        metadata = ProtectedResourceMetadata.model_validate(
            {
                "resource": f"{_base_url(request)}{MCP_PATH}",
                "authorization_servers": [self._issuer],
                "bearer_methods_supported": ["header"],
                "resource_name": "Task API",
            }
        )
        return JSONResponse(metadata.model_dump(mode="json", exclude_none=True))


def _bearer_token(request: Request) -> str | None:
    """The bearer token as REST's OAuth2PasswordBearer reads it (another scheme: none)."""
    authorization = request.headers.get("authorization")
    scheme, token = get_authorization_scheme_param(authorization)
    if not authorization or scheme.lower() != "bearer":
        return None
    return token


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _observe(scope: Scope, tool: str, status: int) -> None:
    """Tell the access log and metrics the tool called and its status (a tool error is a 200)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    state[TOOL_KEY] = tool
    state[TOOL_STATUS_KEY] = max(status, state.get(TOOL_STATUS_KEY, 0))
