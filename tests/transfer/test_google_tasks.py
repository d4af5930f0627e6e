"""Google Takeout's Tasks.json, alone and in the Takeout zip, read into a Plan."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from backend.transfer.plan import NotThisSource
from backend.transfer.sources import google_tasks
from tests.transfer.common import FAR_ZONES, by_title, fixture, parents_first, zipped

DATA = fixture("google", "Tasks.json")


@pytest.mark.parametrize("zone", FAR_ZONES)
def test_lists_tasks_and_days(zone: str) -> None:
    plan = google_tasks.read(DATA, "Tasks.json", zone)
    assert [(lst.key, lst.name) for lst in plan.lists] == [
        ("MDE3NjA4NzYxMDQ3MTg0NjYyNjI6MDow", "My Tasks"),
        ("Y2hvcmVzX2xpc3Q", "Chores"),
    ]
    renew = by_title(plan)["Renew the car insurance"]
    assert renew.key == "cFRfa2xQeEhOQzZRbkdUVQ"
    assert renew.item == "items[0].items[0]"
    assert renew.list_key == "MDE3NjA4NzYxMDQ3MTg0NjYyNjI6MDow"
    assert renew.fields == {
        "title": "Renew the car insurance",
        "time_zone": zone,
        "description": "Policy 4471-B\nCompare two quotes first",
        "due_date": date(2026, 10, 5),  # the day, whatever the zone
    }
    assert by_title(plan)["Sweep the porch"].fields["due_date"] == date(2026, 12, 31)


def test_completed_subtasks_and_position_order() -> None:
    plan = google_tasks.read(DATA, "Tasks.json", "UTC")
    tasks = by_title(plan)
    broker = tasks["Ask the broker"]
    assert broker.fields["completed"] is True
    assert broker.completed_at == datetime(2026, 10, 1, 9, tzinfo=UTC)
    assert broker.parent_key == "cFRfa2xQeEhOQzZRbkdUVQ"
    assert broker.item == "items[0].items[1]"
    assert parents_first(plan)
    # position "...0" before "...1" in the list
    assert (tasks["Book the dentist"].order or 0) < (tasks["Renew the car insurance"].order or 0)
    assert [t.fields["title"] for t in plan.tasks if t.list_key == plan.lists[0].key] == [
        "Book the dentist",
        "Renew the car insurance",
        "Ask the broker",
    ]


def test_deleted_skipped_links_assignments_and_hidden_lossy() -> None:
    plan = google_tasks.read(DATA, "Tasks.json", "UTC")
    assert "Something deleted" not in by_title(plan)
    assert plan.skipped == 1
    assert plan.lossy[google_tasks.LOST_LINKS].count == 1
    assert plan.lossy[google_tasks.LOST_ASSIGNMENT].count == 1
    assert plan.lossy[google_tasks.LOST_HIDDEN].example == "Ask the broker"


def test_the_takeout_zip() -> None:
    data = zipped(
        {
            "Takeout/archive_browser.html": b"<html></html>",
            "Takeout/Tasks/Tasks.json": DATA,
            "Takeout/Mail/All mail.mbox": b"From x\n",
        }
    )
    assert google_tasks.looks_like(data, "takeout-20261002T071240Z-001.zip")
    plan = google_tasks.read(data, "takeout-20261002T071240Z-001.zip", "UTC")
    assert len(plan.tasks) == 4
    other = zipped({"export/My Tasks.json": DATA})
    assert len(google_tasks.read(other, "t.zip", "UTC").tasks) == 4


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"", "file"),
        (b'{\n  "kind": \n', "line 3"),
        (b'{"kind": "calendar#events", "items": []}', "file"),
        (b'{"kind": "tasks#taskLists"}', "file"),
        (b"[1, 2]", "file"),
    ],
)
def test_not_a_takeout_file(data: bytes, where: str) -> None:
    with pytest.raises(NotThisSource) as refused:
        google_tasks.read(data, "Tasks.json", "UTC")
    assert refused.value.where == where


def test_a_zip_without_tasks_or_with_broken_json_names_the_member() -> None:
    with pytest.raises(NotThisSource) as refused:
        google_tasks.read(zipped({"Takeout/Mail/x.mbox": b"x"}), "t.zip", "UTC")
    assert refused.value.where == "file"
    with pytest.raises(NotThisSource) as broken:
        google_tasks.read(zipped({"Takeout/Tasks/Tasks.json": b"{"}), "t.zip", "UTC")
    assert broken.value.where == "Takeout/Tasks/Tasks.json: line 1"


def test_looks_like() -> None:
    assert google_tasks.looks_like(DATA, "Tasks.json")
    assert not google_tasks.looks_like(b'{"kind": "other"}', "x.json")
    assert not google_tasks.looks_like(fixture("todoist", "Work.csv"), "Work.csv")
