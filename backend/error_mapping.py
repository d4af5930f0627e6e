"""What a client is told about any exception, whatever the transport (REST, MCP over HTTP or
stdio): the one mapping to the error envelope's parts. It imports no web framework, so both
transports use it without one importing the other (tests/test_imports.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg2.errors import ForeignKeyViolation, QueryCanceled
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.db.deadline import DatabaseTimeout, DatabaseUnresponsive
from backend.errors import AppError, Conflict, InvalidRequest, ServiceUnavailable, Unauthorized

# Logged as `backend.errors`, the name operators' log queries and alerts match on; every record
# carries the request id (backend/observability/logging.py).
logger = logging.getLogger("backend.errors")


def error_body(
    code: str, message: str, details: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The envelope: `{"error": {"code", "message", "details"}}`."""
    return {"error": {"code": code, "message": message, "details": list(details)}}


# Where a request's parameters (not its body) come from: a value there is one scalar, so
# anything pydantic puts after the parameter's name in `loc` names a member of its union type
# (`query.list_id.literal['none']`), not a place in the request.
_PARAMETERS = frozenset({"query", "path", "header", "cookie"})


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Only location, message and type: pydantic's `input`/`ctx` may echo large or odd values.
    details: list[dict[str, Any]] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if loc and loc[0] in _PARAMETERS:
            loc = loc[:2]
        detail = {
            "field": ".".join(str(part) for part in loc) or None,
            "message": str(err.get("msg", "Invalid value")),
            "type": str(err.get("type", "value_error")),
        }
        if detail not in details:
            details.append(detail)
    return details


ACCOUNT_GONE_MESSAGE = "The account for this token no longer exists"
# The foreign key of any per-user table's `user_id` to `users`, by the naming convention
# (`fk_<table>_user_id_users`, backend/models/common.py): violated when the caller's account is
# deleted between the request's account lookup and its write.
ACCOUNT_KEY_SUFFIX = "_user_id_users"
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
    if isinstance(exc, ValidationError):
        details = validation_details(exc.errors())
        return ErrorParts(422, InvalidRequest.code, InvalidRequest.message, details)
    if isinstance(exc, IntegrityError):
        orig = getattr(exc, "orig", None)
        if isinstance(orig, ForeignKeyViolation) and (orig.diag.constraint_name or "").endswith(
            ACCOUNT_KEY_SUFFIX
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
    logger.error("unhandled error", exc_info=exc)
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
