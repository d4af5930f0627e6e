"""The caller's own data as a zip, streamed (specs/import-export.md, "Export"): `archive` yields
the zip's bytes as it writes them, so the first bytes leave before anything else is read and the
memory it holds does not grow with the account.

How it stays bounded:
- every read is one page (`PAGE` rows, keyset: `ExportService`) in a unit of work of its own,
  closed before the page is written and yielded: no connection or transaction is held while
  bytes move (to the client, or from the file storage);
- stdlib `zipfile` writes to a sink that cannot seek (`_Sink`): each member's sizes follow its
  bytes in a data descriptor (ZIP64, sizes unknown up front), and what the sink holds is yielded
  after each page;
- `tasks.jsonl` and `tasks.ics` are two members from one pass over the tasks: the VTODOs are
  spooled (`SpooledTemporaryFile`: memory up to `SPOOL_IN_MEMORY`, then a temporary file) and
  copied into the zip after `tasks.jsonl`; `attachments.jsonl` is spooled the same way while the
  attachments' bytes are written, so the lines and the files are of the same rows;
- `manifest.json` is written last: its counts are known only at the end.

Each line is what the resource's GET answers (`ListPublic`, `TaskPublic` without `is_overdue`,
`CommentPublic`, `AttachmentPublic`, `FilterPublic`), and each VTODO is CalDAV's (`render`, the
calendar mapping), so the export has no field mapping of its own. Pages are read one after
another, not in one snapshot: a task changed mid-export appears as one of its states."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from tempfile import SpooledTemporaryFile
from typing import IO, Any
from zipfile import ZIP_DEFLATED, ZIP_STORED, ZipFile, ZipInfo

from icalendar import Calendar
from pydantic import BaseModel

from backend.contracts.saved_filters import FilterPublic
from backend.ical.derived import derived
from backend.models.attachment import AttachmentPublic
from backend.models.notification_settings import NotificationSettingsPublic
from backend.models.sharing import CommentPublic
from backend.models.task import TaskPublic
from backend.models.task_calendar import derived_uid, is_day, zone
from backend.models.task_list import ListPublic
from backend.services.delivery.notification_settings import NotificationSettingsService
from backend.services.tasks.saved_filters import SavedFilterService
from backend.services.transfer.export import ExportService
from backend.services.unit_of_work import UnitOfWork
from backend.storage import ObjectMissing, ObjectStorage

FORMAT = "task-api-export"
VERSION = 1
PAGE = 1000  # rows a read holds
SPOOL_IN_MEMORY = 4 * 1024 * 1024  # a spooled member's bytes kept in memory before a file
PRODUCT = "-//Task API//Export//EN"
MEDIA_TYPE = "application/zip"
COUNTED = ("lists", "tasks", "comments", "attachments", "filters")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Account:
    """Whose export it is, as its manifest names it."""

    id: str
    email: str | None


def file_name(now: datetime) -> str:
    """The archive's name for `Content-Disposition` (and the CLI's default)."""
    return f"tasks-export-{now.astimezone(UTC):%Y-%m-%d}.zip"


class _Sink:
    """Where the zip writes: kept until taken, no `seek` or `tell` (zipfile counts offsets
    itself and writes data descriptors)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _member(name: str, now: datetime, *, compress: bool = True) -> ZipInfo:
    info = ZipInfo(name, date_time=now.astimezone(UTC).timetuple()[:6])
    info.compress_type = ZIP_DEFLATED if compress else ZIP_STORED
    info.external_attr = 0o644 << 16  # a regular file, readable by all on extraction
    return info


def _line(model: BaseModel, **exclude: Any) -> bytes:
    return model.model_dump_json(**exclude).encode() + b"\n"


_NO_OVERDUE = {"exclude": {"is_overdue"}}


def _vtodo(row: Any, zones: dict[str, int]) -> bytes:
    """The task's VTODO as CalDAV serves a task no client wrote (`derived`: `render`'s bytes);
    the zone its DUE names noted in `zones` with its earliest year (`render` adds the zone's
    VTIMEZONE under the same condition, `_add_zone`)."""
    parent = derived_uid(row.parent_id) if row.parent_id is not None else None
    if row.due_date is not None and not is_day(row) and row.time_zone not in ("UTC", "Etc/UTC"):
        year = row.due_date.year
        zones[row.time_zone] = min(year, zones.get(row.time_zone, year))
    return derived(row, row.reminders or (), parent_uid=parent)


def _calendar(zones: dict[str, int]) -> tuple[bytes, bytes]:
    """The VCALENDAR around the VTODOs (what comes before them, and its END), by icalendar."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    for tzid in sorted(zones):
        calendar.add_component(zone(tzid, zones[tzid]))
    text = bytes(calendar.to_ical())
    end = b"END:VCALENDAR\r\n"
    return text.removesuffix(end), end


def _copy(spool: IO[bytes], into: IO[bytes]) -> None:
    spool.seek(0)
    while chunk := spool.read(256 * 1024):
        into.write(chunk)


def _safe_name(name: str) -> str:
    """A member's last part: the stored name is sanitised (no path) already; kept so if not."""
    name = name.replace("/", "_").replace("\\", "_")
    return "_" if name in ("", ".", "..") else name


def archive(
    work: Callable[[], UnitOfWork],
    storage: ObjectStorage,
    account: Account,
    now: datetime,
    *,
    page: int = PAGE,
) -> Iterator[bytes]:
    """The export's zip bytes, in order. `work` opens a new unit of work of the caller's for
    each read (`UnitOfWork.again`); `storage` holds the attachments' bytes."""
    sink = _Sink()
    counts = dict.fromkeys(COUNTED, 0)

    def drained() -> Iterator[bytes]:
        data = sink.take()
        if data:
            yield data

    with (
        ZipFile(sink, "w") as zipped,
        SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as todos,
        SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as attachment_lines,
    ):
        with zipped.open(_member("lists.jsonl", now), "w", force_zip64=True) as member:
            yield from drained()  # the first member's header: bytes before any read
            with work() as unit:
                lists = unit.service(ExportService).lists()
                filters = unit.service(SavedFilterService).all()
                notifications = unit.service(NotificationSettingsService).get()
            for list_row in lists:
                member.write(_line(ListPublic.model_validate(list_row)))
            counts["lists"] = len(lists)
        yield from drained()

        zones: dict[str, int] = {}
        with zipped.open(_member("tasks.jsonl", now), "w", force_zip64=True) as member:
            for rows in _task_pages(work, page):
                for row in rows:
                    member.write(_line(TaskPublic.model_validate(row), **_NO_OVERDUE))
                    todos.write(_vtodo(row, zones))
                counts["tasks"] += len(rows)
                yield from drained()

        with zipped.open(_member("comments.jsonl", now), "w", force_zip64=True) as member:
            for rows in _pages(work, ExportService.comments, page):
                for row in rows:
                    member.write(_line(CommentPublic.model_validate(row)))
                counts["comments"] += len(rows)
                yield from drained()

        for rows in _pages(work, ExportService.attachments, page):
            for row in rows:  # no unit of work open: the bytes move holding no connection
                if (yield from _attachment(zipped, sink, storage, row, now)):
                    attachment_lines.write(_line(AttachmentPublic.model_validate(row)))
                    counts["attachments"] += 1
                yield from drained()
        with zipped.open(_member("attachments.jsonl", now), "w", force_zip64=True) as member:
            _copy(attachment_lines, member)
        yield from drained()

        with zipped.open(_member("filters.jsonl", now), "w", force_zip64=True) as member:
            for filter_row in filters:
                member.write(_line(FilterPublic.model_validate(filter_row)))
            counts["filters"] = len(filters)
        zipped.writestr(_member("notification_settings.json", now), _settings_json(notifications))
        yield from drained()

        with zipped.open(_member("tasks.ics", now), "w", force_zip64=True) as member:
            head, end = _calendar(zones)
            member.write(head)
            _copy(todos, member)
            member.write(end)
        yield from drained()

        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "exported_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "account": {"id": account.id, "email": account.email},
            "counts": counts,
        }
        zipped.writestr(_member("manifest.json", now), json.dumps(manifest, indent=2) + "\n")
    yield from drained()  # the central directory


def _settings_json(settings: NotificationSettingsPublic) -> bytes:
    """The notification settings as their GET answers them (no secret is part of them: the
    confirmation and unsubscribe tokens and push keys are not in the model)."""
    return settings.model_dump_json(indent=2).encode() + b"\n"


def _attachment(
    zipped: ZipFile, sink: _Sink, storage: ObjectStorage, row: Any, now: datetime
) -> Generator[bytes, None, bool]:
    """`attachments/<id>/<file name>` with the stored bytes as they are, yielded as they are
    read (a file up to the per-file maximum is never held whole); False: gone from the storage
    meanwhile (deleted since its row was read), left out."""
    name = f"attachments/{row.id}/{_safe_name(row.filename)}"
    try:
        chunks = storage.open(row.storage_key)
    except ObjectMissing:  # any other storage failure ends the stream: no archive looks whole
        logger.warning("Export: attachment %s has no bytes in the storage; left out", row.id)
        return False
    try:
        with zipped.open(_member(name, now, compress=False), "w", force_zip64=True) as member:
            for chunk in chunks:
                member.write(chunk)
                if data := sink.take():
                    yield data
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # a storage's stream holds a file, or a connection to S3
            close()
    return True


def _pages(
    work: Callable[[], UnitOfWork], read: Callable[[ExportService, int, int], Any], size: int
) -> Iterator[Any]:
    """Keyset pages of `read` (by id), each read in a unit of work of its own."""
    after = 0
    while True:
        with work() as unit:
            rows = read(unit.service(ExportService), after, size)
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        after = rows[-1].id


def _task_pages(work: Callable[[], UnitOfWork], size: int) -> Iterator[Any]:
    """The tasks a level at a time (no parent, then one parent up, ...): a parent before its
    subtasks. A level with no task ends it (none can be deeper)."""
    depth = 0
    while True:
        found = False

        def level(export: ExportService, after: int, limit: int, depth: int = depth) -> Any:
            return export.tasks(depth, after, limit)

        for rows in _pages(work, level, size):
            found = True
            yield rows
        if not found:
            return
        depth += 1
