"""The registry: `source=auto` tells each file from the others, and `read` reads by source."""

from __future__ import annotations

import pytest

from backend.transfer import sources
from backend.transfer.plan import SOURCES, NotThisSource
from tests.transfer.common import fixture, zipped

CASES = [
    ("todoist", fixture("todoist", "Groceries [6Jf8VQXxpwv56VQ7].csv"), "Groceries.csv"),
    ("todoist", fixture("todoist", "Work.csv"), "Work.csv"),
    ("todoist", zipped({"Inbox.csv": fixture("todoist", "Inbox.csv")}), "backup.zip"),
    ("ticktick", fixture("ticktick", "TickTick-backup-2026-02-27.csv"), "backup.csv"),
    ("google-tasks", fixture("google", "Tasks.json"), "Tasks.json"),
    (
        "google-tasks",
        zipped({"Takeout/Tasks/Tasks.json": fixture("google", "Tasks.json")}),
        "takeout.zip",
    ),
    ("ical", fixture("ical", "apple-reminders.ics"), "Reminders.ics"),
    ("ical", fixture("ical", "Thunderbird-Tasks.ics"), "tasks.ics"),
]


@pytest.mark.parametrize(("source", "data", "name"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_detect_and_read(source: str, data: bytes, name: str) -> None:
    assert sources.detect(data, name) == source
    plan = sources.read(sources.detect(data, name), data, name, "Asia/Kathmandu")
    assert plan.source == source
    assert plan.tasks


def test_every_source_has_a_reader() -> None:
    assert tuple(sources.MODULES) == SOURCES
    assert {sources.reader(source).__name__ for source in SOURCES} == {
        f"backend.transfer.sources.{name}" for name in sources.MODULES.values()
    }


@pytest.mark.parametrize(
    "data", [b"", b"  \n", b"just some text\n", b'{"kind": "x"}', zipped({"a.txt": b"x"})]
)
def test_nothing_claims_it(data: bytes) -> None:
    with pytest.raises(NotThisSource) as refused:
        sources.detect(data, "upload")
    assert refused.value.where == "file"


def test_read_refuses_an_empty_file_or_another_source() -> None:
    with pytest.raises(NotThisSource):
        sources.read("ical", b"", "x.ics", "UTC")
    with pytest.raises(NotThisSource) as refused:
        sources.read("todoist", fixture("google", "Tasks.json"), "Tasks.json", "UTC")
    assert refused.value.where == "line 1"
