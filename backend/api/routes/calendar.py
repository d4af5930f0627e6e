"""Calendar feeds (specs/api-contract.md, "Calendar feeds"): managed under `/api/calendar-feeds`,
fetched at `/api/calendar/{token}.ics` with the token as the credential (`FeedDoor`) in one
message, its `304` decided from the tasks read (`calendar_ics.tag`) before any body is made."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from backend.api.conditional import IfNoneMatch, none_match
from backend.api.deps import Door, DoorRoute, FeedDoor, feed_door, uses
from backend.api.responses import (
    CALENDAR_FEED_NOT_FOUND,
    FEEDS_FULL,
    LIST_NOT_FOUND,
    RATE_LIMIT_HEADERS,
    VALIDATION,
    errors,
    headers,
    not_modified,
    rate_limited,
)
from backend.errors import NotFound
from backend.models.calendar_feed import (
    CalendarFeed,
    CalendarFeedCreate,
    CalendarFeedCreated,
    feed_url,
)
from backend.models.common import DecimalDigits
from backend.models.envelopes import CalendarFeedCreatedEnvelope, CalendarFeedsEnvelope
from backend.models.references import Reference
from backend.models.types import TASK_ID_MAX
from backend.services.calendar import calendar_ics
from backend.services.calendar.calendar_feeds import (
    CalendarFeedReader,
    CalendarFeedService,
    NewFeed,
)

router = APIRouter(prefix="/api", tags=["calendar"], route_class=DoorRoute)

FeedId = Annotated[
    int,
    Path(ge=1, le=TASK_ID_MAX, description="The feed's id.", examples=[4]),
    DecimalDigits,
    Reference(CalendarFeed.__tablename__, None),  # the caller's own feed
]
FeedToken = Annotated[
    str,
    Path(
        description="The feed's secret token, from its URL (43 characters of `A-Z a-z 0-9 _ -`). "
        "Any other value, an unknown, revoked or rotated token: the same 404.",
        examples=["q3V0aG9yaXR5LXRva2VuLWV4YW1wbGUtMzItYnl0ZXM"],
    ),
]
CALENDAR_MEDIA_TYPE = "text/calendar; charset=utf-8"
# The feed's name in a calendar app for an `all` feed (a `list` feed: the list's name).
ALL_TASKS_NAME = "Tasks"
NOT_ICS = "A calendar feed's address ends in .ics"


def _created(door: Door, request: Request, new: NewFeed) -> CalendarFeedCreatedEnvelope:
    public = door.settings.public_url
    url = feed_url(new.token, str(public) if public else str(request.base_url))
    return CalendarFeedCreatedEnvelope(data=CalendarFeedCreated(**new.feed.model_dump(), url=url))


@router.post(
    "/calendar-feeds",
    operation_id="createCalendarFeed",
    status_code=status.HTTP_201_CREATED,
    response_model=CalendarFeedCreatedEnvelope,
    summary="Create a calendar feed",
    description="A feed of your tasks with a due date (`scope: all`, the shared lists you "
    "can read included) or of one list you can read (`scope: list`), as events (`kind: "
    "events`) or todos. The answer's `url`, with its secret token, is shown only here: "
    "subscribe to it in a calendar app. At most 20 feeds per account.",
    responses=rate_limited(201, "Created, with its URL.")
    | errors(400, 401, 404, 413, 422, 429, 503, examples=(LIST_NOT_FOUND, VALIDATION, FEEDS_FULL)),
)
def create_calendar_feed(
    door: Door,
    calendar_feeds: Annotated[CalendarFeedService, uses(CalendarFeedService)],
    request: Request,
    data: CalendarFeedCreate,
) -> CalendarFeedCreatedEnvelope:
    return _created(door, request, calendar_feeds.create(data))


@router.get(
    "/calendar-feeds",
    operation_id="listCalendarFeeds",
    response_model=CalendarFeedsEnvelope,
    summary="List your calendar feeds",
    description="Oldest first; never a URL (its token is shown only when made).",
    responses=errors(401, 503),
)
def list_calendar_feeds(
    calendar_feeds: Annotated[CalendarFeedService, uses(CalendarFeedService)],
) -> CalendarFeedsEnvelope:
    return CalendarFeedsEnvelope(data=list(calendar_feeds.mine()))


@router.post(
    "/calendar-feeds/{feed_id}/rotate",
    operation_id="rotateCalendarFeed",
    response_model=CalendarFeedCreatedEnvelope,
    summary="Give a calendar feed a new URL",
    description="A new token: the old URL answers 404 from now on. Subscribe to the new one.",
    responses=rate_limited(200, "The feed, with its new URL.")
    | errors(401, 404, 422, 429, 503, examples=(CALENDAR_FEED_NOT_FOUND,)),
)
def rotate_calendar_feed(
    door: Door,
    calendar_feeds: Annotated[CalendarFeedService, uses(CalendarFeedService)],
    request: Request,
    feed_id: FeedId,
) -> CalendarFeedCreatedEnvelope:
    return _created(door, request, calendar_feeds.rotate(feed_id))


@router.delete(
    "/calendar-feeds/{feed_id}",
    operation_id="revokeCalendarFeed",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a calendar feed",
    description="Its URL answers 404 from now on.",
    responses=rate_limited(204, "Revoked.")
    | errors(401, 404, 422, 429, 503, examples=(CALENDAR_FEED_NOT_FOUND,)),
)
def revoke_calendar_feed(
    calendar_feeds: Annotated[CalendarFeedService, uses(CalendarFeedService)], feed_id: FeedId
) -> None:
    calendar_feeds.revoke(feed_id)


@router.get(
    "/calendar/{token}.ics",
    operation_id="getCalendarFeed",
    name="calendar_feed",
    response_class=Response,
    summary="A calendar feed (iCalendar)",
    description="For calendar apps: no `Authorization` header, the token is the credential. "
    "RFC 5545 text: your tasks due from 60 days ago to a year ahead (at most 2000, the "
    "soonest), as the feed's creator may read them at this moment, with the creator's own "
    "reminders. `ETag`/`If-None-Match` answer 304 when nothing changed. Each live token has "
    "its own rate limit (`RATE_LIMIT_CALENDAR_FEED_PER_HOUR`); every 404 is the same answer, "
    "headers included (no `RateLimit` headers).",
    responses={
        200: {
            "description": "The feed.",
            "content": {"text/calendar": {"schema": {"type": "string"}}},
            "headers": headers("ETag", "Last-Modified", *RATE_LIMIT_HEADERS),
        },
        **not_modified(),
        **errors(404, 422, 429, 503, examples=(CALENDAR_FEED_NOT_FOUND,)),
    },
)
def calendar_feed(
    door: FeedDoor,
    feed_reader: Annotated[CalendarFeedReader, uses(CalendarFeedReader, feed_door)],
    token: FeedToken,
    if_none_match: IfNoneMatch = None,
) -> Response:
    now = datetime.now(UTC)
    read = feed_reader.read(token, now, ALL_TASKS_NAME)
    tag = calendar_ics.tag(read.feed_id, read.kind, read.name, now.year, read.tasks)
    sent = {
        "ETag": tag,
        "Last-Modified": format_datetime(read.last_modified.astimezone(UTC), usegmt=True),
    }
    # The token's count (`door`'s), only with the feed: every 404 is one answer, headers too.
    sent.update(door.feed_headers)
    if if_none_match is not None and none_match(if_none_match, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=sent)
    body = calendar_ics.body(read.kind, read.name, now, read.tasks)
    return Response(body, media_type=CALENDAR_MEDIA_TYPE, headers=sent)


@router.get(
    "/calendar/{token}",
    operation_id="getCalendarFeedWithoutExtension",
    summary="A calendar feed's address without `.ics`",
    description="Always 404: a feed's address ends in `.ics`.",
    responses=errors(404),
    include_in_schema=False,
)
def calendar_feed_without_extension(token: str) -> None:
    raise NotFound(NOT_ICS)
