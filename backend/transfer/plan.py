"""What a source file holds, read into our terms before anything is written: the lists, the
tasks (parents before their subtasks), their comments and attachments, and what the reading
kept only partly (`lossy`) or could not use (`warnings`). A reader (`sources/`) builds a `Plan`
from bytes alone, with no database; the importer validates each task's fields as `POST
/api/tasks` would and writes it, keyed by `(source, key)` so a re-run adds nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_args

from backend.models.imports import ImportSource

Source = ImportSource
SOURCES: tuple[Source, ...] = get_args(Source)


class NotThisSource(ValueError):
    """The file is empty, or not the source it claims: `where` names the line or member."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


class ZipTooLarge(NotThisSource):
    """A zip with more members, or members that would expand to more bytes, than the import
    allows: refused from its central directory, before anything is expanded."""


@dataclass(frozen=True)
class ItemWarning:
    """One thing the reading could not take as it is: `item` is where it is in the file (a
    CSV line number as an editor shows it, a JSON path, a VTODO's UID)."""

    item: str
    field: str | None
    code: str
    message: str


@dataclass
class Lossy:
    """One kind of thing the source has that we keep only partly or not at all."""

    what: str
    count: int = 0
    example: str | None = None


@dataclass(frozen=True)
class PlannedList:
    key: str  # the source's id of the list (or its name when it has none)
    name: str
    # Its other fields as `POST /api/lists` takes them (our archive's: `color`), not yet
    # validated; where it is in the file.
    fields: dict[str, Any] = field(default_factory=dict)
    item: str = ""


@dataclass(frozen=True)
class PlannedComment:
    key: str
    body: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class PlannedAttachment:
    key: str
    file_name: str
    content_type: str | None
    data: bytes


@dataclass
class PlannedTask:
    """A task as `POST /api/tasks` would take it (`fields`: its body's names and values, not yet
    validated), where it goes (`list_key`, `parent_key`: other items' keys) and its children."""

    key: str  # the source's id of the item, or what the row says when it has none
    item: str  # where it is in the file, as `ItemWarning.item`
    fields: dict[str, Any]
    list_key: str | None = None
    parent_key: str | None = None
    order: float | None = None  # its place among its siblings (lower first)
    completed_at: datetime | None = None  # with `fields["completed"]`: when
    comments: list[PlannedComment] = field(default_factory=list)
    attachments: list[PlannedAttachment] = field(default_factory=list)


@dataclass
class Plan:
    source: Source
    lists: list[PlannedList] = field(default_factory=list)
    tasks: list[PlannedTask] = field(default_factory=list)  # a parent before its subtasks
    filters: list[dict[str, Any]] = field(default_factory=list)  # our archive's saved filters
    warnings: list[ItemWarning] = field(default_factory=list)
    lossy: dict[str, Lossy] = field(default_factory=dict)
    skipped: int = 0

    def warn(self, item: str, field_: str | None, code: str, message: str) -> None:
        self.warnings.append(ItemWarning(item, field_, code, message))

    def lose(self, what: str, example: str | None = None) -> None:
        """Count one more `what` kept only partly (the first example is kept)."""
        entry = self.lossy.setdefault(what, Lossy(what))
        entry.count += 1
        if entry.example is None and example is not None:
            entry.example = example[:200]


# A reader, one module per source in `sources/`: `read(data, file_name, zone) -> Plan` (raises
# `NotThisSource`), and `looks_like(data, file_name) -> bool` for `source=auto`. `zone` is the
# IANA zone for what the file carries no zone for.
