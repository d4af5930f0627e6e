"""One error family, one envelope: `{"error": {"code", "message", "details"}}`.

The HTTP side of `backend/errors.py`: services raise `AppError` subclasses; framework,
validation and database errors are mapped here too, so no handler anywhere else builds an
error body. Nothing internal (tracebacks, SQL, connection strings) ever reaches a response:
unexpected errors are logged with the request id and answered with a generic 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg2.errors import ForeignKeyViolation, QueryCanceled
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.db.deadline import DatabaseTimeout, DatabaseUnresponsive
from backend.errors import AppError, Conflict, InvalidRequest, ServiceUnavailable, Unauthorized

# Logged as `backend.errors`, the name operators' log queries and alerts match on.
logger = logging.getLogger("backend.errors")


# Status codes the framework itself produces, and the code each gets in the envelope.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def _validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Only location, message and type: pydantic's `input`/`ctx` may echo large or odd values.
    return [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())) or None,
            "message": str(err.get("msg", "Invalid value")),
            "type": str(err.get("type", "value_error")),
        }
        for err in errors
    ]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path.

    FastAPI declares one route per method, and Starlette's 405 lists only the first route
    whose path matched, so `Allow` would miss the rest (`GET` for `/api/tasks/1`).
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    # HEAD is served wherever GET is (backend/api/headers.py), though no route declares it.
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code = _HTTP_CODES.get(exc.status_code, "ERROR" if exc.status_code < 500 else "INTERNAL_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").capitalize()
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = "Not found"
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return error_response(exc.status_code, code, message, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    # A write refused for its input still counts against the caller's write limit; over the
    # limit, the answer is the 429 (backend/api/door.py put the unit of work here).
    work = getattr(request.state, "unit_of_work", None)
    if work is not None:
        try:
            await run_in_threadpool(work.count_refused_write)
        except (AppError, OperationalError, PoolTimeoutError) as refused:
            return respond(describe(refused))
    return respond(describe(exc))


ACCOUNT_GONE_MESSAGE = "The account for this token no longer exists"
# Foreign keys from a user's rows to `users`: violated when the caller's account is deleted
# between the request's account lookup and its write.
_ACCOUNT_FOREIGN_KEYS = frozenset({"fk_tasks_user_id_users", "fk_idempotency_keys_user_id_users"})
STATEMENT_TIMEOUT_MESSAGE = "The database took too long to answer; retry shortly"
NO_ANSWER_MESSAGE = "The database is not answering; retry shortly"


@dataclass(frozen=True)
class ErrorParts:
    """What a client is told about an exception, whatever the transport (HTTP, MCP)."""

    status: int
    code: str
    message: str
    details: Sequence[Mapping[str, Any]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)


def describe(exc: Exception) -> ErrorParts:
    """The one mapping from an exception to the error envelope's parts. Unexpected errors are
    logged here (with their traceback) and become a generic 500: nothing internal leaks."""
    if isinstance(exc, AppError):
        return ErrorParts(
            exc.status_code,
            exc.code,
            exc.message,
            exc.details,
            {**(exc.headers or {}), **exc.extra_headers},
        )
    if isinstance(exc, RequestValidationError | ValidationError):
        details = _validation_details(exc.errors())
        return ErrorParts(422, InvalidRequest.code, InvalidRequest.message, details)
    if isinstance(exc, IntegrityError):
        orig = getattr(exc, "orig", None)
        if (
            isinstance(orig, ForeignKeyViolation)
            and orig.diag.constraint_name in _ACCOUNT_FOREIGN_KEYS
        ):
            # The write raced the account's deletion: the token speaks for nobody any more.
            logger.info("write refused: its account was deleted while the request ran")
            return ErrorParts(
                401, Unauthorized.code, ACCOUNT_GONE_MESSAGE, headers=Unauthorized.headers or {}
            )
        # A constraint the API's own validation should have caught: report it, never the SQL.
        logger.warning("integrity error mapped to 409: %s", type(exc.__cause__ or exc).__name__)
        return ErrorParts(409, Conflict.code, Conflict.message)
    if isinstance(exc, DataError):
        logger.warning("data error mapped to 422: %s", type(exc.__cause__ or exc).__name__)
        return ErrorParts(422, InvalidRequest.code, "A value is out of range or malformed")
    if isinstance(exc, OperationalError | PoolTimeoutError):
        return ErrorParts(
            503,
            ServiceUnavailable.code,
            _unavailable_message(exc),
            headers=ServiceUnavailable.headers or {},
        )
    logger.error("unhandled error (request id %s)", correlation_id.get(), exc_info=exc)
    return ErrorParts(500, AppError.code, AppError.message)


def _unavailable_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    # A statement cut by DB_STATEMENT_TIMEOUT_MS (SQLSTATE 57014) is an OperationalError too;
    # nothing was written (its transaction rolled back), so a retry is safe.
    if isinstance(orig, QueryCanceled):
        logger.warning("statement cancelled by the statement timeout")
        return STATEMENT_TIMEOUT_MESSAGE
    if isinstance(orig, DatabaseTimeout | DatabaseUnresponsive):
        # No answer within DB_RESPONSE_TIMEOUT_MS, or the breaker is open after one: the
        # watchdog and the breaker log the event once; no traceback per request.
        logger.info("database not answering: %s", orig)
        return NO_ANSWER_MESSAGE
    # The traceback (which statement, which connection step) goes to the log only.
    logger.error("database unavailable: %s", type(exc).__name__, exc_info=exc)
    return ServiceUnavailable.message


def respond(parts: ErrorParts) -> JSONResponse:
    return error_response(parts.status, parts.code, parts.message, parts.details, parts.headers)


async def _described(_: Request, exc: Exception) -> JSONResponse:
    return respond(describe(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for mapped in (AppError, IntegrityError, DataError, OperationalError, PoolTimeoutError):
        app.add_exception_handler(mapped, _described)


class UnhandledErrorMiddleware:
    """Innermost middleware: turns any unhandled exception into the 500 envelope.

    Starlette's own last-resort handler sits outside every middleware, so its responses
    would miss the request id and CORS headers; catching here keeps them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception(
                "unhandled error on %s %s (request id %s)",
                scope.get("method"),
                scope.get("path"),
                correlation_id.get(),
            )
            if started:
                raise
            response = error_response(500, "INTERNAL_ERROR", "Internal server error")
            await response(scope, receive, send)
