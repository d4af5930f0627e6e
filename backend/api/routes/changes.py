"""`GET /api/tasks/changes`: the caller's change feed (specs/events.md). Thin: enter through
the door, read `ChangeFeed`, return the envelope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from backend.api.actions import feeds
from backend.api.deps import Door, DoorRoute, uses
from backend.api.pagination import MAX_CURSOR_LENGTH, decode_changes_cursor, encode_changes_cursor
from backend.api.responses import CURSOR_EXPIRED, INVALID_CHANGES_CURSOR, VALIDATION, errors, ok
from backend.models.change import ChangesMeta, TaskChange
from backend.models.common import DecimalDigits
from backend.models.envelopes import TaskChangesEnvelope
from backend.models.references import Action
from backend.services.history.changes import ChangeFeed

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

router = APIRouter(
    prefix="/api/tasks", tags=["changes"], responses=errors(401, 422, 503), route_class=DoorRoute
)


class ChangesParams(BaseModel):
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR_LENGTH,
        description="`meta.next_cursor` of the previous poll, or `meta.changes_cursor` of a "
        "listing. Without one, the feed starts at the oldest change still retained.",
    )
    limit: Annotated[int, DecimalDigits] = Field(
        default=DEFAULT_LIMIT,
        ge=1,
        le=MAX_LIMIT,
        description=f"Most changes to return, 1-{MAX_LIMIT}.",
        examples=[100],
    )


@router.get(
    "/changes",
    openapi_extra=feeds(Action.LIST_READ),
    operation_id="listTaskChanges",
    response_model=TaskChangesEnvelope,
    summary="Poll your task changes",
    responses=ok(200, "Your changes after the cursor, oldest first (maybe none).")
    | errors(410, 422, examples=(CURSOR_EXPIRED, VALIDATION, INVALID_CHANGES_CURSOR)),
    description="Every change to your tasks, in the order the changes were committed, "
    "deletions included: `created`, `updated`, `completed`, `reopened`, `deleted` (with "
    "`task` null). Start from a listing's `meta.changes_cursor` (every change after that "
    "listing, none before), then poll with each answer's `meta.next_cursor`; while "
    "`has_more` is true, fetch again at once. No change is ever skipped, including changes "
    "committed out of the order they started in. A cursor unused for longer than the "
    "retention (`CHANGE_RETENTION_HOURS`, 7 days by default) is 410 `CURSOR_EXPIRED`: list "
    "again.",
)
def list_changes(
    door: Door,
    changes: Annotated[ChangeFeed, uses(ChangeFeed)],
    params: Annotated[ChangesParams, Query()],
) -> TaskChangesEnvelope:
    secret = door.settings.signing_secret()
    after = None
    if params.cursor:
        after = decode_changes_cursor(secret, door.caller_id, params.cursor)
    page = changes.page(after, params.limit)
    return TaskChangesEnvelope(
        data=[TaskChange.from_row(row) for row in page.changes],
        meta=ChangesMeta(
            count=len(page.changes),
            has_more=page.has_more,
            next_cursor=encode_changes_cursor(secret, door.caller_id, page.next),
        ),
    )
