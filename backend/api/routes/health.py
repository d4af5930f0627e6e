"""Liveness and readiness probes (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from backend.api.errors import error_response
from backend.api.responses import DATABASE_UNREACHABLE, NOT_READY, errors
from backend.chat.stack import Preload
from backend.mcp.mount import McpMount
from backend.models.envelopes import HealthEnvelope, HealthStatus, ReadyEnvelope
from backend.services.health import pending_migrations

router = APIRouter(tags=["health"])
_HEALTHY = HealthEnvelope(data=HealthStatus(status="ok"))


@router.get(
    "/health", operation_id="health", response_model=HealthEnvelope, summary="The process is alive"
)
async def health() -> HealthEnvelope:
    return _HEALTHY


def _unready(reason: str, details: list[dict[str, str | None]] | None = None) -> JSONResponse:
    return error_response(503, "SERVICE_UNAVAILABLE", reason, details or (), {"Retry-After": "5"})


@router.get(
    "/health/ready",
    operation_id="ready",
    response_model=ReadyEnvelope,
    summary="The database is reachable and its migrations are current",
    responses=errors(
        503,
        examples=(DATABASE_UNREACHABLE, NOT_READY),
        descriptions={503: "Not ready (`SERVICE_UNAVAILABLE`), with the reason."},
    ),
)
def ready(request: Request) -> JSONResponse:
    expected: frozenset[str] = request.app.state.migration_ids
    # With chat configured, not before its stack has loaded (backend/chat/stack.py).
    chat: Preload | None = request.app.state.chat_stack
    if chat is not None and (not chat.done or chat.failed is not None):
        reason = "The chat stack is loading" if not chat.done else "The chat stack failed to load"
        return _unready(reason)
    # Nor before /mcp answers (its SDK loads beside the start: backend/mcp/mount.py).
    mcp: McpMount = request.app.state.mcp
    if not mcp.ready:
        reason = "The MCP endpoint failed to load" if mcp.failed else "The MCP endpoint is loading"
        return _unready(reason)
    try:
        pending = pending_migrations(request.app.state.engine, expected)
    except SQLAlchemyError:
        return _unready("Database unreachable")
    if pending:
        details = [
            {"field": None, "message": f"pending: {m}", "type": "migration"} for m in pending
        ]
        return _unready("Database migrations are pending", details)
    return JSONResponse({"data": {"status": "ready", "database": "ok", "migrations": "current"}})
