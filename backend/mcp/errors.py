"""Errors on the MCP side: the REST error envelope, from the same exceptions.

`backend.errors` maps exceptions to HTTP responses through FastAPI's exception handlers, which
MCP calls never pass through. `describe` gives the same status, code, message and details for
the same exception, so a tool error's text is the body the REST API would have answered with.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg2.errors import QueryCanceled
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.errors import (
    STATEMENT_TIMEOUT_MESSAGE,
    AppError,
    Conflict,
    InvalidRequest,
    ServiceUnavailable,
    _validation_details,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorParts:
    status: int
    code: str
    message: str
    details: Sequence[Mapping[str, Any]] = ()
    headers: dict[str, str] = field(default_factory=dict)

    def envelope(self) -> dict[str, Any]:
        """`{"error": {"code", "message", "details"}}`, plus `retry_after` (seconds) where the
        REST answer carries `Retry-After`: a tool result has no headers to carry it."""
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "details": [dict(detail) for detail in self.details],
        }
        retry_after = self.headers.get("Retry-After")
        if retry_after is not None and retry_after.isdigit():
            error["retry_after"] = int(retry_after)
        return {"error": error}


def describe(exc: Exception) -> ErrorParts:
    """What the REST API answers for `exc` (see the handlers in `backend.errors`)."""
    if isinstance(exc, ValidationError):
        return ErrorParts(
            422, InvalidRequest.code, InvalidRequest.message, _validation_details(exc.errors())
        )
    if isinstance(exc, AppError):
        headers = {**(exc.headers or {}), **exc.extra_headers}
        return ErrorParts(exc.status_code, exc.code, exc.message, exc.details, headers)
    if isinstance(exc, IntegrityError):
        logger.warning("integrity error mapped to 409: %s", type(exc.__cause__ or exc).__name__)
        return ErrorParts(409, Conflict.code, Conflict.message)
    if isinstance(exc, DataError):
        logger.warning("data error mapped to 422: %s", type(exc.__cause__ or exc).__name__)
        return ErrorParts(422, InvalidRequest.code, "A value is out of range or malformed")
    if isinstance(exc, OperationalError | PoolTimeoutError):
        if isinstance(getattr(exc, "orig", None), QueryCanceled):
            logger.warning("statement cancelled by the statement timeout")
            message = STATEMENT_TIMEOUT_MESSAGE
        else:
            logger.error("database unavailable: %s", type(exc).__name__, exc_info=exc)
            message = ServiceUnavailable.message
        return ErrorParts(
            503, ServiceUnavailable.code, message, headers=dict(ServiceUnavailable.headers or {})
        )
    # Nothing internal reaches the client; the traceback goes to the log.
    logger.error("unexpected error in an MCP call", exc_info=exc)
    return ErrorParts(500, AppError.code, AppError.message)
