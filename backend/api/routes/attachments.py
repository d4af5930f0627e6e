"""A task's attachments beyond their declared routes (list, get, delete: `TASK_ATTACHMENTS`):
the multipart upload, the download (the file's bytes, or a redirect to a presigned S3 URL) and
`GET /api/attachments/limits` (specs/storage.md). An upload's bytes move before its unit of
work connects (`stored_file`), a download's after it closed: no pooled connection waits on bytes.
No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations."""

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message

from backend.api import CONNECTION
from backend.api.actions import acts
from backend.api.deps import DoorRoute, SettingsDep, uses
from backend.api.responses import (
    EXAMPLES,
    FORBIDDEN,
    TASK_NOT_FOUND,
    VALIDATION,
    ErrorExample,
    errors,
    ok,
)
from backend.api.routes.tasks import TaskId
from backend.config import Settings
from backend.errors import (
    AppError,
    InvalidRequest,
    LimitReached,
    RequestTimeout,
    ServiceUnavailable,
    UploadIncomplete,
    UploadsBusy,
)
from backend.models.attachment import (
    ATTACHMENTS_PER_TASK,
    TASK_ATTACHMENTS,
    AttachmentLimits,
    AttachmentPublic,
)
from backend.models.common import DataEnvelope, DecimalDigits
from backend.models.references import Reference
from backend.models.types import TASK_ID_MAX
from backend.services.tasks.attachments import QUOTA_REACHED, AttachmentService
from backend.services.tasks.task_children import TaskAttachmentService
from backend.storage import StorageError, download_headers
from backend.storage.app import StoredUpload, app_storage, delete_quietly, store_upload

# What a multipart body may add to its file's bytes: the boundaries, the part's headers and a
# long file name (the edge admits the upload route's body up to the maximum plus this).
MULTIPART_OVERHEAD = 64 * 1024
UPLOAD_PATH = r"^/api/tasks/[^/]+/attachments$"

_ROWS = TaskAttachmentService.rows
_READ, _WRITE = TASK_ATTACHMENTS.action(writes=False), TASK_ATTACHMENTS.action(writes=True)
_MISSING = EXAMPLES["attachment_not_found"]  # the generated routes' (backend/api/child_routes.py)
_FULL = EXAMPLES["too_many_attachments"]
_QUOTA = ErrorExample.of(
    "attachment_quota_reached",
    "The file would take the caller's uploads past its quota",
    LimitReached(QUOTA_REACHED),
)
_NO_FILE = InvalidRequest.at("file", "Send one part named `file` (multipart/form-data)")
_STALLED = ErrorExample.of(
    "upload_stalled",
    "The upload's body sent nothing for ATTACHMENTS_STALL_SECONDS",
    RequestTimeout("No byte of the upload arrived for 15 s; send it again"),
)
_BUSY = ErrorExample.of(
    "uploads_busy", "As many uploads as the server runs at once are running", UploadsBusy()
)
_STORE_DOWN = ErrorExample.of(
    "storage_unavailable", "The file storage did not answer in time", StorageError()
)
_REFUSED = (FORBIDDEN, TASK_NOT_FOUND, VALIDATION, _FULL, _QUOTA, _STALLED, _BUSY, _STORE_DOWN)
_UPLOAD_503 = {
    503: "As many uploads as the server runs at once are running, the file storage did not "
    "answer within its bounds, or the database is unreachable (`SERVICE_UNAVAILABLE`); "
    "nothing was kept. Retry after `Retry-After`."
}
logger = logging.getLogger(__name__)

AttachmentId = Annotated[
    int,
    Path(ge=1, le=TASK_ID_MAX, description="The attachment's id.", examples=[11]),
    DecimalDigits,
    Reference(TASK_ATTACHMENTS.name, _READ),
]


class AttachmentEnvelope(DataEnvelope[AttachmentPublic]):
    """One attachment of a task."""


class AttachmentLimitsEnvelope(DataEnvelope[AttachmentLimits]):
    """The caller's attachment limits and use."""


router = APIRouter(tags=["attachments"], responses=errors(401, 503), route_class=DoorRoute)

_FILE = {
    "type": "string",
    "format": "binary",
    "description": "The file: one part, its name kept (sanitised).",
}
_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {"file": _FILE},
    "additionalProperties": False,
}
_MULTIPART = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM}}}
}


class UploadSlots:
    """The uploads a worker runs at once (ATTACHMENTS_MAX_CONCURRENT_UPLOADS), counted on its
    event loop (one per worker process: no lock needed between a take and its test)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.running = 0

    def take(self) -> bool:
        if self.running >= self.most:
            return False
        self.running += 1
        return True

    def give_back(self) -> None:
        self.running -= 1


def _slots(request: Request, settings: Settings) -> UploadSlots:
    slots: UploadSlots | None = getattr(request.app.state, "upload_slots", None)
    if slots is None:
        slots = request.app.state.upload_slots = UploadSlots(
            settings.attachments_max_concurrent_uploads
        )
    return slots


def _stalling(request: Request, seconds: float) -> Request:
    """`request` whose body's every read waits at most `seconds` (408 past it): a sender
    that stops holds its upload's slot no longer than that."""
    receive = request.receive

    async def within() -> Message:
        try:
            with anyio.fail_after(seconds):
                return await receive()
        except TimeoutError:
            logger.info("An upload's body stalled for %.0f s: 408", seconds)
            raise RequestTimeout(
                f"No byte of the upload arrived for {seconds:g} s; send it again"
            ) from None

    return Request(request.scope, within)


async def multipart_form(
    request: Request, fields: int, not_multipart: AppError, malformed: str
) -> FormData:
    """A multipart body's parts (at most one file and `fields` fields; a file spooled by
    Starlette: 1 MiB in memory, the rest on disk), or 422 (`not_multipart`; a malformed body,
    a second file or a field too many: `malformed`, at `file`). A body cut short (the client
    gone, the server's deadline) is the client's abort: logged at INFO."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "multipart/form-data":
        raise not_multipart
    try:
        return await request.form(max_files=1, max_fields=fields)
    except ClientDisconnect:
        logger.info("An upload's connection ended before its body did (the client's abort)")
        raise UploadIncomplete() from None
    except StarletteHTTPException as exc:  # Starlette's own (a multipart error), not FastAPI's
        if exc.status_code == status.HTTP_413_CONTENT_TOO_LARGE:
            raise
        # Starlette's 400, as our 422.
        raise InvalidRequest.at("file", malformed) from None


@asynccontextmanager
async def _the_file(request: Request) -> AsyncIterator[UploadFile]:
    """The one part `file` of a multipart body, or 422: no part, another part, two files, not
    multipart."""
    form = await multipart_form(request, 0, _NO_FILE, "Send exactly one part, named `file`")
    try:
        parts = form.multi_items()
        if len(parts) != 1 or parts[0][0] != "file" or not isinstance(parts[0][1], UploadFile):
            raise _NO_FILE
        yield parts[0][1]
    finally:
        await form.close()


async def stored_file(
    request: Request, settings: SettingsDep, task_id: TaskId
) -> AsyncIterator[StoredUpload]:
    """The upload's bytes, stored before the route's unit of work takes a connection (a slot of
    the worker's uploads, else 503; the body's time bounded). Refused or never recorded, they
    are deleted; an unknown outcome (the database gone mid-commit) leaves them to the sweeper,
    which deletes them only if no row names them."""
    slots = _slots(request, settings)
    if not slots.take():
        logger.warning("Upload refused: %d uploads running on this worker", slots.most)
        raise UploadsBusy()
    try:
        connection = request.scope.get("extensions", {}).get(CONNECTION)
        if connection is not None:
            connection.receive_within(settings.attachments_upload_seconds)
        async with _the_file(_stalling(request, settings.attachments_stall_seconds)) as file:
            storage = app_storage(request.app)
            most = settings.attachments_max_file_bytes
            name = file.filename or ""
            stored = await run_in_threadpool(store_upload, storage, file.file, name, max_bytes=most)
        try:
            yield stored
        except Exception as exc:
            if not stored.recorded and _refused(exc):
                await run_in_threadpool(delete_quietly, storage, stored.key)
            raise
        if not stored.recorded:
            await run_in_threadpool(delete_quietly, storage, stored.key)
    finally:
        slots.give_back()


def _refused(exc: Exception) -> bool:
    """Whether `exc` says the row was not written (a refusal, an invalid request), not that
    its outcome is unknown (a 503, the connection lost: the sweeper decides)."""
    refusal = AppError | IntegrityError | DataError | RequestValidationError
    return not isinstance(exc, ServiceUnavailable) and isinstance(exc, refusal)


Stored = Annotated[StoredUpload, Depends(stored_file, scope="function")]


@router.post(
    "/api/tasks/{task_id}/attachments",
    openapi_extra={**acts(_WRITE), **_MULTIPART},
    operation_id="uploadTaskAttachment",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentEnvelope,
    summary="Upload a file to a task",
    description="multipart/form-data with one part `file`. The bytes are measured (size, "
    "SHA-256) and their type detected, never taken from the request. Needs the task's owner, "
    f"or a member of its list with `editor` or more. At most {ATTACHMENTS_PER_TASK} a task "
    "and the caller's quota (`GET /api/attachments/limits`); one byte over the per-file "
    "maximum is 413 with nothing stored. A body that sends nothing for "
    "`ATTACHMENTS_STALL_SECONDS` is 408; past `ATTACHMENTS_MAX_CONCURRENT_UPLOADS` uploads "
    "running on the server, or the storage not answering, 503 with `Retry-After`; nothing "
    "is kept.",
    responses=ok(201, "Stored; `Location` is the new attachment's path.", "Location")
    | errors(403, 404, 408, 413, 422, 503, examples=_REFUSED, descriptions=_UPLOAD_503),
)
def upload_attachment(
    attachments: Annotated[AttachmentService, uses(AttachmentService)],
    settings: SettingsDep,
    task_id: TaskId,
    stored: Stored,
    request: Request,
    response: Response,
) -> AttachmentEnvelope:
    row = attachments.record(task_id, stored, quota=settings.attachments_quota_bytes)
    root = request.scope.get("root_path", "")
    response.headers["Location"] = f"{root}/api/tasks/{task_id}/attachments/{row.id}"
    return AttachmentEnvelope(data=AttachmentPublic.model_validate(row))


_BINARY = {
    "description": "The bytes, served as an attachment (filesystem storage).",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


@router.get(
    "/api/tasks/{task_id}/attachments/{attachment_id}/download",
    openapi_extra=acts(_READ),
    operation_id="downloadTaskAttachment",
    summary="Download a file of a task",
    description="Always `Content-Disposition: attachment` (HTML, SVG and other active types "
    "as `application/octet-stream`), `nosniff` and a sandboxing CSP. With S3 storage, a 302 "
    "to a presigned URL that lives `ATTACHMENTS_URL_SECONDS` (minutes) with the same "
    "headers signed in; never store or share it.",
    response_class=Response,
    responses={
        200: _BINARY,
        302: {"description": "To a short-lived presigned URL (S3 storage): `Location`."},
        **errors(404, 422, examples=(TASK_NOT_FOUND, _MISSING, VALIDATION)),
    },
)
def download_attachment(
    attachment_rows: Annotated[TaskAttachmentService, uses(TaskAttachmentService)],
    settings: SettingsDep,
    task_id: TaskId,
    attachment_id: AttachmentId,
    request: Request,
) -> Response:
    row = attachment_rows.get(task_id, attachment_id)
    storage = app_storage(request.app)
    headers = download_headers(row.filename, row.content_type)
    url = storage.presigned_get(
        row.storage_key,
        filename=row.filename,
        content_type=row.content_type,
        ttl_seconds=settings.attachments_url_seconds,
    )
    if url is not None:
        return RedirectResponse(
            url,
            status_code=status.HTTP_302_FOUND,
            headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"},
        )
    chunks = storage.open(row.storage_key)
    return StreamingResponse(
        _closing(chunks),
        headers={**headers.as_dict(), "Content-Length": str(row.size)},
        media_type=headers.content_type,
    )


def _closing(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, the source closed however the stream ends (a client gone mid-way)."""
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


@router.get(
    "/api/attachments/limits",
    operation_id="getAttachmentLimits",
    response_model=AttachmentLimitsEnvelope,
    summary="The caller's attachment limits and use",
    description="The per-file maximum, the most files a task holds, the caller's quota and "
    "the bytes its uploads hold (trashed ones count until purged).",
    responses=ok(200, "The limits and the caller's use."),
)
def attachment_limits(
    attachments: Annotated[AttachmentService, uses(AttachmentService)], settings: SettingsDep
) -> AttachmentLimitsEnvelope:
    return AttachmentLimitsEnvelope(
        data=AttachmentLimits(
            max_file_bytes=settings.attachments_max_file_bytes,
            max_per_task=ATTACHMENTS_PER_TASK,
            quota_bytes=settings.attachments_quota_bytes,
            used_bytes=attachments.used(),
        )
    )


def upload_body_limit(max_file_bytes: int) -> int:
    """The most bytes the upload route's body may hold."""
    return max_file_bytes + MULTIPART_OVERHEAD
