"""`/api/imports` (specs/import-export.md): bring tasks from another app or our own export. The
upload (multipart: `file` and the options) is read before the unit of work connects; the file
is read into a plan in the route (no database), and either analysed and shown (a dry run) or
queued with its file for a runner (backend/transfer/runner.py). Thin otherwise: the services
and the importer do the rest.
No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from backend.api.deps import Door, DoorRoute, SettingsDep, uses
from backend.api.responses import EXAMPLES, VALIDATION, ErrorExample, errors, ok
from backend.api.routes.attachments import multipart_form
from backend.errors import (
    Conflict,
    InvalidRequest,
    LimitReached,
    NotFound,
    PayloadTooLarge,
)
from backend.models.common import DataEnvelope, DecimalDigits, ListMeta
from backend.models.imports import (
    IMPORT_ID_MAX,
    ImportPreview,
    ImportPublic,
    SourceParam,
)
from backend.models.references import Reference
from backend.models.task_calendar import KNOWN_ZONES
from backend.services.delivery.notification_settings import NotificationSettingsService
from backend.services.sharing.lists import ListService
from backend.services.tasks.saved_filters import SavedFilterService
from backend.services.tasks.service import TaskService
from backend.services.transfer.imports import IMPORT_NOT_FOUND, PENDING_MESSAGE, ImportService
from backend.transfer import sources
from backend.transfer.importer import analyse, check_list, standing_of, undo
from backend.transfer.plan import SOURCES, NotThisSource, Plan, Source

IMPORTS_PATH = r"^/api/imports/?$"
# What a multipart body may add to its file's bytes: the boundaries, headers and options.
MULTIPART_OVERHEAD = 64 * 1024


class ImportEnvelope(DataEnvelope[ImportPublic]):
    """One import."""


class ImportPreviewEnvelope(DataEnvelope[ImportPreview]):
    """A dry run's answer."""


class ImportsEnvelope(DataEnvelope[list[ImportPublic]]):
    """The caller's imports, newest first."""

    meta: ListMeta


TAGS = {
    "imports": "Bring tasks from Todoist, TickTick, Google Tasks, an iCalendar file or this "
    "API's own export (`GET /api/export`): preview with `dry_run`, run off the request, "
    "re-run without duplicates, undo as one step. docs/guides/import-export.md."
}
router = APIRouter(tags=["imports"], responses=errors(401, 503), route_class=DoorRoute)

_MISSING = ErrorExample.of(
    "import_not_found", "No such import of the caller's", NotFound(IMPORT_NOT_FOUND)
)
_NOT_SOURCE = ErrorExample.of(
    "import_not_the_source",
    "The file is empty, or not the source it claims",
    InvalidRequest.at("file", "tasks.jsonl:3: not a JSON object"),
)
_LIMIT = ErrorExample.of(
    "import_past_a_limit",
    "The import would take the caller past a limit: nothing written",
    LimitReached("The import adds 101 lists to your 0, past the most there can be (100)"),
)
_PENDING = ErrorExample.of(
    "imports_pending",
    "The caller has IMPORTS_PENDING_MAX imports queued or running: nothing queued",
    Conflict(PENDING_MESSAGE),
)
_TOO_LARGE = ErrorExample.of(
    "import_too_large", "The file is larger than IMPORT_MAX_BYTES", PayloadTooLarge()
)
_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "The file: a CSV, JSON, ICS or zip as the app exports it.",
        },
        "source": {
            "type": "string",
            "enum": list(get_args(SourceParam)),
            "default": "auto",
            "description": "Which app the file is from; `auto`: told from its content.",
        },
        "dry_run": {
            "type": "string",
            "enum": ["true", "false"],
            "default": "false",
            "description": "`true`: read and check it, write nothing, answer what it would do.",
        },
        "time_zone": {
            "type": "string",
            "description": "IANA zone for what the file carries no zone for; default the "
            "caller's notification settings' zone, else UTC.",
            "examples": ["Europe/Berlin"],
        },
        "list_id": {
            "type": "string",
            "pattern": "^[1-9][0-9]{0,17}$",
            "description": "Where tasks with no list of their own go (as `POST /api/tasks` "
            "takes `list_id`); default none.",
        },
    },
    "additionalProperties": False,
}
_MULTIPART = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM}}}
}


@dataclass(frozen=True)
class Upload:
    data: bytes
    file_name: str
    source: str
    dry_run: bool
    time_zone: str | None
    list_id: int | None


def _option(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest.at(f"body.{name}", f"`{name}` is a field, not a file")
    return value.strip()


async def _upload(request: Request, settings: SettingsDep) -> AsyncIterator[Upload]:
    """The multipart body's file (past IMPORT_MAX_BYTES: 413 as soon as it is seen, the rest
    never read whole) and options, read before the unit of work connects."""
    not_multipart = InvalidRequest.at("file", "Send multipart/form-data with a part named `file`")
    form = await multipart_form(request, 10, not_multipart, "A malformed multipart body")
    try:
        unknown = set(form.keys()) - set(_FORM["properties"])  # type: ignore[call-overload]
        if unknown:
            raise InvalidRequest.at(f"body.{sorted(unknown)[0]}", "Not a field of an import")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidRequest.at("file", "Send the file as a part named `file`")
        most = settings.import_max_bytes
        if file.size is not None and file.size > most:
            raise PayloadTooLarge(f"The file is larger than {most} bytes (IMPORT_MAX_BYTES)")
        data = await file.read(most + 1)
        if len(data) > most:
            raise PayloadTooLarge(f"The file is larger than {most} bytes (IMPORT_MAX_BYTES)")
        source = _option(form, "source") or "auto"
        if source not in get_args(SourceParam):
            raise InvalidRequest.at("body.source", f"One of {', '.join(get_args(SourceParam))}")
        dry = (_option(form, "dry_run") or "false").lower()
        if dry not in ("true", "false"):
            raise InvalidRequest.at("body.dry_run", "`true` or `false`")
        zone = _option(form, "time_zone") or None
        # A zone a task may have (the same set): `ZoneInfo` alone raised OSError (a 500) on a
        # name past the file system's length, and took `posixrules`, which every task refuses.
        if zone is not None and zone not in KNOWN_ZONES:
            raise InvalidRequest.at("body.time_zone", f"Unknown time zone {zone[:100]!r}")
        raw_list = _option(form, "list_id") or None
        if raw_list is not None and not (raw_list.isascii() and raw_list.isdigit()):
            raise InvalidRequest.at("body.list_id", "A list's id: digits")
        list_id = int(raw_list) if raw_list is not None else None
        if list_id is not None and not 1 <= list_id <= IMPORT_ID_MAX:
            raise InvalidRequest.at("body.list_id", "A list's id")
        yield Upload(data, file.filename or "", source, dry == "true", zone, list_id)
    finally:
        await form.close()


Uploaded = Annotated[Upload, Depends(_upload, scope="function")]


def _plan(upload: Upload, zone: str) -> Plan:
    """The file read as its source (told from the content for `auto`): 422 naming where."""
    try:
        source: Source = (
            sources.detect(upload.data, upload.file_name)
            if upload.source == "auto"
            else upload.source  # type: ignore[assignment]
        )
        if source not in SOURCES or source not in sources.MODULES:
            raise NotThisSource("body.source", f"This server reads no {source} files yet")
        return sources.read(source, upload.data, upload.file_name, zone)
    except NotThisSource as exc:
        field = exc.where if exc.where.startswith("body.") else "file"
        named = exc.where in ("file", field) or exc.message.startswith(exc.where)
        message = exc.message if named else f"{exc.where}: {exc.message}"
        raise InvalidRequest.at(field, message) from None


@router.post(
    "/api/imports",
    openapi_extra=_MULTIPART,
    operation_id="createImport",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportEnvelope,
    summary="Import tasks from a file",
    description="multipart/form-data: `file` and the options. `dry_run=true`: 200 with what "
    "the import would create (counts, warnings, what is kept only partly, the first 50 "
    "tasks), nothing written. Else 202: the import is queued and runs off the request; "
    "follow `Location`. A row our rules refuse is skipped with a warning; an import past the "
    "caller's limits is refused whole (422 `LIMIT_REACHED`); the same file again creates "
    "nothing (`already_imported`). Over `IMPORT_MAX_BYTES`: 413. With 3 imports of the "
    "caller's queued or running: 409, until one ends.",
    responses={
        200: {"model": ImportPreviewEnvelope, "description": "The dry run: nothing written."},
        **ok(202, "Queued; `Location` is the import's path.", "Location"),
        **errors(
            404,
            409,
            413,
            422,
            examples=(
                EXAMPLES["list_not_found"],
                _PENDING,
                _TOO_LARGE,
                _NOT_SOURCE,
                _LIMIT,
                VALIDATION,
            ),
        ),
    },
)
def create_import(
    imports: Annotated[ImportService, uses(ImportService)],
    lists: Annotated[ListService, uses(ListService)],
    saved_filters: Annotated[SavedFilterService, uses(SavedFilterService)],
    notification_settings: Annotated[
        NotificationSettingsService, uses(NotificationSettingsService)
    ],
    upload: Uploaded,
    request: Request,
    response: Response,
) -> Any:
    if not upload.dry_run:
        # Read now for a 422 naming the line (no database); its zone, its limits and its list
        # are the runner's (in the owner's zone when none was sent): one round trip, queued.
        plan = _plan(upload, upload.time_zone or "UTC")
        row = imports.queue(
            plan.source, upload.data, upload.file_name, upload.time_zone, upload.list_id
        )
        response.headers["Location"] = f"{request.scope.get('root_path', '')}/api/imports/{row.id}"
        return ImportEnvelope(data=ImportPublic.of(row))
    zone = upload.time_zone or notification_settings.get().time_zone or "UTC"
    plan = _plan(upload, zone)
    if upload.list_id is not None:
        check_list(lists, upload.list_id)
    analysis = analyse(plan, standing_of(imports, lists, saved_filters, plan), zone, upload.list_id)
    body = ImportPreviewEnvelope(data=analysis.answer(imports.user_id)).model_dump(mode="json")
    return JSONResponse(body, status_code=status.HTTP_200_OK)


ImportId = Annotated[
    int,
    Path(ge=1, le=IMPORT_ID_MAX, description="The import's id.", examples=[7]),
    DecimalDigits,
    Reference("imports", None),  # the caller's own
]


@router.get(
    "/api/imports",
    operation_id="listImports",
    response_model=ImportsEnvelope,
    summary="The caller's imports",
    description="Newest first; `cursor` (the previous page's `meta.next_cursor`) for the next.",
    responses=ok(200, "The caller's imports.") | errors(422, examples=(VALIDATION,)),
)
def list_imports(
    imports: Annotated[ImportService, uses(ImportService)],
    limit: Annotated[int, Query(ge=1, le=100, description="Page size."), DecimalDigits] = 20,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=IMPORT_ID_MAX, description="The previous page's `next_cursor`."),
        DecimalDigits,
    ] = None,
) -> ImportsEnvelope:
    rows = imports.page(cursor, limit)
    page = rows[:limit]
    more = len(rows) > limit
    meta = ListMeta(
        count=len(page),
        limit=limit,
        has_more=more,
        next_cursor=str(page[-1].id) if more else None,
    )
    return ImportsEnvelope(data=[ImportPublic.of(row) for row in page], meta=meta)


@router.get(
    "/api/imports/{import_id}",
    operation_id="getImport",
    response_model=ImportEnvelope,
    summary="An import",
    description="Its state, progress and what it created or left out. Another user's: 404.",
    responses=ok(200, "The import.") | errors(404, 422, examples=(_MISSING, VALIDATION)),
)
def get_import(
    imports: Annotated[ImportService, uses(ImportService)], import_id: ImportId
) -> ImportEnvelope:
    return ImportEnvelope(data=ImportPublic.of(imports.get(import_id)))


_NOT_DONE = ErrorExample.of(
    "import_not_done",
    "Only a done import can be undone",
    Conflict("Only a done import can be undone; this one is queued"),
)


@router.post(
    "/api/imports/{import_id}/undo",
    operation_id="undoImport",
    response_model=ImportEnvelope,
    summary="Undo an import",
    description="Every task the import created that you may still delete (as `DELETE "
    "/api/tasks/{task_id}`: a shared list's too) goes to the trash in one step (each "
    "restorable as any deleted task: `GET /api/trash`); then the lists it created that hold "
    "no task and the saved filters it created are deleted; the import is `undone` and the "
    "same file imports again. What it could not remove (a task out of your reach or deleted "
    "since: `not_undone`; a list holding other tasks: `list_kept`, kept) is added to the "
    "import's `warnings`. 409 unless it is `done`.",
    responses=ok(200, "The import, `undone`.")
    | errors(404, 409, 422, examples=(_MISSING, _NOT_DONE, VALIDATION)),
)
def undo_import(
    imports: Annotated[ImportService, uses(ImportService)],
    tasks: Annotated[TaskService, uses(TaskService)],
    lists: Annotated[ListService, uses(ListService)],
    saved_filters: Annotated[SavedFilterService, uses(SavedFilterService)],
    door: Door,
    import_id: ImportId,
) -> ImportEnvelope:
    door.hold_commit()
    return ImportEnvelope(
        data=ImportPublic.of(undo(imports, tasks, lists, saved_filters, import_id))
    )


def body_limit(max_bytes: int) -> int:
    """The most bytes `POST /api/imports`'s body may hold."""
    return max_bytes + MULTIPART_OVERHEAD
