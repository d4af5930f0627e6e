"""The domain's error family: what went wrong, as plain data (status, code, message, headers).

Services raise `AppError` subclasses. This module imports no web framework, so a service, the
worker or a script can raise them without loading FastAPI. Any exception's envelope parts:
`backend/error_mapping.py` (every transport); the HTTP handlers: `backend/api/errors.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self


class AppError(Exception):
    status_code = 500
    code = "INTERNAL_ERROR"
    message = "Internal server error"
    headers: ClassVar[Mapping[str, str] | None] = None
    # The `type` of the one detail of an error about a request field (`at`).
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
        # Per-response headers on top of the class's own (e.g. rate-limit state).
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
    """A documented limit (lists per user, tasks per list, subtasks per task) would be passed;
    nothing was changed."""

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


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    message = "The service is temporarily unavailable; retry shortly"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "1"}


class ChatNotConfigured(AppError):
    """No chat provider is configured (CHAT_BASE_URL, CHAT_MODEL): chat is off, the rest of
    the API is not. Not worth a retry until the deployment changes."""

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
    """The provider answered, but with something the agent cannot use (malformed tool
    arguments, a tool that does not exist, an error the retry will not fix)."""

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
