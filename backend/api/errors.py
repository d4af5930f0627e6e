"""One error family, one envelope: `{"error": {"code", "message", "details"}}`.

The HTTP side of `backend/errors.py`: framework, validation and database errors are mapped to
the same envelope here, the only place that builds one. Nothing internal (tracebacks, SQL)
reaches a response: an unexpected error is logged with the request id, answered a generic 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from backend.api.responses import RATE_LIMIT_HEADERS
from backend.errors import (
    AppError,
    ErrorParts,
    InvalidRequest,
    describe,
    error_body,
    validation_details,
)

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
    body = error_body(code, message, details)
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette's 405 lists only the first
    matching route's, and FastAPI declares one route per method."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    # HEAD is served wherever GET is (backend/api/middleware.py), though no route declares it.
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
    # limit, the answer is the 429 (backend/api/deps.py put the unit of work here).
    work = getattr(request.state, "unit_of_work", None)
    if work is not None:
        try:
            await run_in_threadpool(work.count_refused_write)
        except (AppError, OperationalError, PoolTimeoutError) as refused:
            return respond(describe(refused), request)
    details = validation_details(exc.errors())
    return respond(ErrorParts(422, InvalidRequest.code, InvalidRequest.message, details), request)


def respond(parts: ErrorParts, request: Request | None = None) -> JSONResponse:
    """The error's response; for a request that was counted against a rate limit, with the
    count's `RateLimit` headers, whatever the status (specs/api-contract.md, "Rate limits")."""
    headers = {**_counted(request), **parts.headers}
    return error_response(parts.status, parts.code, parts.message, parts.details, headers)


def _counted(request: Request | None) -> dict[str, str]:
    """The `RateLimit` headers the request's unit of work was given by its count (none when
    it was not counted)."""
    work = getattr(request.state, "unit_of_work", None) if request is not None else None
    if work is None:
        return {}
    given = work.response_headers
    return {name: given[name] for name in RATE_LIMIT_HEADERS if name in given}


async def _described(request: Request, exc: Exception) -> JSONResponse:
    return respond(describe(exc), request)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for mapped in (AppError, IntegrityError, DataError, OperationalError, PoolTimeoutError):
        app.add_exception_handler(mapped, _described)
