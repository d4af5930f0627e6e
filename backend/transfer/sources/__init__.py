"""The readers, one module per source: `read(data, file_name, zone) -> Plan` (raises
`NotThisSource`) and `looks_like(data, file_name) -> bool`. `READERS` maps each source to its
module (imported on first use); `detect` is `source=auto`; `read` reads a file as a source."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType

from backend.transfer.plan import SOURCES, NotThisSource, Plan, Source
from backend.transfer.sources import zips

MODULES: dict[Source, str] = {
    "task-api": "task_api",
    "todoist": "todoist",
    "ticktick": "ticktick",
    "google-tasks": "google_tasks",
    "ical": "ical",
}


class _Readers(Mapping[Source, ModuleType]):
    """Each source's reader module, imported on first use."""

    def __init__(self) -> None:
        self._loaded: dict[Source, ModuleType] = {}

    def __getitem__(self, source: Source) -> ModuleType:
        if source not in self._loaded:
            name = MODULES[source]
            self._loaded[source] = importlib.import_module(f"{__name__}.{name}")
        return self._loaded[source]

    def __iter__(self) -> Iterator[Source]:
        return iter(MODULES)

    def __len__(self) -> int:
        return len(MODULES)


READERS: Mapping[Source, ModuleType] = _Readers()


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
            if READERS[source].looks_like(data, file_name):
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
        plan: Plan = READERS[source].read(data, file_name, zone)
    return plan
