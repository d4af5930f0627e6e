"""Errors on the MCP side: the REST error envelope, from the same mapping.

MCP calls never pass through FastAPI's exception handlers, so tools use
`backend.error_mapping.describe` directly: the same exception gives the same status, code,
message and details as on REST.
"""

from __future__ import annotations

from typing import Any

from backend.error_mapping import ErrorParts, error_body


def envelope(parts: ErrorParts) -> dict[str, Any]:
    """`{"error": {"code", "message", "details"}}`, plus `retry_after` (seconds) where the REST
    answer carries `Retry-After`: a tool result has no headers to carry it."""
    body = error_body(parts.code, parts.message, [dict(detail) for detail in parts.details])
    retry_after = parts.headers.get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        body["error"]["retry_after"] = int(retry_after)
    return body
