"""The domain's errors as plain data; `describe` maps any exception to the envelope's parts for
every transport. No web framework here (the worker loads none); HTTP's: backend/api/errors.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import psycopg2
from psycopg2.errors import ForeignKeyViolation, QueryCanceled
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


class AppError(Exception):
    status_code = 500
    code = "INTERNAL_ERROR"
    message = "Internal server error"
    headers: ClassVar[Mapping[str, str] | None] = None
    detail_type: ClassVar[str] = "error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Sequence[Mapping[str, Any]] = (),
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = list(details)
        self.extra_headers = dict(extra_headers or {})

    @classmethod
    def at(cls, field: str, message: str) -> Self:
        """This error about one request field: its message and one detail naming the field."""
        return cls(message, details=[{"field": field, "message": message, "type": cls.detail_type}])


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    message = "Missing or invalid bearer token"
    headers: ClassVar[Mapping[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"
    message = "Not found"
    detail_type = "not_found"


class Forbidden(AppError):
    """A member of a list below the role the request needs (a non-member gets `NotFound`)."""

    status_code = 403
    code = "FORBIDDEN"
    message = "Your role in this list does not allow this"
    detail_type = "forbidden"


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"
    message = "The request conflicts with existing data"
    detail_type = "conflict"


class InvalidRequest(AppError):
    """Well-formed input that the current state of the data does not allow."""

    status_code = 422
    code = "VALIDATION_ERROR"
    message = "Request validation failed"
    detail_type = "value_error"


class LimitReached(InvalidRequest):
    """A documented limit (lists per user, tasks per list, ...) would be passed; nothing changed."""

    code = "LIMIT_REACHED"
    message = "A limit was reached"
    detail_type = "limit_reached"


class CursorExpired(AppError):
    """A change-feed cursor from before the retention: changes after it may be gone."""

    status_code = 410
    code = "CURSOR_EXPIRED"
    message = (
        "This changes cursor is older than the change feed's retention: list the tasks "
        "again (GET /api/tasks) and poll from that listing's meta.changes_cursor"
    )


class PreconditionFailed(AppError):
    """If-Match named no current version of the task: it changed since the client read it."""

    status_code = 412
    code = "PRECONDITION_FAILED"
    message = "The task has changed since it was read (If-Match does not match its ETag)"


class Taken(PreconditionFailed):
    """A CalDAV create whose name or UID (`what`) a concurrent create took (`TA412`)."""

    message = "Another object of this collection holds this name or UID"

    def __init__(self, what: str, read: tuple[Any, ...] = ()) -> None:
        super().__init__()
        self.what, self.read = what, read


class IdempotencyKeyMismatch(InvalidRequest):
    """The Idempotency-Key was first used for a different request (body or route)."""

    code = "IDEMPOTENCY_KEY_MISMATCH"
    message = "This Idempotency-Key was already used for a different request"


class IdempotencyKeyInUse(Conflict):
    """A chat turn with the same Idempotency-Key has not answered yet (it may be running)."""

    code = "IDEMPOTENCY_KEY_IN_USE"
    message = "A request with this Idempotency-Key is still being processed; retry shortly"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "1"}


class RateLimited(AppError):
    """Too many requests; `extra_headers` carries Retry-After and the RateLimit headers."""

    status_code = 429
    code = "RATE_LIMITED"
    message = "Too many requests; retry after the time in Retry-After"


class PayloadTooLarge(AppError):
    """A body past its limit (an attachment one byte over the maximum): nothing was kept."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is too large"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    message = "The service is temporarily unavailable; retry shortly"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "1"}


class UploadsBusy(ServiceUnavailable):
    """ATTACHMENTS_MAX_CONCURRENT_UPLOADS are running: refused before the body is read."""

    message = "Too many uploads in progress on this server; retry after Retry-After"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "2", "Connection": "close"}


class RequestTimeout(AppError):
    """An upload's body that sent nothing for ATTACHMENTS_STALL_SECONDS: nothing was kept."""

    status_code = 408
    code = "REQUEST_TIMEOUT"
    message = "The request was not received in time; send it again"
    headers: ClassVar[Mapping[str, str] | None] = {"Connection": "close"}


class UploadIncomplete(AppError):
    """The connection ended before the upload's body did: nothing was kept (logged at INFO)."""

    status_code = 400
    code = "UPLOAD_INCOMPLETE"
    message = "The connection ended before the upload's body did; send it again"
    headers: ClassVar[Mapping[str, str] | None] = {"Connection": "close"}


class BodyIncomplete(AppError):
    """The connection ended before a CalDAV request's body did (the client gone): nobody is left
    to receive the answer, nothing was done (logged at INFO, as an upload's)."""

    status_code = 400
    code = "BODY_INCOMPLETE"
    message = "The connection ended before the request's body did; send it again"
    headers: ClassVar[Mapping[str, str] | None] = {"Connection": "close"}


class ChatNotConfigured(AppError):
    """No chat provider is configured: chat is off (no retry helps), the rest of the API is not."""

    status_code = 503
    code = "CHAT_NOT_CONFIGURED"
    message = "Chat is not configured on this server (CHAT_BASE_URL and CHAT_MODEL)"


class ChatProviderUnavailable(AppError):
    """The model provider refused or could not be reached (down, overloaded, rate-limited)."""

    status_code = 503
    code = "CHAT_PROVIDER_UNAVAILABLE"
    message = "The chat model's provider is unavailable or rate-limited; retry after Retry-After"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "5"}


class ChatProviderError(AppError):
    """The provider answered something the agent cannot use (malformed tool arguments, ...)."""

    status_code = 502
    code = "CHAT_PROVIDER_ERROR"
    message = "The chat model answered something the agent could not use"


class ChatTooManyTurns(ChatProviderError):
    """The model kept calling tools past the turn's limit (CHAT_MAX_TURNS)."""

    code = "CHAT_TOO_MANY_TURNS"
    message = "The chat model called tools too many times without answering"


class ChatProviderTimeout(AppError):
    """The turn's model calls took longer than CHAT_TIMEOUT_SECONDS."""

    status_code = 504
    code = "CHAT_PROVIDER_TIMEOUT"
    message = "The chat model took too long to answer; retry shortly"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "5"}


# The name operators' log queries and alerts match on.
logger = logging.getLogger("backend.errors")


def error_body(
    code: str, message: str, details: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The envelope: `{"error": {"code", "message", "details"}}`."""
    return {"error": {"code": code, "message": message, "details": list(details)}}


# A parameter is one scalar: what pydantic puts after its name in `loc` is a union member's.
_PARAMETERS = frozenset({"query", "path", "header", "cookie"})

# An enum member as Python writes it (`<Role.viewer: 'viewer'>`): a client reads the value.
_ENUM_MEMBER = re.compile(r"<[A-Za-z_]\w*\.\w+: ('[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?)>")


def error_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message as a client reads it: every enum member by its value."""
    return _ENUM_MEMBER.sub(r"\1", str(error.get("msg", "Invalid value")))


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Only location, message and type: pydantic's `input`/`ctx` may echo large or odd values.
    details: list[dict[str, Any]] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if loc and loc[0] in _PARAMETERS:
            loc = loc[:2]
        detail = {
            "field": ".".join(str(part) for part in loc) or None,
            "message": error_message(err),
            "type": str(err.get("type", "value_error")),
        }
        if detail not in details:
            details.append(detail)
    return details


ACCOUNT_GONE_MESSAGE = "The account for this token no longer exists"
# Keys to `users` of a column a request fills with the caller's id: violated when the account
# is deleted between its lookup and the write.
ACCOUNT_KEY_SUFFIXES = (
    "_user_id_users",
    "_member_id_users",
    "_author_id_users",
    "_recipient_id_users",
    "_deleted_by_users",
    "_uploaded_by_users",
)
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
        headers = {**(exc.headers or {}), **exc.extra_headers}
        return ErrorParts(exc.status_code, exc.code, exc.message, exc.details, headers)
    if isinstance(exc, ValidationError):
        details = validation_details(exc.errors())
        return ErrorParts(422, InvalidRequest.code, InvalidRequest.message, details)
    if isinstance(exc, IntegrityError):
        orig = getattr(exc, "orig", None)
        key = (orig.diag.constraint_name or "") if isinstance(orig, ForeignKeyViolation) else ""
        if key.endswith(ACCOUNT_KEY_SUFFIXES):  # the write raced the account's deletion
            logger.info("write refused: its account was deleted while the request ran")
            challenge = Unauthorized.headers or {}
            return ErrorParts(401, Unauthorized.code, ACCOUNT_GONE_MESSAGE, headers=challenge)
        # A constraint the API's own validation should have caught: report it, never the SQL.
        logger.warning("integrity error mapped to 409: %s", database_failure(exc))
        return ErrorParts(409, Conflict.code, Conflict.message)
    if isinstance(exc, DataError):
        logger.warning("data error mapped to 422: %s", database_failure(exc))
        return ErrorParts(422, InvalidRequest.code, "A value is out of range or malformed")
    if isinstance(exc, OperationalError | PoolTimeoutError):
        retry = ServiceUnavailable.headers or {}
        return ErrorParts(503, ServiceUnavailable.code, _unavailable_message(exc), headers=retry)
    logger.error("unhandled error", exc_info=loggable(exc))
    return ErrorParts(500, AppError.code, AppError.message)


class DatabaseTimeout(psycopg2.OperationalError):
    """No answer within the timeout: the watchdog (`backend/db/engine.py`) shut the connection."""


class DatabaseUnresponsive(psycopg2.OperationalError):
    """The breaker is open (`backend/db/engine.py`): not even tried."""


def _unavailable_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    # Cut by DB_STATEMENT_TIMEOUT_MS: rolled back, so a retry is safe.
    if isinstance(orig, QueryCanceled):
        logger.warning("statement cancelled by the statement timeout")
        return STATEMENT_TIMEOUT_MESSAGE
    if isinstance(orig, DatabaseTimeout | DatabaseUnresponsive):
        # The watchdog and the breaker log the event once: no traceback per request.
        logger.info("database not answering: %s", orig)
        return NO_ANSWER_MESSAGE
    logger.error("database unavailable: %s", database_failure(exc), exc_info=loggable(exc))
    return ServiceUnavailable.message


# A database error's text carries the statement's SQL and values, or quotes a value (`DETAIL:
# Key (email)=(...)`): a log names its class, SQLSTATE and sender, never its text.
_DATABASE_ERRORS = (SQLAlchemyError, psycopg2.Error)
# Modules that send every statement on someone else's behalf: the sender named is their caller.
_CARRIERS = ("backend.db.", "backend.errors")


def database_error(exc: BaseException) -> BaseException | None:
    """`exc` if it is an error of SQLAlchemy or psycopg2, else the first in its chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _DATABASE_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def sent_from(exc: BaseException) -> str:
    """`module.function` of the innermost `backend` frame outside the data layer's carriers."""
    found = innermost = None
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith("backend."):
            here = f"{module}.{tb.tb_frame.f_code.co_qualname}"
            innermost = here
            if not module.startswith(_CARRIERS):
                found = here
        tb = tb.tb_next
    return found or innermost or "unknown"


def database_failure(exc: BaseException) -> str:
    """A database error as a log may show it: classes, SQLSTATE and sender, never the statement
    nor its values (a connection failure or pool timeout, with no SQLSTATE: its first line)."""
    error = database_error(exc) or exc
    orig = getattr(error, "orig", None) if isinstance(error, SQLAlchemyError) else error
    parts = [type(error).__name__]
    if isinstance(orig, psycopg2.Error) and orig is not error:
        parts.append(f"{type(orig).__module__}.{type(orig).__name__}")
    code = getattr(orig, "pgcode", None) if isinstance(orig, psycopg2.Error) else None
    if code:
        parts.append(f"SQLSTATE {code}")
    elif isinstance(orig, psycopg2.OperationalError | psycopg2.InterfaceError | None) and (
        orig is not None or isinstance(error, PoolTimeoutError)  # the pool's words: size, wait
    ):
        first = str(orig if orig is not None else error).strip().splitlines()
        if first:
            parts.append(first[0][:200])
    name = f"{parts[0]} ({', '.join(parts[1:])})" if parts[1:] else parts[0]
    return f"{name} sent from {sent_from(exc)}"


class LoggedDatabaseError(Exception):
    """A database error in a log record: its traceback and `database_failure`, no chained text."""


def loggable(exc: BaseException) -> BaseException:
    """`exc` as a log record may carry it: a database error (or one that follows it, or one in a
    group) as a `LoggedDatabaseError`, without the statement or its values."""
    if isinstance(exc, BaseExceptionGroup):
        exc = _loggable_group(exc)
    error = database_error(exc)
    if error is None:
        return exc
    if error is exc:
        message = database_failure(exc)
    else:  # raised while handling a database error: its own text stays, unless it quotes it
        text = str(exc)
        quoted = str(error)
        if "[SQL:" in text or (quoted and quoted in text):
            text = "(its text quotes the database error)"
        message = f"{type(exc).__qualname__}: {text} (after {database_failure(error)})"
    stand_in = LoggedDatabaseError(message).with_traceback(exc.__traceback__)
    stand_in.__suppress_context__ = True
    return stand_in


def _loggable_group(group: BaseExceptionGroup[Any]) -> BaseExceptionGroup[Any]:
    """`group` with each exception `loggable`; its class, message, traceback, chain and notes."""
    parts = [loggable(each) for each in group.exceptions]
    if all(part is each for part, each in zip(parts, group.exceptions, strict=True)):
        return group
    kept = group.derive(parts).with_traceback(group.__traceback__)
    kept.__cause__, kept.__context__ = group.__cause__, group.__context__
    kept.__suppress_context__ = group.__suppress_context__
    if hasattr(group, "__notes__"):
        kept.__notes__ = list(group.__notes__)
    return kept


def envelope(parts: ErrorParts) -> dict[str, Any]:
    """The envelope plus `retry_after` for REST's `Retry-After`: a tool result has no headers."""
    body = error_body(parts.code, parts.message, [dict(detail) for detail in parts.details])
    retry_after = parts.headers.get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        body["error"]["retry_after"] = int(retry_after)
    return body
