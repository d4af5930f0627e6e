"""`GET /api/changes/stream`: the change feed live, as Server-Sent Events (specs/events.md, "The
live stream"), each event's `id:` the feed cursor after it. Async: an idle stream holds no thread
and no connection; `LiveFeeds` reads, `ChangeStream` (`backend/api/live.py`) writes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from backend.api import deps
from backend.api.actions import feeds
from backend.api.deps import Door, DoorRoute, SettingsDep, uses
from backend.api.live import ChangeStream
from backend.api.pagination import MAX_CURSOR_LENGTH, decode_changes_cursor
from backend.api.responses import CURSOR_EXPIRED, INVALID_CHANGES_CURSOR, VALIDATION, errors, ok
from backend.auth.tokens import TokenClaims
from backend.errors import Unauthorized
from backend.models import StreamTicketPublic
from backend.models.envelopes import StreamTicketEnvelope
from backend.models.references import Action
from backend.services.accounts.stream_tickets import StreamTickets
from backend.services.live import LiveFeeds
from backend.services.unit_of_work import UnitOfWork

ERROR_ENVELOPE = "#/components/schemas/ErrorEnvelope"
# Whatever was wrong with a ticket (unknown, used, expired, its account gone): one answer.
BAD_TICKET = "Invalid, used or expired stream ticket: get a new one"

router = APIRouter(prefix="/api/changes", tags=["changes"], route_class=DoorRoute)

# One event as an SSE parser hands it over (OpenAPI 3.2's `itemSchema`): schema-driven
# clients and tests/test_fuzz.py validate every event with it (`retry:` and heartbeats are none).
STREAM_EVENT = {
    "type": "object",
    "required": ["data", "id"],
    "properties": {
        "id": {
            "type": "string",
            "description": "The feed's cursor after this change: `Last-Event-ID` (or `cursor`) "
            "resumes after it.",
        },
        "event": {
            "type": "string",
            "enum": ["message"],
            "description": "No `event:` line is sent: every event is the default `message` "
            "(`EventSource.onmessage`); what changed is `data.type`.",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/TaskChange"},
            "description": "The change's JSON, as `GET /api/tasks/changes` gives it in `data`.",
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}

EVENT_STREAM = {
    "description": "The stream: a `retry:` hint, then one event per change (`id:` the feed "
    "cursor after it, `data:` the change's JSON, as `GET /api/tasks/changes` gives it), and "
    "a `: heartbeat` comment when idle. It ends when the token expires or is revoked, the "
    "account is deleted, the server shuts down or after `STREAM_MAX_SECONDS`: reconnect with "
    "`Last-Event-ID`.",
    "content": {"text/event-stream": {"itemSchema": STREAM_EVENT}},
}


def _signed_in(work: UnitOfWork) -> TokenClaims:
    claims = work.claims
    if claims is None:  # a signed-in caller's door always has them
        raise RuntimeError("a signed-in caller's door has its token's claims")
    return claims


async def stream_claims(
    request: Request,
    response: Response,
    ticket: Annotated[
        str | None,
        Query(
            max_length=256,
            description="A one-time ticket (`POST /api/changes/stream/tickets`), for a "
            "browser's `EventSource`, which cannot send the bearer header. Used up by any "
            "attempt; an unknown, used or expired one is 401.",
        ),
    ] = None,
) -> TokenClaims:
    """The caller: by the ticket when one is given (used up here), else the bearer token
    (the door's own check; its unit of work, never entered, is dropped)."""
    if ticket is None:
        return _signed_in(await deps.door(request, response))
    live: LiveFeeds = request.app.state.live
    claims = await live.use_ticket(ticket)
    if claims is None:
        raise Unauthorized(BAD_TICKET)
    request.state.user_id = claims.subject  # for the access log (never the ticket)
    return claims


@router.post(
    "/stream/tickets",
    operation_id="createStreamTicket",
    status_code=201,
    response_model=StreamTicketEnvelope,
    summary="Get a ticket to open your live change stream",
    responses=ok(201, "The ticket: use it once, within a minute.") | errors(401, 429, 503),
    description="For a browser's `EventSource`, which cannot send the bearer header: pass the "
    "ticket as `?ticket=` to `GET /api/changes/stream`. Valid once, for "
    "`STREAM_TICKET_SECONDS` (60 by default); the long-lived token never goes into a URL. "
    "The stream ends when the token it was made with expires or is revoked.",
)
def create_stream_ticket(
    door: Door, stream_tickets: Annotated[StreamTickets, uses(StreamTickets)], settings: SettingsDep
) -> StreamTicketEnvelope:
    seconds = settings.stream_ticket_seconds
    ticket, expires_at = stream_tickets.issue(_signed_in(door), seconds)
    return StreamTicketEnvelope(data=StreamTicketPublic(ticket=ticket, expires_at=expires_at))


_FEED_EXAMPLES = (CURSOR_EXPIRED, VALIDATION, INVALID_CHANGES_CURSOR)


def _as_json(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """The error responses of a route whose success is an event stream: still JSON (FastAPI
    would file a response's `model` under the route's own media type)."""
    for response in responses.values():
        response.pop("model", None)
        response["content"]["application/json"]["schema"] = {"$ref": ERROR_ENVELOPE}
    return responses


@router.get(
    "/stream",
    openapi_extra=feeds(Action.LIST_READ),
    operation_id="streamChanges",
    status_code=200,
    summary="Follow your task changes live",
    response_class=ChangeStream,
    responses={
        200: EVENT_STREAM,
        **_as_json(errors(401, 410, 422, 429, 503, examples=_FEED_EXAMPLES)),
    },
    description="Server-Sent Events: every change of your change feed as it commits, your "
    "own and your shared lists' (`access.granted`, `access.ended` included). Resume with "
    "`Last-Event-ID` (or `cursor`): every change after it, none twice; a cursor older than "
    "the feed keeps is 410 `CURSOR_EXPIRED`, as for the feed. Without one the stream starts "
    "now. A bearer token, or for a browser's `EventSource` a one-time `ticket` "
    "(`POST /api/changes/stream/tickets`).",
)
async def stream_changes(
    request: Request,
    settings: SettingsDep,
    claims: Annotated[TokenClaims, Depends(stream_claims)],
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="Where to resume: an event's `id`, a feed's `next_cursor` or a "
            "listing's `changes_cursor`. `Last-Event-ID` wins when both are sent.",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=MAX_CURSOR_LENGTH,
            description="The last event's `id` (sent by `EventSource` when it reconnects).",
        ),
    ] = None,
) -> ChangeStream:
    given = last_event_id or cursor
    after = (
        decode_changes_cursor(settings.signing_secret(), claims.subject, given) if given else None
    )
    live: LiveFeeds = request.app.state.live
    listener = live.admit(claims)
    try:
        first = await live.start(claims, after)
    except Unauthorized as refused:
        live.leave(listener)
        if "ticket" in request.query_params:
            # The ticket's token revoked since: a bad ticket's answer like any other's.
            raise Unauthorized(BAD_TICKET) from refused
        raise
    except BaseException:
        live.leave(listener)
        raise
    return ChangeStream(live, settings, claims, listener, first)
