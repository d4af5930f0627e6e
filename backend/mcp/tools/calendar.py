"""create_calendar_feed: a feed's URL, a credential (`Credential`: a chat never sees it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from backend.mcp.tools.common import Arguments, Credential, Tool
from backend.models.calendar_feed import CalendarFeedCreate, FeedKind, FeedScope, feed_url
from backend.models.references import SUBJECT, Action
from backend.models.task_list import ListId
from backend.services.calendar.calendar_feeds import CalendarFeedService
from backend.services.unit_of_work import UnitOfWork


class CreateCalendarFeedArguments(Arguments):
    kind: FeedKind = Field(
        default=FeedKind.events,
        description="events (shown by every calendar app; the default) or todos (VTODO).",
    )
    list_id: Annotated[ListId, SUBJECT] | None = Field(
        default=None,
        description="One list's tasks only (list_lists; one the user can read); none: every "
        "task of the user's with a due date, shared lists included.",
    )


class CalendarFeedMade(BaseModel):
    feed_id: int
    status: Literal["created"] = "created"
    kind: FeedKind
    list_id: int | None
    url: Annotated[
        str,
        Credential(
            where="The feed's URL holds a secret token: a chat never shows it. The user gets "
            "it in their own client, which asks for a new one (POST "
            "/api/calendar-feeds/{feed_id}/rotate) and shows it only to them, once."
        ),
    ] = Field(
        description="The feed's address, with its secret token, for the caller's own client "
        "only: give it to the user to subscribe to in a calendar app. It is shown only now "
        "(the path alone when the server has no PUBLIC_URL: prefix the API's address)."
    )


def _create_calendar_feed(
    work: UnitOfWork, arguments: CreateCalendarFeedArguments
) -> CalendarFeedMade:
    calendar_feeds: CalendarFeedService = work.service(CalendarFeedService)
    scope = FeedScope.all if arguments.list_id is None else FeedScope.list
    data = CalendarFeedCreate(kind=arguments.kind, scope=scope, list_id=arguments.list_id)
    new = calendar_feeds.create(data)
    public = work.settings.public_url
    url = feed_url(new.token, str(public) if public else "")
    return CalendarFeedMade(
        feed_id=new.feed.id, kind=new.feed.kind, list_id=new.feed.list_id, url=url
    )


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="create_calendar_feed",
        action=Action.LIST_READ,
        not_found="List not found",
        title="Create a calendar feed",
        description="Create an iCalendar feed URL of the user's tasks with a due date (or of "
        "one list, list_id) to subscribe to in Google Calendar, Outlook or Apple Calendar. "
        "The url holds a secret token and goes only to the caller's own client, in this "
        "answer only: give it to the user there. A chat never sees it: its result has "
        "url_withheld instead, saying where the user gets the URL. "
        'Returns its feed_id, "status": "created", its kind, list_id and url.',
        arguments=CreateCalendarFeedArguments,
        result=CalendarFeedMade,
        run=_create_calendar_feed,
    ),
)
