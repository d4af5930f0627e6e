"""iCalendar files of VTODOs (Apple Reminders, Thunderbird, our own tasks.ics) read as CalDAV
reads each object (backend/ical/vtodo.py), into a Plan."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from backend.transfer.plan import NotThisSource
from backend.transfer.sources import ical
from tests.transfer.common import FAR_ZONES, by_title, codes, fixture, parents_first

APPLE = fixture("ical", "apple-reminders.ics")
THUNDERBIRD = fixture("ical", "Thunderbird-Tasks.ics")
BILL = "4C1E3A2B-7F1D-4E5A-9C3B-2A1F0E9D8C7B"


@pytest.mark.parametrize("zone", FAR_ZONES)
def test_apple_reminders(zone: str) -> None:
    plan = ical.read(APPLE, "Reminders.ics", zone)
    assert [(lst.key, lst.name) for lst in plan.lists] == [("Reminders", "Reminders")]
    bill, meter, card = plan.tasks
    assert bill.key == bill.item == BILL
    assert bill.list_key == "Reminders"
    assert bill.fields["title"] == "Pay the electricity bill"
    assert bill.fields["description"] == "Account 1234\nDirect debit failed"
    assert bill.fields["priority"] == "high"  # PRIORITY:1
    # DUE;TZID=Asia/Kathmandu 09:00 (+05:45): that instant, in that zone
    assert bill.fields["due_date"] == datetime(2026, 10, 6, 3, 15, tzinfo=UTC)
    assert bill.fields["time_zone"] == "Asia/Kathmandu"
    assert bill.fields["recurrence"] == "FREQ=MONTHLY;BYMONTHDAY=6"
    assert bill.fields["reminders"] == [{"at": datetime(2026, 10, 6, 2, 45, tzinfo=UTC)}]
    assert bill.order == 725000000.0
    assert meter.parent_key == BILL
    assert meter.fields["completed"] is True
    assert meter.fields["priority"] == "low"  # PRIORITY:9
    assert meter.completed_at == datetime(2026, 10, 2, 10, 15, tzinfo=UTC)
    # DUE;VALUE=DATE: the day, whatever the import's zone
    assert card.fields["due_date"] == date(2026, 12, 31)
    assert card.fields["time_zone"] == zone
    assert card.fields["tags"] == ["family", "cards"]
    assert card.fields["priority"] == "medium"  # PRIORITY:5
    assert plan.warnings == [] and plan.lossy == {}


def test_thunderbird() -> None:
    plan = ical.read(THUNDERBIRD, "Thunderbird-Tasks.ics", "UTC")
    assert [lst.name for lst in plan.lists] == ["Thunderbird-Tasks"]  # no X-WR-CALNAME
    tasks = by_title(plan)
    garden = tasks["Water the garden"]
    assert garden.fields["due_date"] == datetime(2026, 10, 6, 5, 30, tzinfo=UTC)  # -11:00
    assert garden.fields["time_zone"] == "Pacific/Pago_Pago"
    assert garden.fields["recurrence"] == "FREQ=WEEKLY;BYDAY=MO"
    assert garden.fields["reminders"] == [{"minutes_before_due": 15}]  # RELATED=END
    assert garden.fields["tags"] == ["garden"]
    plumber = tasks["Call the plumber"]
    assert plumber.fields["due_date"] == datetime(2026, 10, 6, 18, tzinfo=UTC)  # +14:00
    assert plumber.fields["priority"] == "high"  # PRIORITY:3
    # the completed occurrence (RECURRENCE-ID) rides with its series, counted as lossy
    assert plan.lossy[ical.LOST_OVERRIDES].count == 1
    # the VEVENT is not a task; the VTODO CalDAV would refuse is skipped, named by its UID
    assert plan.lossy[ical.LOST_EVENTS].count == 1
    assert codes(plan) == [("c5f4e3d2-7b8c-4d9e-0f1a-2b3c4d5e6f70", "refused")]
    assert plan.skipped == 1
    assert len(plan.tasks) == 2


def test_our_own_tasks_ics() -> None:
    plan = ical.read(fixture("ical", "tasks.ics"), "tasks.ics", "Pacific/Kiritimati")
    taxes, receipts = plan.tasks
    assert plan.lists[0].name == "tasks"
    assert taxes.key == "task-41@task-api"
    assert taxes.fields["due_date"] == date(2026, 10, 15)
    assert taxes.fields["recurrence"] == "FREQ=MONTHLY;INTERVAL=3"
    assert taxes.fields["reminders"] == [{"minutes_before_due": 0}]  # 09:00 on the day
    assert receipts.parent_key == "task-41@task-api"
    assert parents_first(plan)


def test_a_child_before_its_parent_and_several_calendars() -> None:
    data = (
        b"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nX-WR-CALNAME:Work\n"
        b"BEGIN:VTODO\nUID:child\nSUMMARY:Child\nRELATED-TO:parent\nEND:VTODO\n"
        b"BEGIN:VTODO\nUID:parent\nSUMMARY:Parent\nEND:VTODO\n"
        b"END:VCALENDAR\n"
        b"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nX-WR-CALNAME:Home\n"
        b"BEGIN:VTODO\nUID:home-1\nSUMMARY:Sweep\nEND:VTODO\n"
        b"END:VCALENDAR\n"
    )
    plan = ical.read(data, "export.ics", "UTC")
    assert [t.key for t in plan.tasks] == ["parent", "child", "home-1"]
    assert plan.tasks[1].parent_key == "parent"
    assert [(t.key, t.list_key) for t in plan.tasks][2] == ("home-1", "Home")
    assert [lst.name for lst in plan.lists] == ["Work", "Home"]


def test_a_zone_of_the_files_own_is_carried_into_each_object() -> None:
    zone = (
        "BEGIN:VTIMEZONE\r\nTZID:{}\r\nBEGIN:STANDARD\r\nDTSTART:19860101T000000\r\n"
        "TZOFFSETFROM:{}\r\nTZOFFSETTO:{}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    data = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook//EN\r\n"
        + zone.format("Nepal Standard Time", "+0545", "+0545")
        + zone.format("Line Islands Standard Time", "+1400", "+1400")
        + "BEGIN:VTODO\r\nUID:x1\r\nSUMMARY:Custom zone\r\n"
        'DUE;TZID="Nepal Standard Time":20261006T090000\r\nEND:VTODO\r\n'
        "BEGIN:VTODO\r\nUID:x2\r\nSUMMARY:Other zone\r\n"
        "DUE;TZID=Line Islands Standard Time:20261006T090000\r\nEND:VTODO\r\n"
        "END:VCALENDAR\r\n"
    ).encode()
    nepal, islands = ical.read(data, "outlook.ics", "UTC").tasks
    assert nepal.fields["due_date"] == datetime(2026, 10, 6, 3, 15, tzinfo=UTC)
    assert islands.fields["due_date"] == datetime(2026, 10, 5, 19, tzinfo=UTC)


def test_a_folded_uid_and_a_vtodo_without_one() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
        b"BEGIN:VTODO\r\nUID:long-\r\n uid\r\nSUMMARY:Folded\r\nEND:VTODO\r\n"
        b"BEGIN:VTODO\r\nSUMMARY:No uid\r\nEND:VTODO\r\n"
        b"END:VCALENDAR\r\n"
    )
    plan = ical.read(data, "x.ics", "UTC")
    assert [t.key for t in plan.tasks] == ["long-uid"]
    assert codes(plan) == [("VTODO 2", "no_uid")]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"", "file"),
        (b"hello\r\n", "line 1"),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:e\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "file"),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\n", "file"),
    ],
)
def test_not_a_calendar_of_tasks(data: bytes, where: str) -> None:
    with pytest.raises(NotThisSource) as refused:
        ical.read(data, "x.ics", "UTC")
    assert refused.value.where == where


def test_looks_like() -> None:
    assert ical.looks_like(APPLE, "Reminders.ics")
    assert ical.looks_like(THUNDERBIRD, "x.ics")
    events = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    assert not ical.looks_like(events, "x.ics")
    late = events.replace(b"END:VCALENDAR", b"X-PAD:" + b"x" * 70000 + b"\r\nBEGIN:VTODO\r\n")
    assert ical.looks_like(late, "x.ics")
    assert not ical.looks_like(fixture("google", "Tasks.json"), "Tasks.json")
