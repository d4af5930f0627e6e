"""Todoist's project CSV (the 2025+ 14-column header, the 15-column one with IS_COLLAPSED,
older headers stopping at DATE_LANG or TIMEZONE) and its backup zip, read into a Plan."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from backend.transfer.plan import NotThisSource, Plan
from backend.transfer.sources import todoist
from tests.transfer.common import by_title, codes, fixture, parents_first, zipped

NOW = datetime(2026, 9, 1, 12, tzinfo=UTC)  # a Tuesday
GROCERIES = "Groceries [6Jf8VQXxpwv56VQ7].csv"


def read(data: bytes, name: str, zone: str = "UTC") -> Plan:
    return todoist.read(data, name, zone, now=NOW)


def test_the_14_column_export() -> None:
    plan = read(fixture("todoist", GROCERIES), GROCERIES)
    assert [(lst.key, lst.name) for lst in plan.lists] == [("6Jf8VQXxpwv56VQ7", "Groceries")]
    tasks = by_title(plan)
    milk = plan.tasks[0]
    assert milk.item == "line 3"
    assert milk.fields == {
        "title": "Buy milk",
        "tags": ["errands", "home"],
        "priority": "high",
        "time_zone": "Pacific/Kiritimati",
        "due_date": date(2026, 10, 9),
        "description": "2 litres",
    }
    assert milk.list_key == "6Jf8VQXxpwv56VQ7"
    assert tasks["Pick the brand"].fields["priority"] == "medium"
    assert tasks["Pick the brand"].parent_key == milk.key
    price = tasks["Check the price"]
    assert price.parent_key == tasks["Pick the brand"].key
    assert price.item == "line 5"  # its description spans lines 5 and 6
    assert price.fields["description"] == "Line one\nline two"
    assert price.fields["priority"] == "low"
    kiritimati = ZoneInfo("Pacific/Kiritimati")
    assert price.fields["due_date"] == datetime(2026, 10, 6, 15, 30, tzinfo=kiritimati)
    assert price.fields["due_date"] == datetime(2026, 10, 6, 1, 30, tzinfo=UTC)
    assert [c.body for c in price.comments] == [
        "Ask at the counter",
        "Receipt receipt.pdf https://files.todoist.com/abc/receipt.pdf",
    ]
    assert len({c.key for c in price.comments}) == 2
    assert plan.lossy[todoist.LOST_FILE].count == 1
    assert [t.order for t in plan.tasks] == sorted(t.order or 0 for t in plan.tasks)
    assert parents_first(plan)


def test_priorities() -> None:
    plan = read(fixture("todoist", GROCERIES), GROCERIES)
    tasks = by_title(plan)
    assert tasks["Water the plants"].fields["priority"] == "none"  # 4
    assert tasks["Renew passport"].fields["priority"] == "none"  # empty
    assert tasks["Clean the garage"].fields["priority"] == "low"  # 3


def test_recurrence_is_read_by_the_quick_add_grammar_in_the_rows_zone() -> None:
    plan = read(fixture("todoist", GROCERIES), GROCERIES)
    water = by_title(plan)["Water the plants"]
    assert water.fields["recurrence"] == "FREQ=WEEKLY;BYDAY=MO"
    # 12:00 UTC on Tuesday 1 September is 01:00 on Tuesday in Pago Pago: the next Monday is
    # the 7th; the day is a day, not an instant
    assert water.fields["time_zone"] == "Pacific/Pago_Pago"
    assert water.fields["due_date"] == date(2026, 9, 7)
    assert plan.lossy[todoist.LOST_RESPONSIBLE].example == "Sam (14781401)"
    assert plan.lossy[todoist.LOST_AUTHOR].count == 7
    assert plan.lossy[todoist.LOST_DEADLINE].example == "2026-12-01"
    assert plan.lossy[todoist.LOST_DURATION].example == "30 minute"


def test_every_bang_is_read_as_every_and_reported() -> None:
    plan = read(fixture("todoist", GROCERIES), GROCERIES)
    renew = by_title(plan)["Renew passport"]
    assert renew.fields["recurrence"] == "FREQ=DAILY;INTERVAL=3"
    assert renew.fields["due_date"] == date(2026, 9, 1)  # today in Kathmandu
    assert "description" not in renew.fields
    assert plan.lossy[todoist.LOST_FROM_COMPLETION].example == "every! 3 days"
    assert todoist.LOST_DATE not in plan.lossy


def test_a_phrase_the_grammar_cannot_read_is_kept_as_text() -> None:
    phrase = "every day at 10am starting Friday for 8 weeks"
    data = f"TYPE,CONTENT,DESCRIPTION,DATE\r\ntask,Stretch,Mornings,{phrase}\r\n".encode()
    plan = read(data, "Health.csv")
    [stretch] = plan.tasks
    assert stretch.fields["description"] == f"Mornings\nTodoist date: {phrase}"
    assert "due_date" not in stretch.fields and "recurrence" not in stretch.fields
    assert plan.lossy[todoist.LOST_DATE].example == phrase


def test_a_year_after_the_day_is_that_years_day() -> None:
    data = b"TYPE,CONTENT,DATE\r\ntask,Vote,Oct 5 2026\r\ntask,Plan,5 Oct 2027\r\n"
    plan = read(data, "Civic.csv")
    assert [t.fields["due_date"] for t in plan.tasks] == [date(2026, 10, 5), date(2027, 10, 5)]
    assert plan.lossy == {}


def test_a_date_in_another_language_is_kept_as_text() -> None:
    plan = read(fixture("todoist", GROCERIES), GROCERIES)
    garage = by_title(plan)["Clean the garage"]
    assert garage.fields["description"] == "Todoist date: Oct 5"
    assert "due_date" not in garage.fields
    assert plan.lossy[todoist.LOST_LANGUAGE].count == 1


def test_a_date_without_a_timezone_is_read_in_the_imports_zone() -> None:
    plan = read(fixture("todoist", GROCERIES), GROCERIES, "Asia/Kathmandu")
    call = by_title(plan)["Call mum"]
    assert call.fields["time_zone"] == "Asia/Kathmandu"
    # tomorrow 5pm in Kathmandu (+05:45), counted from 17:45 there on 1 September
    assert call.fields["due_date"] == datetime(2026, 9, 2, 11, 15, tzinfo=UTC)


def test_sections_tag_the_tasks_under_them() -> None:
    plan = read(fixture("todoist", GROCERIES), GROCERIES)
    tasks = plan.tasks
    assert "tags" not in tasks[1].fields  # before any section
    assert tasks[5].fields["tags"] == ["Weekend"]  # the model lower-cases
    assert tasks[6].fields["tags"] == ["errands", "home", "Weekend"]
    assert "tags" not in tasks[7].fields  # a section name that is no tag
    assert ("line 16", "section_not_a_tag") in codes(plan)


def test_keys_are_what_the_row_says_and_stable() -> None:
    first = read(fixture("todoist", GROCERIES), GROCERIES)
    again = read(fixture("todoist", GROCERIES), GROCERIES)
    assert [t.key for t in first.tasks] == [t.key for t in again.tasks]
    keys = [t.key for t in first.tasks]
    assert len(set(keys)) == len(keys)  # the two "Buy milk" rows differ by occurrence


def test_an_older_header_stopping_at_date_lang() -> None:
    plan = read(fixture("todoist", "Work.csv"), "Work.csv")
    assert [(lst.key, lst.name) for lst in plan.lists] == [("Work", "Work")]
    report, outline, send = plan.tasks
    assert report.fields["due_date"] == date(2026, 11, 2)
    assert report.fields["time_zone"] == "UTC"
    assert outline.parent_key == report.key
    assert send.parent_key is None and send.fields["priority"] == "high"
    assert [t.item for t in plan.tasks] == ["line 2", "line 3", "line 4"]


def test_an_older_header_stopping_at_timezone() -> None:
    name = "Old [2203306141].csv"
    plan = read(fixture("todoist", name), name, "Pacific/Kiritimati")
    (task,) = plan.tasks
    assert plan.lists[0].name == "Old"
    assert task.fields["due_date"] == date(2026, 10, 9)
    assert task.fields["time_zone"] == "Pacific/Pago_Pago"


def test_the_15_column_header_and_the_inbox() -> None:
    plan = read(fixture("todoist", "Inbox.csv"), "Inbox.csv")
    assert plan.lists == []
    trip, flights = plan.tasks
    assert trip.list_key is None and flights.parent_key == trip.key
    assert trip.fields["due_date"] == datetime(2026, 10, 6, 3, 15, tzinfo=UTC)  # 09:00 +05:45
    assert trip.fields["priority"] == "medium"


def test_columns_in_any_order_and_unknown_ones_ignored() -> None:
    data = b"EXTRA,CONTENT,TYPE\r\nx,Only a title,task\r\ny,Second,task\r\n"
    plan = read(data, "Mine.csv")
    assert [t.fields for t in plan.tasks] == [
        {"title": "Only a title", "priority": "none", "time_zone": "UTC"},
        {"title": "Second", "priority": "none", "time_zone": "UTC"},
    ]


def test_a_backup_zip() -> None:
    members = {
        name: fixture("todoist", name)
        for name in (GROCERIES, "Inbox.csv", "Work.csv", "Old [2203306141].csv")
    }
    plan = read(zipped(members), "2026-09-01 Todoist backup.zip")
    assert [(lst.key, lst.name) for lst in plan.lists] == [
        ("6Jf8VQXxpwv56VQ7", "Groceries"),
        ("Work", "Work"),
        ("2203306141", "Old"),
    ]
    inbox = [t for t in plan.tasks if t.list_key is None]
    assert [t.fields["title"] for t in inbox] == ["Plan the trip", "Book flights"]
    assert inbox[0].item == "Inbox.csv: line 3"
    assert by_title(plan)["Old style task"].list_key == "2203306141"
    # the same row in two files is two tasks
    assert len({t.key for t in plan.tasks}) == len(plan.tasks)
    assert parents_first(plan)


def test_list_names_from_file_names() -> None:
    assert todoist.list_of("Groceries [2203306141].csv") == ("2203306141", "Groceries")
    assert todoist.list_of("Side project [6Jf8VQXxpwv56VQ7].csv") == (
        "6Jf8VQXxpwv56VQ7",
        "Side project",
    )
    assert todoist.list_of("Inbox.csv") is None
    assert todoist.list_of("backup/Home.csv") == ("Home", "Home")


def test_notes_without_a_task_and_unknown_rows_are_warned_of() -> None:
    data = b"TYPE,CONTENT\nnote,orphan\ntask,A\nweird,B\n"
    plan = read(data, "x.csv")
    assert codes(plan) == [("line 2", "note_without_task"), ("line 4", "unknown_type")]
    assert plan.skipped == 2 and len(plan.tasks) == 1


@pytest.mark.parametrize(
    ("data", "name", "where"),
    [
        (b"", "a.csv", "file"),
        (b"\r\n\r\n", "a.csv", "file"),
        (b"Title,Notes\r\nx,y\r\n", "a.csv", "line 1"),
        (b"\n\nFOO,BAR\n", "a.csv", "line 3"),
        (b"TYPE,CONTENT\n\xff\xfe", "a.csv", "line 2"),
    ],
)
def test_not_a_todoist_csv(data: bytes, name: str, where: str) -> None:
    with pytest.raises(NotThisSource) as refused:
        read(data, name)
    assert refused.value.where == where


def test_a_zip_member_that_is_not_a_todoist_csv_is_named() -> None:
    data = zipped({"Good.csv": b"TYPE,CONTENT\ntask,x\n", "Bad [1].csv": b"a,b\n1,2\n"})
    with pytest.raises(NotThisSource) as refused:
        read(data, "backup.zip")
    assert refused.value.where == "Bad [1].csv: line 1"
    with pytest.raises(NotThisSource) as empty:
        read(zipped({"notes.txt": b"x"}), "backup.zip")
    assert empty.value.where == "file"


def test_looks_like() -> None:
    assert todoist.looks_like(fixture("todoist", GROCERIES), GROCERIES)
    assert todoist.looks_like(zipped({"Inbox.csv": fixture("todoist", "Inbox.csv")}), "b.zip")
    assert not todoist.looks_like(fixture("ticktick", "TickTick-backup-2026-02-27.csv"), "t.csv")
    assert not todoist.looks_like(zipped({"Takeout/Tasks/Tasks.json": b"{}"}), "t.zip")
