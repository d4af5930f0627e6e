"""`GET /api/export`: everything the caller owns as one zip, streamed (specs/import-export.md,
"Export"). The route's unit of work reads the account (its entry checks the token and the
account); the body is `backend/transfer/exporter.py`'s, each page read in a unit of work of its
own after this one closed, so no connection is held while bytes move.
No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from backend.api.deps import Door, DoorRoute, uses
from backend.api.responses import errors
from backend.services.accounts.users import UserService
from backend.storage.app import app_storage
from backend.transfer.exporter import MEDIA_TYPE, Account, archive, file_name

router = APIRouter(tags=["export"], route_class=DoorRoute)
TAGS = {
    "export": "Everything you own, as one zip to keep or to import elsewhere (specs/"
    "import-export.md): your lists, tasks, their comments and files, saved filters and "
    "notification settings; never a credential."
}

_ZIP = {
    "description": "The archive, streamed as it is written (its members: specs/"
    'import-export.md, "Export").',
    "content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    "headers": {
        "Content-Disposition": {
            "description": "`attachment`, named after the day (UTC) of the export.",
            "required": True,
            "schema": {
                "type": "string",
                "examples": ['attachment; filename="tasks-export-2026-11-29.zip"'],
            },
        }
    },
}


@router.get(
    "/api/export",
    operation_id="exportAccount",
    summary="Export everything you own (zip)",
    description="A zip of your own lists, tasks (open, completed, subtasks; not the trash), "
    "the comments on them (anyone's), your attachments' bytes, saved filters and notification "
    "settings, with `tasks.ics` (a VTODO per task, as CalDAV serves it) and `manifest.json`. "
    "Other owners' lists shared with you are theirs: not included. No credential (password, "
    "app passwords, push keys, tokens, feed URLs) is ever part of it. Streamed: the first "
    "bytes come at once, whatever the account's size.",
    response_class=StreamingResponse,
    responses={200: _ZIP, **errors(401, 503)},
)
def export_account(
    door: Door, users: Annotated[UserService, uses(UserService)], request: Request
) -> StreamingResponse:
    user = users.get(door.caller_id)
    now = datetime.now(UTC)
    account = Account(door.caller_id, user.email if user is not None else None)
    body = archive(door.again, app_storage(request.app), account, now)
    disposition = f'attachment; filename="{file_name(now)}"'
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": disposition},  # `no-store`: the edge's, as every answer
    )
