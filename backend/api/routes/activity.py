"""`GET /api/activity` and `GET /api/lists/{list_id}/activity`: what happened, newest first
(specs/api-contract.md, "Shared lists" -> Activity). Thin: enter through the door, read
`door.activity`, return the envelope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.deps import Door, DoorRoute, SettingsDep
from backend.api.pagination import MAX_CURSOR_LENGTH, decode_row_cursor, encode_row_cursor
from backend.api.responses import INVALID_CURSOR, LIST_NOT_FOUND, VALIDATION, errors
from backend.api.routes.lists import ListId
from backend.models.activity import ActivityItem
from backend.models.common import DecimalDigits, ListMeta
from backend.models.envelopes import ActivityEnvelope

router = APIRouter(tags=["activity"], responses=errors(401, 422, 503), route_class=DoorRoute)

PageSize = Annotated[int, Query(ge=1, le=100, description="Page size, 1-100."), DecimalDigits]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`meta.next_cursor` of the previous page."),
]
_RETENTION = (
    "Kept as long as the change feed keeps changes (`CHANGE_RETENTION_HOURS`, 7 days by "
    "default, once delivered)."
)


def _envelope(
    rows: Sequence[Any], more: bool, limit: int, secret: str, kind: str, user_id: str
) -> ActivityEnvelope:
    next_cursor = encode_row_cursor(secret, kind, user_id, 0, rows[-1].id) if more else None
    return ActivityEnvelope(
        data=[ActivityItem.from_row(row) for row in rows],
        meta=ListMeta(count=len(rows), limit=limit, has_more=more, next_cursor=next_cursor),
    )


@router.get(
    "/api/activity",
    operation_id="listActivity",
    response_model=ActivityEnvelope,
    summary="What happened in your space and your shared lists",
    description="Newest first, keyset-paged (follow `meta.next_cursor` until null): every "
    "change of your tasks and lists and of every list shared with you (its tasks, members, "
    "invitations, comments), with who made it and, for an update, each changed field's old "
    "and new value. " + _RETENTION,
    responses=errors(422, examples=(VALIDATION, INVALID_CURSOR)),
)
def list_activity(
    door: Door, settings: SettingsDep, limit: PageSize = 50, cursor: Cursor = None
) -> ActivityEnvelope:
    secret, user_id = settings.signing_secret(), door.caller_id
    before = decode_row_cursor(secret, "activity", user_id, cursor)[1] if cursor else None
    rows, more = door.activity.page(before, limit)
    return _envelope(rows, more, limit, secret, "activity", user_id)


@router.get(
    "/api/lists/{list_id}/activity",
    operation_id="listListActivity",
    response_model=ActivityEnvelope,
    summary="What happened in a list",
    description="A list's activity (viewer or above), newest first, keyset-paged: its "
    "tasks' changes, its own, its members', invitations' and comments'. Anyone who is not a "
    "member gets the 404 of a list that does not exist. " + _RETENTION,
    responses=errors(404, 422, examples=(LIST_NOT_FOUND, VALIDATION, INVALID_CURSOR)),
)
def list_list_activity(
    door: Door,
    settings: SettingsDep,
    list_id: ListId,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> ActivityEnvelope:
    secret, user_id = settings.signing_secret(), door.caller_id
    kind = f"activity/{list_id}"
    before = decode_row_cursor(secret, kind, user_id, cursor)[1] if cursor else None
    rows, more = door.activity.list_page(list_id, before, limit)
    return _envelope(rows, more, limit, secret, kind, user_id)
