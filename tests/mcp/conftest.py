"""Helpers for the MCP tests: the SDK's own client over Streamable HTTP (against the real
`serve` command), raw JSON-RPC posts for what a client library would hide (status codes,
headers), and the REST API's view of the same data."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import mcp_types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import Engine, text

# What a Streamable HTTP client sends with every POST.
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}
# Both ways the SDK's client connects: the initialize handshake, and the 2026-07-28 protocol
# (server/discover, then self-contained requests) that "auto" negotiates with this server.
MODES = ["legacy", "auto"]

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run an async test body (the suite's tests are sync; anyio is the SDK's own loop)."""
    return anyio.run(main)


@asynccontextmanager
async def mcp_client(
    base_url: str,
    token: str | None,
    *,
    mode: str = "auto",
    keepalive: bool = True,
    statuses: list[int] | None = None,
) -> AsyncIterator[Client]:
    """The SDK's client on `<base_url>/mcp`, sending `token` as the bearer token. Without
    keep-alive every request opens a new connection (so two workers can share the calls);
    `statuses` collects the HTTP status of every response."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    limits = httpx2.Limits(max_keepalive_connections=0 if not keepalive else 20)

    async def record(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async with (
        httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(30),
            limits=limits,
            event_hooks={"response": [record]},
        ) as http,
        Client(
            streamable_http_client(f"{base_url}/mcp", http_client=http),
            mode=mode,
            cache=None,
        ) as client,
    ):
        yield client


def structured(result: mcp_types.CallToolResult) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def text_json(result: mcp_types.CallToolResult) -> Any:
    """The tool result's text content, parsed: what agents that read text see."""
    (content,) = result.content
    assert isinstance(content, mcp_types.TextContent)
    return json.loads(content.text)


def tool_error(result: mcp_types.CallToolResult) -> dict[str, Any]:
    """The REST error envelope a failed call carries as its text."""
    assert result.is_error, result
    envelope = text_json(result)
    assert set(envelope) == {"error"}
    error: dict[str, Any] = envelope["error"]
    return error


NOT_FOUND = {"code": "NOT_FOUND", "message": "Task not found", "details": []}


def post_rpc(
    http: httpx.Client | Any,
    url: str,
    method: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One JSON-RPC request, as a stateless Streamable HTTP client sends it (no session)."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        body["params"] = params
    response: httpx.Response = http.post(url, json=body, headers={**MCP_HEADERS, **(headers or {})})
    return response


def call_tool_rpc(
    http: httpx.Client | Any,
    url: str,
    token: str,
    name: str,
    arguments: dict[str, Any],
) -> dict[str, Any]:
    """`tools/call` over raw JSON-RPC; the call's `result`."""
    response = post_rpc(
        http,
        url,
        "tools/call",
        {"name": name, "arguments": arguments},
        {"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def rpc_error(result: dict[str, Any]) -> dict[str, Any]:
    assert result["isError"] is True, result
    error: dict[str, Any] = json.loads(result["content"][0]["text"])["error"]
    return error


def task_rows(engine: Engine, user_id: str | None = None) -> list[dict[str, Any]]:
    """Every column of the tasks (of one user), ordered by id: to prove nothing changed."""
    query = "SELECT * FROM tasks" + (" WHERE user_id = :user" if user_id else "") + " ORDER BY id"
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(query), {"user": user_id})]


def rest(base_url: str, token: str) -> httpx.Client:
    """The REST API as the same user sees it."""
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
