"""TickTick's backup CSV: its BOM and preamble (a quoted `Status` cell spanning lines) before
the header, the 24-column header of export version 7.1, read into a Plan."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from backend.transfer.plan import NotThisSource, Plan
from backend.transfer.sources import ticktick
from tests.transfer.common import by_title, codes, fixture, parents_first

NAME = "TickTick-backup-2026-02-27.csv"


def plan(zone: str = "UTC") -> Plan:
    return ticktick.read(fixture("ticktick", NAME), NAME, zone)


def test_the_preamble_is_skipped_and_lines_are_the_editors() -> None:
    read = plan()
    # BOM + "Date", "Version", a 4-line "Status" cell: the header is line 7
    assert by_title(read)["Fix the tap washer"].item == "line 8"
    assert by_title(read)["Call the bank"].item == "line 17"
    assert [(lst.key, lst.name) for lst in read.lists] == [
        ("Home", "Home"),
        ("Errands", "Errands"),
        ("Inbox", "Inbox"),
    ]


def test_an_instant_with_its_rule_reminders_tags_and_priority() -> None:
    tap = by_title(plan())["Fix the tap"]
    assert tap.key == "65f0c0a1e4b0a1b2c3d4e5f1"
    assert tap.list_key == "Home"
    assert tap.fields == {
        "title": "Fix the tap",
        "description": "Kitchen sink\ndrips at night",
        "tags": ["diy", "home"],
        "time_zone": "Pacific/Kiritimati",
        "due_date": datetime(2026, 2, 27, 10, tzinfo=UTC),
        "recurrence": "FREQ=WEEKLY;INTERVAL=1;BYDAY=FR",
        "reminders": [{"minutes_before_due": 15}, {"minutes_before_due": 0}],
        "priority": "high",
    }
    assert tap.order == 1099511627776.0


def test_an_all_day_due_is_its_day_in_the_tasks_zone() -> None:
    rent = by_title(plan("Pacific/Pago_Pago"))["Pay rent"]
    # 2026-02-28T10:00Z is midnight of 1 March in Kiritimati (+14)
    assert rent.fields["due_date"] == date(2026, 3, 1)
    assert rent.fields["time_zone"] == "Pacific/Kiritimati"
    assert rent.fields["recurrence"] == "FREQ=MONTHLY;BYMONTHDAY=1"
    assert rent.fields["priority"] == "medium"
    # PT9H: 09:00 that day (the anchor a day's reminder counts back from); -P1DT15H: 09:00
    # two days before
    assert rent.fields["reminders"] == [{"minutes_before_due": 0}, {"minutes_before_due": 2880}]


def test_a_space_separated_time_is_on_the_tasks_clock_and_archived_is_completed() -> None:
    books = by_title(plan())["Return library books"]
    assert books.fields["due_date"] == datetime(2026, 2, 28, 1, 59, 52, tzinfo=UTC)  # -11:00
    assert books.fields["completed"] is True
    assert books.completed_at == datetime(2026, 2, 28, 3, tzinfo=UTC)
    parcel = by_title(plan())["Posted parcel"]
    assert parcel.fields["completed"] is True
    assert parcel.completed_at == datetime(2018, 12, 11, 23, tzinfo=UTC)
    assert "completed" not in by_title(plan())["Call the bank"].fields


def test_priorities() -> None:
    tasks = by_title(plan())
    assert tasks["Fix the tap"].fields["priority"] == "high"  # 5
    assert tasks["Pay rent"].fields["priority"] == "medium"  # 3
    assert tasks["Call the bank"].fields["priority"] == "low"  # 1
    assert tasks["Posted parcel"].fields["priority"] == "none"  # 0


def test_an_instant_reminder_a_day_before() -> None:
    bank = by_title(plan())["Call the bank"]
    assert bank.fields["reminders"] == [{"minutes_before_due": 1440}]
    assert bank.fields["due_date"] == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_subtasks_a_child_listed_first_a_missing_parent_and_a_cycle() -> None:
    read = plan()
    tasks = by_title(read)
    assert tasks["Fix the tap washer"].parent_key == "65f0c0a1e4b0a1b2c3d4e5f1"
    assert parents_first(read)
    titles = [t.fields["title"] for t in read.tasks]
    assert titles.index("Fix the tap") < titles.index("Fix the tap washer")
    assert tasks["Orphan subtask"].parent_key is None
    assert tasks["Cycle A"].parent_key is None
    assert tasks["Cycle B"].parent_key == "65f0c0a1e4b0a1b2c3d4e5f7"
    assert codes(read) == [("line 14", "parent_missing"), ("line 15", "parent_cycle")]


def test_folders_and_start_dates_are_lossy() -> None:
    read = plan()
    assert read.lossy[ticktick.LOST_FOLDER].count == 2
    assert read.lossy[ticktick.LOST_FOLDER].example == "Personal"
    assert read.lossy[ticktick.LOST_START].count == 1


def test_checklists_and_kanban_columns_are_lossy() -> None:
    data = (
        b"List Name,Title,Kind,Content,Is Check list,Column Name,taskId\n"
        b'Trip,Pack,CHECKLIST,"\xe2\x96\xabPassport\n\xe2\x96\xabCharger",Y,Doing,c1\n'
    )
    read = ticktick.read(data, "x.csv", "UTC")
    assert read.tasks[0].fields["description"] == "\u25abPassport\n\u25abCharger"
    assert read.lossy[ticktick.LOST_CHECKLIST].example == "Pack"
    assert read.lossy[ticktick.LOST_COLUMN].example == "Doing"


def test_an_older_export_without_preamble_or_kind() -> None:
    data = (
        b"Folder Name,List Name,Title,Tags,Content,Is Check list,Start Date,Due Date,Reminder,"
        b"Repeat,Priority,Status,Created Time,Completed Time,Order,Timezone,Is All Day,"
        b"Is Floating,Column Name,Column Order,View Mode,taskId,parentId\n"
        b",Inbox,Plain,,,N,,,,,0,0,,,0,,,,,,,,\n"
    )
    (task,) = ticktick.read(data, "old.csv", "Asia/Kathmandu").tasks
    assert task.fields == {"title": "Plain", "time_zone": "Asia/Kathmandu", "priority": "none"}
    assert task.key == "line 2"


def test_bad_values_are_warned_of() -> None:
    data = (
        b"List Name,Title,Due Date,Reminder,Priority,Status,Timezone,taskId\n"
        b"L,A,yesterday,-PT5M,9,7,Mars/Olympus,a1\n"
    )
    read = ticktick.read(data, "x.csv", "UTC")
    assert [w.code for w in read.warnings] == [
        "unknown_zone",
        "invalid_date",
        "reminder_without_due",
        "invalid_priority",
        "invalid_status",
    ]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"", "file"),
        (b"\xef\xbb\xbf", "file"),
        (b'"Date: 2026-02-27+0000"\n"Version: 7.1"\nnothing,else\n', "file"),
        (b"TYPE,CONTENT\ntask,x\n", "file"),
        (b"Title,Due Date\nx,2026-01-01\n", "file"),
    ],
)
def test_not_a_ticktick_backup(data: bytes, where: str) -> None:
    with pytest.raises(NotThisSource) as refused:
        ticktick.read(data, "x.csv", "UTC")
    assert refused.value.where == where


def test_looks_like() -> None:
    assert ticktick.looks_like(fixture("ticktick", NAME), NAME)
    assert not ticktick.looks_like(fixture("todoist", "Work.csv"), "Work.csv")
    assert not ticktick.looks_like(fixture("google", "Tasks.json"), "Tasks.json")
