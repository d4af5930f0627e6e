"""App-level parts of the OpenAPI document: tag descriptions, licence, contact, and the
`X-Request-ID` header on every response."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from backend.api.responses import EXAMPLES, HEADER_REF, HEADERS, RATE_LIMIT_HEADERS

# Each tag's description, in the document's order (a router module may add its own: `TAGS`).
TAGS: dict[str, str] = {
    "tasks": "The caller's tasks: list (filters, sorting, keyset pages), create, "
    "read, replace, change, complete, delete, bulk operations, statistics. Every route "
    "needs a bearer token; another user's task is a 404 like one that does not exist. "
    "Writes are rate-limited per user, take `If-Match` (one task) or `Idempotency-Key` "
    "(creating routes), and one-task answers carry an `ETag`.",
    "changes": "The change feed: every change to the caller's tasks in commit order, "
    "deletions included, for clients that keep a copy in sync (poll from a listing's "
    "`meta.changes_cursor`). The same changes are delivered as events by the worker "
    "(specs/events.md).",
    "activity": "What happened, newest first: in the caller's space and every list "
    "shared with it (`/api/activity`), or in one list (`/api/lists/{list_id}/activity`, "
    "viewer or above). Each item says who did it and, for an update, each changed field's "
    "old and new value. The same record as the change feed and the events.",
    "user-tasks": "The paths of the published hackathon contract, `/api/{user_id}/tasks...`, "
    "for frontends written against it. Each answers exactly like its `/api/tasks...` "
    "twin when `user_id` is the token's subject (`sub`), and like a task that does not "
    "exist (404 `NOT_FOUND`, `Task not found`) when it is not: the user id in the path "
    "selects nothing, the token does. New code should call `/api/tasks`.",
    "lists": "The caller's lists: list (with task counts), create, read, replace, "
    "rename, recolour, reorder, delete (with their tasks). A task joins a list with "
    "`list_id`; `GET /api/tasks?list_id=` reads a list's tasks. Names are unique per user, "
    "ignoring case. Another user's list is a 404 like one that does not exist.",
    "members": "Who shares a list, and how far: its owner and members with their roles "
    "(`viewer` < `commenter` < `editor` < `admin` < `owner`), a member's role changed or "
    "the member removed (or leaving), the list transferred to a member. Anyone who is not "
    "a member gets the 404 a missing list gets; a member below the role an action needs, "
    "403 `FORBIDDEN`.",
    "invitations": "Invitations to a shared list: created, listed and revoked by its "
    "admins and owner; accepted with their token by any signed-in account. A token is "
    "shown once, used once, expires, and is stored hashed; whatever makes one unusable "
    "is the same 404.",
    "calendar": "Calendar feeds: subscribe to your tasks in Google Calendar, Outlook or "
    "Apple Calendar. Create a feed (all your tasks with a due date, or one list) and give "
    "its URL to the calendar app; the URL's token is the credential, shown once, stored "
    "hashed, rotated or revoked here. The feed itself is iCalendar (`text/calendar`).",
    "user-lists": "The `/api/lists...` routes at `/api/{user_id}/lists...`, as the "
    "`user-tasks` paths are: the same answer when `user_id` is the token's subject, a list "
    "that does not exist (404 `List not found`) when it is not.",
    "chat": "Chat with your tasks (specs/chat.md): `POST /api/chat` runs the task "
    "agent (an OpenAI-compatible model configured with `CHAT_BASE_URL`, `CHAT_MODEL` and "
    "`CHAT_API_KEY`) on your message, with the MCP tools as its tools, and stores the turn; "
    "`Accept: text/event-stream` streams it. Conversations and their messages are yours "
    "alone: list, read, delete. Without a configured model, chat answers 503 "
    "`CHAT_NOT_CONFIGURED` and the rest of the API is unaffected.",
    "auth": "The built-in issuer: sign up, sign in (JSON, or the OAuth2 password "
    "flow Swagger's Authorize button uses), the signed-in account, sign out everywhere, "
    "delete the account. Tokens from a trusted external issuer (shared secret or JWKS) "
    "work on every route without these.",
    "health": "Probes for load balancers and orchestrators; no token. `/health`: "
    "the process answers. `/health/ready`: the database answers and its migrations are "
    "current.",
}


def tags(more: Mapping[str, str]) -> list[dict[str, Any]]:
    """`TAGS`, then each tag a router module describes itself (its `TAGS`: a new resource's)."""
    extra = {name: text for name, text in more.items() if name not in TAGS}
    return [{"name": n, "description": d} for n, d in {**TAGS, **extra}.items()]


LICENSE = {"name": "MIT", "identifier": "MIT"}
CONTACT = {"name": "The Task API contributors"}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add what responses refer to (`components/headers`, `components/examples`) and
    `X-Request-ID` on every response, as the middleware does. An event stream with `itemSchema`
    keeps no `schema`: FastAPI's default would be read as the whole stream's (OpenAPI 3.2)."""
    request_id = {"$ref": HEADER_REF + "X-Request-ID"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            # A counted request carries its count whatever its status (a 422 too).
            counted = RATE_LIMIT_HEADERS if "429" in responses else ()
            for response in responses.values():
                for media in response.get("content", {}).values():
                    if "itemSchema" in media:
                        media.pop("schema", None)
                declared = response.setdefault("headers", {})
                declared["X-Request-ID"] = request_id
                for name in counted:
                    declared.setdefault(name, {"$ref": HEADER_REF + name})
    components = document.setdefault("components", {})
    components["headers"] = copy.deepcopy(HEADERS)
    components["examples"] = {name: e.example() for name, e in sorted(EXAMPLES.items())}
    return document


def install(app: FastAPI) -> None:
    """Build the document as FastAPI does (once, cached on the app), then add what is the
    same for every operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
