"""The readers, one module per source (`read(data, file_name, zone) -> Plan`, `looks_like(data,
file_name)`), and `detect` for `source=auto`. The readers' branch brings the third-party
readers; each is one line of `READERS`."""

from __future__ import annotations

from types import ModuleType

from backend.transfer.plan import NotThisSource, Plan, Source
from backend.transfer.sources import task_api

READERS: dict[Source, ModuleType] = {"task-api": task_api}


def detect(data: bytes, file_name: str) -> Source:
    """The source `data` is, told from its content; `NotThisSource` when none can tell."""
    if not data:
        raise NotThisSource("file", "The file is empty")
    for source, reader in READERS.items():
        if reader.looks_like(data, file_name):
            return source
    raise NotThisSource("file", "Not a file of any source this server reads")


def read(source: Source, data: bytes, file_name: str, zone: str) -> Plan:
    if not data:
        raise NotThisSource("file", "The file is empty")
    plan: Plan = READERS[source].read(data, file_name, zone)
    return plan
