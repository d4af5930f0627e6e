"""The OpenAPI document's responses: error bodies with an example per status and code, and
every header a response carries, so Swagger and client generators see what the API really
answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.api.pagination import invalid_cursor
from backend.errors import (
    AppError,
    ChatNotConfigured,
    ChatProviderError,
    ChatProviderTimeout,
    ChatProviderUnavailable,
    ChatTooManyTurns,
    Conflict,
    CursorExpired,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    InvalidRequest,
    LimitReached,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)
from backend.models import ErrorEnvelope
from backend.services.sharing.lists import name_taken

# -- headers --------------------------------------------------------------------------------


def _header(description: str, example: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": {"type": "string", "examples": [example]},
    }


HEADERS: dict[str, dict[str, Any]] = {
    "ETag": _header(
        "The task's strong entity tag; it changes with every change of the task and of its "
        "subtask counts. Send it back in `If-Match` / `If-None-Match`.",
        '"42-3"',
        required=True,
    ),
    "Location": _header("The new task's path.", "/api/tasks/42", required=True),
    "Last-Modified": _header(
        "When the newest of the feed's tasks last changed (informational: a task deleted or "
        "leaving the window changes the `ETag`, not this; revalidate with `If-None-Match`).",
        "Thu, 26 Nov 2026 12:00:00 GMT",
    ),
    "Link": _header(
        'The next page (`rel="next"`): this path and query with `cursor` replaced; absent '
        "on the last page.",
        '</api/tasks?limit=50&cursor=PNnyaoPOtYIJ...>; rel="next"',
    ),
    "Idempotent-Replayed": _header(
        "`true` when this is the recorded response to an earlier request with the same "
        "`Idempotency-Key`.",
        "true",
    ),
    "RateLimit": _header(
        "Per policy: requests remaining (`r`) and seconds until the window resets (`t`). "
        "Sent when rate limits are enabled.",
        '"task-writes";r=119;t=42',
    ),
    "RateLimit-Policy": _header(
        "Per policy: the limit (`q`) and the window in seconds (`w`). Sent when rate limits "
        "are enabled.",
        '"task-writes";q=120;w=60',
    ),
    "Retry-After": _header("Seconds to wait before retrying.", "1", required=True),
    "WWW-Authenticate": _header("Always `Bearer`.", "Bearer", required=True),
    "X-Request-ID": _header(
        "The request's id: the caller's `X-Request-ID` if it matched "
        "`^[A-Za-z0-9._:-]{1,128}$`, otherwise a new one. Every server log line of the "
        "request carries it.",
        "0f8fad5bd9cb469fa16570867728950e",
        required=True,
    ),
}
HEADER_REF = "#/components/headers/"
EXAMPLE_REF = "#/components/examples/"
# What a request counted against a rate limit carries, whatever its answer.
RATE_LIMIT_HEADERS = ("RateLimit", "RateLimit-Policy")


def headers(*names: str, optional: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """References to the document's `components/headers` (`HEADERS`, added by
    `backend.api.openapi`); those in `optional` are spelled out as not always sent."""
    found: dict[str, dict[str, Any]] = {name: {"$ref": HEADER_REF + name} for name in names}
    for name in optional:
        found[name] = {**HEADERS[name], "required": False}
    return found


def ok(status: int, description: str, *header_names: str) -> dict[int | str, dict[str, Any]]:
    """A success response's description and headers (its schema comes from `response_model`)."""
    return {status: {"description": description, "headers": headers(*header_names)}}


def rate_limited(status: int, description: str, *header_names: str) -> dict[int | str, Any]:
    """`ok(...)` for a route counted against a rate limit: adds `RateLimit`/`RateLimit-Policy`."""
    return ok(status, description, *header_names, *RATE_LIMIT_HEADERS)


# -- errors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorExample:
    """One error body a route may answer, shown in the document under its status."""

    status: int
    name: str
    summary: str
    code: str
    message: str
    details: tuple[Mapping[str, str | None], ...] = field(default=())

    def __post_init__(self) -> None:
        if EXAMPLES.setdefault(self.name, self) is not self:
            raise ValueError(f"two error examples are named {self.name!r}")

    @classmethod
    def of(cls, name: str, summary: str, error: AppError) -> ErrorExample:
        """The example of what raising `error` answers, so the example and the service's error
        are written once: `ErrorExample.of("x_not_found", "No such x", NotFound("X not found"))`."""
        details = tuple(dict(detail) for detail in error.details)
        return cls(error.status_code, name, summary, error.code, error.message, details)

    def example(self) -> dict[str, Any]:
        """The Example object, for the document's `components/examples`."""
        body = {"code": self.code, "message": self.message, "details": list(self.details)}
        return {"summary": self.summary, "value": {"error": body}}


# Every ErrorExample by name: the document's `components/examples` (`backend.api.openapi`).
EXAMPLES: dict[str, ErrorExample] = {}


BAD_REQUEST = ErrorExample(
    400, "undecodable", "Undecodable body", "BAD_REQUEST", "There was an error parsing the body"
)
MISSING_TOKEN = ErrorExample.of(
    "missing_token", "No bearer token", Unauthorized("Missing bearer token")
)
INVALID_TOKEN = ErrorExample.of(
    "invalid_token", "Malformed, forged or expired token", Unauthorized("Invalid or expired token")
)
REVOKED_TOKEN = ErrorExample.of(
    "revoked_token", "Signed out everywhere since", Unauthorized("This token was revoked")
)
BAD_CREDENTIALS = ErrorExample.of(
    "bad_credentials", "Wrong email or password", Unauthorized("Invalid email or password")
)
TASK_NOT_FOUND = ErrorExample.of(
    "task_not_found", "No such task of yours", NotFound("Task not found")
)
BULK_TASK_NOT_FOUND = ErrorExample.of(
    "bulk_task_not_found",
    "An operation names no task of yours; nothing was changed",
    NotFound.at("body.operations.0", "Task not found"),
)
LIST_NOT_FOUND = ErrorExample.of(
    "list_not_found", "No such list of yours", NotFound("List not found")
)
LIST_REFERENCE_NOT_FOUND = ErrorExample.of(
    "list_reference_not_found",
    "The list named is none of yours; nothing was changed",
    NotFound.at("body.list_id", "List not found"),
)
PARENT_NOT_FOUND = ErrorExample.of(
    "parent_not_found",
    "The parent (or after_id / before_id) named is none of your tasks; nothing was changed",
    NotFound.at("body.parent_id", "Task not found"),
)
SUBTASK_CYCLE = ErrorExample.of(
    "subtask_cycle",
    "A task moved under itself or one of its subtasks (or deeper than three levels)",
    InvalidRequest.at(
        "body.parent_id", "A task cannot be moved under itself or one of its subtasks"
    ),
)
LIST_FULL = ErrorExample.of(
    "limit_reached",
    "A documented limit would be passed (tasks per list, subtasks per task, lists per user)",
    LimitReached.at("body.list_id", "A list holds at most 10000 tasks"),
)
TOO_MANY_LISTS = ErrorExample.of(
    "too_many_lists",
    "You have as many lists as there can be",
    LimitReached("You have 100 lists, the most there can be (100)"),
)
CALENDAR_FEED_NOT_FOUND = ErrorExample.of(
    "calendar_feed_not_found",
    "No such calendar feed: unknown, malformed, revoked or rotated token, another's feed, or "
    "a list feed whose list its creator can no longer read (one answer for every reason)",
    NotFound("Calendar feed not found"),
)
FEEDS_FULL = ErrorExample.of(
    "calendar_feeds_full",
    "You have as many calendar feeds as there can be",
    LimitReached("An account has at most 20 calendar feeds"),
)
LIST_NAME_TAKEN = ErrorExample.of(
    "list_name_taken", "You have a list by that name (names ignore case)", name_taken("Groceries")
)
LIST_PRECONDITION = ErrorExample.of(
    "list_precondition_failed",
    "If-Match names no current ETag of the list; nothing was changed",
    PreconditionFailed("The list has changed since it was read (If-Match does not match its ETag)"),
)
FORBIDDEN = ErrorExample.of(
    "forbidden",
    "A member of the task's list below the role the request needs",
    Forbidden("Your role in this list (viewer) does not allow this; it needs commenter"),
)
MEMBERS_FULL = ErrorExample.of(
    "list_members_full",
    "The list has as many members and pending invitations as there can be",
    LimitReached("A list has at most 100 members and pending invitations together"),
)
ONLY_OWNER_ADMINS = ErrorExample.of(
    "only_owner_admins",
    "An admin tried to make, demote or remove an admin (or invite one): the owner's right",
    Forbidden("Only the list's owner may make, demote or remove an admin"),
)
MEMBER_NOT_FOUND = ErrorExample.of(
    "member_not_found", "The user named is not a member of the list", NotFound("Member not found")
)
INVITATION_NOT_FOUND = ErrorExample.of(
    "invitation_not_found",
    "No such invitation: unknown, expired, revoked, used, addressed to another email, or "
    "presented by the list's owner (one answer for every reason)",
    NotFound("Invitation not found"),
)
OWNER_FIXED = ErrorExample.of(
    "owner_fixed",
    "The owner's role cannot be changed nor the owner removed; the owner transfers the list",
    Conflict(
        "The owner's role cannot be changed, nor the owner removed; the owner transfers the list "
        "(POST /api/lists/{list_id}/transfer)"
    ),
)
OWNER_CANNOT_LEAVE = ErrorExample.of(
    "owner_cannot_leave",
    "The owner cannot leave its list (it transfers it first)",
    Conflict(
        "The owner cannot leave the list; transfer it to a member first "
        "(POST /api/lists/{list_id}/transfer)"
    ),
)
HEIR_NAME_TAKEN = ErrorExample.of(
    "new_owner_name_taken",
    "The new owner has a list by the same name; nothing was changed",
    Conflict.at(
        "body.user_id",
        'The new owner has a list named "Groceries" already (names ignore case); it must rename '
        "or delete it first",
    ),
)
HEIR_TOO_MANY_LISTS = ErrorExample.of(
    "new_owner_too_many_lists",
    "The new owner has as many lists as there can be",
    LimitReached.at("body.user_id", "The new owner has 100 lists, the most there can be (100)"),
)
CONFLICT = ErrorExample.of("conflict", "A constraint the validation did not catch", Conflict())
EMAIL_TAKEN = ErrorExample.of(
    "email_taken",
    "An account with this email exists",
    Conflict("An account with this email already exists"),
)
PRECONDITION = ErrorExample.of(
    "precondition_failed",
    "If-Match names no current ETag; nothing was changed",
    PreconditionFailed(),
)
TOO_LARGE = ErrorExample.of(
    "payload_too_large",
    "Body over MAX_BODY_BYTES",
    PayloadTooLarge("Request body is larger than 65536 bytes"),
)
VALIDATION = ErrorExample.of(
    "validation_error",
    "Invalid input, one detail per problem",
    InvalidRequest(
        details=[
            {
                "field": "body.title",
                "message": "String should have at least 1 character",
                "type": "string_too_short",
            }
        ]
    ),
)
INVALID_CURSOR = ErrorExample.of(
    "invalid_cursor", "A cursor that is not this listing's next_cursor, unchanged", invalid_cursor()
)
INVALID_CHANGES_CURSOR = ErrorExample.of(
    "invalid_changes_cursor",
    "Not a cursor of your change feed (edited, another user's, or a listing's next_cursor)",
    invalid_cursor(changes=True),
)
CURSOR_EXPIRED = ErrorExample.of(
    "cursor_expired",
    "Changes after this cursor may have been pruned: list the tasks again",
    CursorExpired(),
)
KEY_MISMATCH = ErrorExample.of(
    "idempotency_key_mismatch",
    "Idempotency-Key already used with another body or route; nothing was changed",
    IdempotencyKeyMismatch(),
)
RATE_LIMIT_EXCEEDED = ErrorExample.of("rate_limited", "Over a rate limit", RateLimited())
UNAVAILABLE = ErrorExample.of(
    "service_unavailable",
    "Database unreachable or busy, or the issuer's keys never fetched",
    ServiceUnavailable(),
)
NOT_READY = ErrorExample.of(
    "migrations_pending",
    "Migrations are pending",
    ServiceUnavailable(
        "Database migrations are pending",
        details=[{"field": None, "message": "pending: 0008_example", "type": "migration"}],
    ),
)
DATABASE_UNREACHABLE = ErrorExample.of(
    "database_unreachable",
    "The database does not answer",
    ServiceUnavailable("Database unreachable"),
)
KEY_IN_USE = ErrorExample.of(
    "idempotency_key_in_use",
    "The first chat turn with this Idempotency-Key is still running: retry after Retry-After",
    IdempotencyKeyInUse(),
)
CONVERSATION_NOT_FOUND = ErrorExample.of(
    "conversation_not_found",
    "No such conversation of yours (another user's looks the same)",
    NotFound("Conversation not found"),
)
CHATKIT_ITEM_NOT_FOUND = ErrorExample.of(
    "chatkit_item_not_found",
    "No such item in that thread of yours (another user's looks the same)",
    NotFound("Item not found"),
)
CHAT_NOT_CONFIGURED = ErrorExample.of(
    "chat_not_configured", "No chat model is configured on this server", ChatNotConfigured()
)
CHAT_PROVIDER_UNAVAILABLE = ErrorExample.of(
    "chat_provider_unavailable",
    "The model's provider is down, overloaded or rate-limiting this server",
    ChatProviderUnavailable(),
)
CHAT_PROVIDER_ERROR = ErrorExample.of(
    "chat_provider_error",
    "The model answered something unusable (an unknown tool, a refusal of the request)",
    ChatProviderError(),
)
CHAT_TOO_MANY_TURNS = ErrorExample.of(
    "chat_too_many_turns", "The model kept calling tools past CHAT_MAX_TURNS", ChatTooManyTurns()
)
CHAT_PROVIDER_TIMEOUT = ErrorExample.of(
    "chat_provider_timeout",
    "The model took longer than CHAT_TIMEOUT_SECONDS",
    ChatProviderTimeout(),
)

# Each status's examples unless a route names its own (`errors(..., examples=...)`).
_DEFAULT_EXAMPLES: dict[int, tuple[ErrorExample, ...]] = {
    400: (BAD_REQUEST,),
    401: (MISSING_TOKEN, INVALID_TOKEN, REVOKED_TOKEN),
    403: (FORBIDDEN,),
    404: (TASK_NOT_FOUND,),
    409: (CONFLICT,),
    410: (CURSOR_EXPIRED,),
    412: (PRECONDITION,),
    413: (TOO_LARGE,),
    422: (VALIDATION,),
    429: (RATE_LIMIT_EXCEEDED,),
    502: (CHAT_PROVIDER_ERROR,),
    503: (UNAVAILABLE,),
    504: (CHAT_PROVIDER_TIMEOUT,),
}

_DESCRIPTIONS = {
    400: "The body is not decodable as the declared content type (`BAD_REQUEST`).",
    401: "Missing, malformed, forged, expired or revoked bearer token (`UNAUTHORIZED`).",
    403: "A member of the list whose role is below what the action needs (`FORBIDDEN`); "
    "nothing was changed. Anyone who is not a member gets the 404 a missing resource gets.",
    404: "No such task for this user (`NOT_FOUND`); another user's task looks the same.",
    408: "The body stopped arriving (`REQUEST_TIMEOUT`); nothing was kept. Send it again.",
    409: "Conflicts with existing data (`CONFLICT`).",
    410: "The changes cursor is older than the change feed's retention (`CURSOR_EXPIRED`): "
    "changes after it may be gone. List the tasks again and poll from that listing's "
    "`meta.changes_cursor`.",
    412: "`If-Match` names no current `ETag` of the task: it changed since it was read "
    "(`PRECONDITION_FAILED`); nothing was changed.",
    413: "Request body larger than the configured limit (`PAYLOAD_TOO_LARGE`).",
    429: "Too many requests (`RATE_LIMITED`); retry after `Retry-After` seconds. "
    "`RateLimit` / `RateLimit-Policy` describe the limits.",
    422: "Invalid input (`VALIDATION_ERROR`); `details` lists each field. On a POST, "
    "an `Idempotency-Key` already used with a different body or route is "
    "`IDEMPOTENCY_KEY_MISMATCH`.",
    502: "The chat model answered something the agent could not use (`CHAT_PROVIDER_ERROR`, "
    "`CHAT_TOO_MANY_TURNS`); `details` name the conversation and the tool calls that "
    "committed before it.",
    503: "The database is unreachable, or the token issuer's keys (JWKS) have never been "
    "fetched (`SERVICE_UNAVAILABLE`); retry after `Retry-After`.",
    504: "The chat model took too long (`CHAT_PROVIDER_TIMEOUT`); retry after `Retry-After`. "
    "`details` name the conversation and the tool calls that committed before it.",
}

# Headers each error status carries (`X-Request-ID` is added to every response in one place).
_ERROR_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: headers("WWW-Authenticate"),
    409: headers(optional=["Retry-After"]),
    429: headers("Retry-After", *RATE_LIMIT_HEADERS),
    503: headers("Retry-After"),
    504: headers("Retry-After"),
}


def errors(
    *statuses: int,
    examples: Iterable[ErrorExample] = (),
    descriptions: Mapping[int, str] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """A route's error responses: the envelope, headers and example bodies of each status;
    `examples` and `descriptions` replace the defaults of their statuses."""
    chosen: dict[int, list[ErrorExample]] = {}
    for example in examples:
        chosen.setdefault(example.status, []).append(example)
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        shown = chosen.get(status) or _DEFAULT_EXAMPLES[status]
        response: dict[str, Any] = {
            "model": ErrorEnvelope,
            "description": (descriptions or {}).get(status, _DESCRIPTIONS[status]),
            "content": {
                "application/json": {
                    "examples": {e.name: {"$ref": EXAMPLE_REF + e.name} for e in shown}
                }
            },
        }
        if status in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[status]
        documented[status] = response
    return documented


def not_modified() -> dict[int | str, dict[str, Any]]:
    return {
        304: {
            "description": "`If-None-Match` names the current `ETag`: not modified, no body.",
            "headers": headers("ETag"),
        }
    }
