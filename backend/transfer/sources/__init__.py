"""The readers, one module per source: `read(data, file_name, zone) -> Plan` (raises
`NotThisSource`) and `looks_like(data, file_name) -> bool`. `MODULES` names each source's
module; `reader` imports one on first use; `detect` is `source=auto`; `read` reads a file as
a source."""

from __future__ import annotations

import importlib
import logging
from functools import cache
from types import ModuleType

from backend.transfer.plan import SOURCES, NotThisSource, Plan, Source
from backend.transfer.sources import zips

logger = logging.getLogger(__name__)

MODULES: dict[Source, str] = {
    "task-api": "task_api",
    "todoist": "todoist",
    "ticktick": "ticktick",
    "google-tasks": "google_tasks",
    "ical": "ical",
}


@cache
def reader(source: Source) -> ModuleType:
    """`source`'s reader module, imported on first use."""
    return importlib.import_module(f"{__name__}.{MODULES[source]}")


def detect(
    data: bytes,
    file_name: str,
    *,
    max_members: int | None = None,
    max_expanded: int | None = None,
) -> Source:
    """The source whose reader claims the file (the first, in `SOURCES` order);
    `NotThisSource` when the file is empty or none does. The bounds: a zip's (`zips`)."""
    if not data.strip():
        raise NotThisSource("file", "The file is empty")
    with zips.bounded(max_members, max_expanded):
        for source in SOURCES:
            try:
                claimed = reader(source).looks_like(data, file_name)
            except NotThisSource:
                claimed = False
            except Exception as exc:  # a reader's bug on a hostile file: not this source
                _unexpected(source, exc)
                claimed = False
            if claimed:
                return source
    raise NotThisSource(
        "file",
        "Not a file we can tell apart: a Task API export, a Todoist CSV or backup, a TickTick "
        "backup, Google Takeout's Tasks.json or an iCalendar file of tasks",
    )


def read(
    source: Source,
    data: bytes,
    file_name: str,
    zone: str,
    *,
    max_members: int | None = None,
    max_expanded: int | None = None,
) -> Plan:
    """`data` read as `source`; `NotThisSource` if it is empty or not that source, `ZipTooLarge`
    (a `NotThisSource`) for a zip past the bounds (default: `zips.MAX_MEMBERS`, `MAX_EXPANDED`)."""
    if not data.strip():
        raise NotThisSource("file", "The file is empty")
    with zips.bounded(max_members, max_expanded):
        try:
            plan: Plan = reader(source).read(data, file_name, zone)
        except NotThisSource:
            raise
        except Exception as exc:
            # A reader's bug on a hostile file is the file's 422 (the route) or the import's
            # `failed` (the runner), never a 500 or a runner retrying it as if the database
            # were away; logged (the exception's type, never the file's text) to be fixed.
            _unexpected(source, exc)
            raise NotThisSource("file", "The file could not be read as this source") from None
    return plan


def _unexpected(source: Source, exc: Exception) -> None:
    logger.error("the %s reader failed on a file: %s", source, type(exc).__name__)
