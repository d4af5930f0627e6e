"""The VTODO mapping (backend/ical/vtodo.py; specs/caldav.md): real clients' objects read into
the REST fields, a task merged back into the kept object (what we do not model comes back byte
for byte), each refusal a `CalendarObjectRefused`, and every body read back by icalendar's own
parser. The rows here are plain values with a task row's attributes; the same merge over rows
the service wrote is in test_recurrence_forms.py."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from backend.ical import vtodo
from backend.ical.vtodo import (
    MAX_OBJECT_BYTES,
    FieldRefused,
    NotATodo,
    ObjectTooLarge,
    parse,
    render,
)
from backend.models import Priority, TaskUpdate
from backend.models.task import due_value
from backend.models.task_calendar import (
    CalendarObjectRefused,
    InvalidTodoObject,
    MalformedCalendar,
    UnsupportedRecurrence,
    rule_key,
)
from backend.recurrence import day_of, day_start

FIXTURES = Path(__file__).parent / "fixtures"
CLIENTS = sorted(p.name for p in FIXTURES.glob("*.ics"))
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# The lines a merge always writes itself: the stamps, and the reader's own alarms.
_OURS = re.compile(r"^(DTSTAMP|LAST-MODIFIED)[:;]")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def row(**values: Any) -> SimpleNamespace:
    """A task row's attributes (TaskRow), as the service returns them."""
    base: dict[str, Any] = {
        "id": 42,
        "title": "A task",
        "description": None,
        "completed": False,
        "completed_at": None,
        "priority": Priority.none,
        "due_date": None,
        "all_day": False,
        "tags": [],
        "recurrence": None,
        "time_zone": "UTC",
        "series_start": None,
        "next_due_date": None,
        "position": 65536,
        "parent_id": None,
        "reminders": [],
        "created_at": NOW,
        "updated_at": NOW,
        "version": 1,
    }
    base.update(values)
    return SimpleNamespace(**base)


def stored_as(parsed: vtodo.ParsedTodo, **values: Any) -> SimpleNamespace:
    """The row the service would store for `parsed` (its fields as written), then `values`."""
    fields = parsed.update()
    zone = str(values.get("time_zone") or fields.time_zone or "UTC")
    due = fields.due_date
    all_day = due is not None and not isinstance(due, datetime)  # a day: its start, stored
    if all_day:
        due = day_start(due, zone)
    stored: dict[str, Any] = {
        "title": fields.title,
        "description": fields.description,
        "completed": fields.completed,
        "completed_at": NOW if fields.completed else None,
        "priority": fields.priority,
        "due_date": due,
        "all_day": all_day,
        "tags": list(fields.tags),
        "recurrence": fields.recurrence,
        "time_zone": str(fields.time_zone or "UTC"),
        "series_start": due if fields.recurrence else None,
        "position": parsed.sort_order if parsed.sort_order is not None else 65536,
    }
    return row(**{**stored, **values})


def unfolded(body: bytes) -> list[str]:
    return body.decode().replace("\r\n ", "").replace("\r\n\t", "").split("\r\n")


def raw_lines(body: bytes) -> list[str]:
    """The physical lines, folds kept apart (byte-for-byte comparisons)."""
    return body.decode().split("\r\n")


def todo_of(body: bytes) -> Any:
    calendar = Calendar.from_ical(body)
    [todo] = [t for t in calendar.walk("VTODO") if t.get("RECURRENCE-ID") is None]
    return todo


# --- Reading real clients' objects -----------------------------------------------------------


def test_apple_reminders() -> None:
    parsed = parse(fixture("apple_reminders.ics"))
    assert parsed.uid == "8D3A5C1E-2F7B-4B9A-9C61-3E2D7F0A4B11"
    assert parsed.fields == {
        "title": "Pick up the dry cleaning",
        "description": "Ticket 4471, blue coat",
        "completed": False,
        "priority": "high",
        "due_date": datetime(2026, 12, 3, 16, 0, tzinfo=UTC),  # 17:00 in Berlin
        "tags": [],
        "recurrence": None,
        "reminders": [{"minutes_before_due": 15}],
        "time_zone": "Europe/Berlin",
    }
    assert parsed.sort_order == 722154930
    assert b"VALARM" not in parsed.keep  # reminders are the writer's, not the object's
    assert b"X-APPLE-UNIVERSAL-ID" in parsed.keep


def test_thunderbird_recurring_task() -> None:
    parsed = parse(fixture("thunderbird.ics"))
    assert parsed.fields["recurrence"] == "FREQ=WEEKLY;BYDAY=MO"
    assert parsed.fields["priority"] == "medium"
    assert parsed.fields["tags"] == ["home"]  # a tag is stored lower-case
    assert parsed.fields["reminders"] == [{"minutes_before_due": 30}]
    assert parsed.fields["due_date"] == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert parsed.overrides == ()


def test_thunderbird_completed_occurrence_is_an_override() -> None:
    parsed = parse(fixture("thunderbird_completed.ics"))
    [override] = parsed.overrides
    assert override.completed
    assert override.recurrence_id == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert parsed.fields["completed"] is False  # the series itself goes on


def test_tasks_org_date_only_subtask() -> None:
    parsed = parse(fixture("tasks_org.ics"))
    assert parsed.fields["due_date"] == date(2026, 11, 22)  # a day, as REST takes one
    assert parsed.due_at == datetime(2026, 11, 22, tzinfo=UTC)
    assert "time_zone" not in parsed.fields  # a date names no zone: the stored one stays
    assert parsed.fields["priority"] == "low"
    assert parsed.fields["recurrence"] == "FREQ=DAILY;INTERVAL=2"
    # At the day's start (PT0S after its DATE): nine hours before 09:00, where a day's
    # `minutes_before_due` counts back from.
    assert parsed.fields["reminders"] == [{"minutes_before_due": 540}]
    assert parsed.parent_uid == "7203958264459613012"  # RELATED-TO without RELTYPE: PARENT


def test_a_date_is_read_on_the_stored_zones_clock() -> None:
    parsed = parse(fixture("tasks_org.ics"), zone="Europe/Berlin")
    assert parsed.fields["due_date"] == date(2026, 11, 22)  # the day, whatever the zone
    assert parsed.due_at == datetime(2026, 11, 21, 23, 0, tzinfo=UTC)  # its start there


def test_todoman_floating_due_and_split_categories() -> None:
    parsed = parse(fixture("todoman.ics"))
    assert parsed.fields["priority"] == "high"  # todoman writes high as 4
    assert parsed.fields["due_date"] == datetime(2026, 12, 15, 18, 0, tzinfo=UTC)
    assert parsed.fields["tags"] == ["admin", "travel,abroad"]
    assert parsed.fields["description"] == "Photos: 2; form; fee 70 EUR"
    in_new_york = parse(fixture("todoman.ics"), zone="America/New_York")
    assert in_new_york.fields["due_date"] == datetime(2026, 12, 15, 23, 0, tzinfo=UTC)


def test_jtx_board_in_process_with_both_relations() -> None:
    parsed = parse(fixture("jtx_board.ics"))
    assert parsed.fields["completed"] is False  # IN-PROCESS, 40 percent
    assert parsed.fields["priority"] == "high"
    assert parsed.fields["due_date"] == datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
    assert parsed.parent_uid == "e91f6c2a-0b4d-47e3-8a1f-5d2c9b7e3f10"  # not the CHILD one
    assert parsed.fields["description"] == "Sections: sales, costs\nthen review"


@pytest.mark.parametrize(
    ("value", "priority"),
    [("0", "none"), ("1", "high"), ("4", "high"), ("5", "medium"), ("6", "low"), ("9", "low")],
)
def test_priority_in(value: str, priority: str) -> None:
    body = fixture("todoman.ics").replace(b"PRIORITY:4", f"PRIORITY:{value}".encode())
    assert parse(body).fields["priority"] == priority


def test_no_priority_is_none() -> None:
    body = fixture("todoman.ics").replace(b"PRIORITY:4\r\n", b"")
    assert parse(body).fields["priority"] == "none"


@pytest.mark.parametrize(
    ("status", "extra", "completed"),
    [
        ("COMPLETED", "", True),
        ("CANCELLED", "", True),
        ("NEEDS-ACTION", "COMPLETED:20261120T100000Z\r\n", False),  # reopened: STATUS wins
        ("IN-PROCESS", "", False),
    ],
)
def test_status(status: str, extra: str, completed: bool) -> None:
    body = fixture("todoman.ics").replace(
        b"STATUS:NEEDS-ACTION\r\n", f"STATUS:{status}\r\n{extra}".encode()
    )
    assert parse(body).fields["completed"] is completed


def test_completed_without_status_is_completed() -> None:
    body = fixture("todoman.ics").replace(
        b"STATUS:NEEDS-ACTION\r\n", b"COMPLETED:20261120T100000Z\r\n"
    )
    parsed = parse(body)
    assert parsed.fields["completed"] is True
    assert parsed.completed_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_alarms_become_reminders() -> None:
    alarms = (
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER;RELATED=END:-PT1H\r\nEND:VALARM\r\n"
        "BEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER;VALUE=DATE-TIME:20261214T080000Z\r\n"
        "END:VALARM\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER;RELATED=END:PT2H\r\nEND:VALARM\r\n"
        "BEGIN:VALARM\r\nACTION:EMAIL\r\nTRIGGER;RELATED=END:-PT5M\r\nEND:VALARM\r\n"
    )
    body = fixture("todoman.ics").replace(b"END:VTODO", alarms.encode() + b"END:VTODO")
    assert parse(body).fields["reminders"] == [
        {"minutes_before_due": 60},
        {"at": datetime(2026, 12, 14, 8, 0, tzinfo=UTC)},
        {"at": datetime(2026, 12, 15, 20, 0, tzinfo=UTC)},  # after the due date: an instant
    ]


def test_a_floating_until_is_read_on_the_series_clock() -> None:
    body = fixture("thunderbird.ics").replace(
        b"RRULE:FREQ=WEEKLY;BYDAY=MO", b"RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20270301T090000"
    )
    parts = set(parse(body).fields["recurrence"].split(";"))
    assert parts == {"FREQ=WEEKLY", "BYDAY=MO", "UNTIL=20270301T080000Z"}


# --- Refusals: each a CalendarObjectRefused with its precondition, never another error -------


def _refused(body: bytes, kind: type[CalendarObjectRefused]) -> CalendarObjectRefused:
    with pytest.raises(kind) as raised:
        parse(body)
    assert raised.value.status_code == 403
    return raised.value


def test_an_event_is_not_a_task() -> None:
    event = fixture("todoman.ics").replace(b"VTODO", b"VEVENT")
    assert _refused(event, NotATodo).precondition == "supported-calendar-component"
    both = fixture("todoman.ics").replace(
        b"END:VCALENDAR",
        b"BEGIN:VEVENT\r\nUID:e\r\nDTSTART:20261201T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR",
    )
    _refused(both, NotATodo)


def test_two_uids_are_refused() -> None:
    body = fixture("thunderbird_completed.ics")
    second = body.rfind(b"UID:5c1d9e44")
    other = body[:second] + b"UID:another" + body[second + len(b"UID:5c1d9e44") :]
    error = _refused(other, InvalidTodoObject)
    assert error.precondition == "valid-calendar-object-resource"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"", MalformedCalendar),
        (b"not a calendar", MalformedCalendar),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nEND:VCALENDAR\r\n", MalformedCalendar),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", NotATodo),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nSUMMARY:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
         InvalidTodoObject),
        (b"\xff\xfe" + b"BEGIN:VCALENDAR", MalformedCalendar),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:a\x00b\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
         MalformedCalendar),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:a\x07\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
         MalformedCalendar),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
         MalformedCalendar),
    ],
)  # fmt: skip
def test_malformed(body: bytes, kind: type[CalendarObjectRefused]) -> None:
    _refused(body, kind)


def test_bad_values_are_malformed() -> None:
    for line, bad in (
        (b"PRIORITY:4", b"PRIORITY:high"),
        (b"PRIORITY:4", b"PRIORITY:12"),
        (b"DUE:20261215T180000", b"DUE:2026-12-15"),
        (b"DUE:20261215T180000", b"DUE:00001215T180000"),
    ):
        with pytest.raises(CalendarObjectRefused):
            parse(fixture("todoman.ics").replace(line, bad))


def test_method_is_refused() -> None:
    body = fixture("todoman.ics").replace(b"VERSION:2.0", b"VERSION:2.0\r\nMETHOD:PUBLISH")
    _refused(body, InvalidTodoObject)


def test_huge_bodies_are_refused_unread() -> None:
    huge = fixture("todoman.ics").replace(
        b"LOCATION:Town hall", b"X-PAD:" + b"a" * MAX_OBJECT_BYTES
    )
    assert _refused(huge, ObjectTooLarge).precondition == "max-resource-size"
    many = b"X-P:1\r\n" * (vtodo.MAX_LINES + 1)
    _refused(fixture("todoman.ics").replace(b"SEQUENCE:0\r\n", many), ObjectTooLarge)
    nested = "".join(f"BEGIN:X-C{i}\r\n" for i in range(6)) + "".join(
        f"END:X-C{i}\r\n" for i in reversed(range(6))
    )
    _refused(fixture("todoman.ics").replace(b"SEQUENCE:0\r\n", nested.encode()), ObjectTooLarge)


def test_what_rest_refuses_is_refused_naming_the_property() -> None:
    long_title = fixture("todoman.ics").replace(b"Renew passport", b"x" * 201)
    error = _refused(long_title, FieldRefused)
    assert error.details[0]["field"] == "SUMMARY"
    blank = fixture("todoman.ics").replace(b"SUMMARY:Renew passport\r\n", b"")
    assert _refused(blank, FieldRefused).details[0]["field"] == "SUMMARY"
    tag = fixture("todoman.ics").replace(b"CATEGORIES:admin", b"CATEGORIES:" + b"t" * 33)
    assert _refused(tag, FieldRefused).details[0]["field"] == "CATEGORIES"
    late = fixture("todoman.ics").replace(b"DUE:20261215T180000", b"DUE:99991215T180000")
    assert _refused(late, FieldRefused).details[0]["field"] == "DUE"


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MINUTELY",
        "FREQ=DAILY;COUNT=3;UNTIL=20270101T000000Z",
        "FREQ=YEARLY;BYEASTER=1",
        "FREQ=DAILY;BYMONTH=13",
    ],
)
def test_rules_the_model_cannot_hold_are_refused(rule: str) -> None:
    body = fixture("thunderbird.ics").replace(
        b"RRULE:FREQ=WEEKLY;BYDAY=MO", f"RRULE:{rule}".encode()
    )
    with pytest.raises(CalendarObjectRefused) as raised:
        parse(body)
    assert isinstance(raised.value, UnsupportedRecurrence | MalformedCalendar)


def test_a_rule_needs_a_due_date_and_is_one_line() -> None:
    no_due = fixture("thunderbird.ics").replace(b"DUE;TZID=Europe/Berlin:20261130T090000\r\n", b"")
    _refused(no_due, UnsupportedRecurrence)
    two = fixture("thunderbird.ics").replace(
        b"RRULE:FREQ=WEEKLY;BYDAY=MO", b"RRULE:FREQ=WEEKLY;BYDAY=MO\r\nRRULE:FREQ=DAILY"
    )
    _refused(two, UnsupportedRecurrence)


def test_exdate_and_rdate_are_the_clients_alone() -> None:
    body = fixture("thunderbird.ics").replace(
        b"RRULE:FREQ=WEEKLY;BYDAY=MO",
        b"RRULE:FREQ=WEEKLY;BYDAY=MO\r\nEXDATE;TZID=Europe/Berlin:20261207T090000",
    )
    parsed = parse(body)
    assert parsed.fields["recurrence"] == "FREQ=WEEKLY;BYDAY=MO"
    assert b"EXDATE;TZID=Europe/Berlin:20261207T090000" in parsed.keep


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_any_bytes_are_read_or_refused(body: bytes) -> None:
    with contextlib.suppress(CalendarObjectRefused):
        parse(body)


_LINES = [
    "BEGIN:VCALENDAR", "VERSION:2.0", "BEGIN:VTODO", "END:VTODO", "END:VCALENDAR",
    "UID:u", "UID:v", "SUMMARY:s", "DUE:20261201T100000Z", "DUE;VALUE=DATE:20261201",
    "DUE;TZID=Nowhere/Else:20261201T100000", "RRULE:FREQ=DAILY", "PRIORITY:3",
    "RECURRENCE-ID:20261201T100000Z", "BEGIN:VALARM", "END:VALARM", "TRIGGER:-PT5M",
    "BEGIN:VEVENT", "END:VEVENT", "CATEGORIES:a,b", "STATUS:COMPLETED", " folded",
    "RELATED-TO;RELTYPE=PARENT:p", "X-Y;Z=\"q\":w", "BEGIN:VTIMEZONE", "END:VTIMEZONE",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_LINES), max_size=20))
def test_any_arrangement_of_lines_is_read_or_refused(lines: list[str]) -> None:
    try:
        parsed = parse("\r\n".join(lines).encode() + b"\r\n")
    except CalendarObjectRefused:
        return
    assert parsed.uid in ("u", "v")


# --- Writing: fresh objects, merges, privacy -------------------------------------------------


def test_a_task_no_client_wrote() -> None:
    task = row(
        title="Call Sam; then, maybe, Jo",
        description="Line one\nLine two \\N not a break",
        priority=Priority.low,
        due_date=datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
        time_zone="Europe/Berlin",
        tags=["calls", "a,b"],
        recurrence="FREQ=WEEKLY",
        series_start=datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
        completed=False,
    )
    body = render(task, None, [{"minutes_before_due": 10}], parent_uid="parent@x")
    todo = todo_of(body)
    assert str(todo["UID"]) == "task-42@task-api"
    assert str(todo["SUMMARY"]) == task.title
    assert str(todo["DESCRIPTION"]) == task.description
    assert int(todo["PRIORITY"]) == 9
    assert str(todo["STATUS"]) == "NEEDS-ACTION"
    assert todo["DUE"].params["TZID"] == "Europe/Berlin"
    assert todo["DUE"].dt == datetime(2026, 12, 1, 17, 0, tzinfo=todo["DUE"].dt.tzinfo)
    assert "BEGIN:VTIMEZONE" in body.decode() and "TZID:Europe/Berlin" in body.decode()
    assert todo["RRULE"].to_ical() == b"FREQ=WEEKLY"
    assert str(todo["RELATED-TO"]) == "parent@x"
    assert todo["RELATED-TO"].params["RELTYPE"] == "PARENT"
    assert int(str(todo["X-APPLE-SORT-ORDER"])) == 65536
    [alarm] = todo.walk("VALARM")
    assert alarm["TRIGGER"].dt == -timedelta(minutes=10)
    assert alarm["TRIGGER"].params["RELATED"] == "END"
    # And it reads back as the same fields.
    back = parse(body, zone="Europe/Berlin").fields
    assert back["title"] == task.title and back["description"] == task.description
    assert back["tags"] == task.tags and back["due_date"] == task.due_date
    assert back["reminders"] == [{"minutes_before_due": 10}]


def test_completed_and_priorities_out() -> None:
    for priority, number in ((Priority.high, 1), (Priority.medium, 5), (Priority.low, 9)):
        assert int(todo_of(render(row(priority=priority), None, []))["PRIORITY"]) == number
    assert "PRIORITY" not in todo_of(render(row(), None, []))
    done = todo_of(render(row(completed=True, completed_at=NOW), None, []))
    assert str(done["STATUS"]) == "COMPLETED"
    assert done["COMPLETED"].dt == NOW  # UTC (RFC 5545 3.8.2.1)
    assert int(done["PERCENT-COMPLETE"]) == 100


def test_a_midnight_due_is_a_date_and_comes_back_the_same() -> None:
    task = row(due_date=datetime(2026, 12, 1, 23, 0, tzinfo=UTC), time_zone="Europe/Berlin")
    body = render(task, None, [])
    assert "DUE;VALUE=DATE:20261202" in unfolded(body)
    # Sent back, the DATE is that day: due on it, starting at the same instant.
    back = parse(body, zone="Europe/Berlin")
    assert (back.fields["due_date"], back.due_at) == (date(2026, 12, 2), task.due_date)
    utc = render(row(due_date=datetime(2026, 12, 1, 15, 30, tzinfo=UTC)), None, [])
    assert "DUE:20261201T153000Z" in unfolded(utc)
    assert b"VTIMEZONE" not in utc  # UTC needs none


def test_a_completed_occurrence_carries_no_rule() -> None:
    task = row(
        due_date=datetime(2026, 12, 1, 9, tzinfo=UTC),
        recurrence="FREQ=DAILY",
        series_start=datetime(2026, 12, 1, 9, tzinfo=UTC),
        completed=True,
        completed_at=NOW,
    )
    assert "RRULE" not in todo_of(render(task, None, []))


def test_a_later_occurrence_of_a_counted_series_ends_where_the_series_ends() -> None:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    task = row(
        due_date=start + timedelta(days=1),
        recurrence="FREQ=DAILY;COUNT=3",
        series_start=start,
    )
    rule = todo_of(render(task, None, []))["RRULE"].to_ical()
    assert rule == b"FREQ=DAILY;UNTIL=20261203T090000Z"


@pytest.mark.parametrize("name", CLIENTS)
def test_unchanged_task_comes_back_as_the_client_wrote_it(name: str) -> None:
    """A GET after the client's PUT: every line as sent, but the stamps and the alarms."""
    body = fixture(name)
    parsed = parse(body)
    task = stored_as(parsed)
    served = render(task, parsed.keep, [], parent_uid=parsed.parent_uid)
    sent = [line for line in raw_lines(parsed.keep) if not _OURS.match(line)]
    got = [line for line in raw_lines(served) if not _OURS.match(line)]
    # A completed override stays too (its occurrence is served inside this object).
    if parsed.sort_order is None:  # our order is added where the client had none
        got = [line for line in got if not line.startswith("X-APPLE-SORT-ORDER")]
    assert got == sent
    Calendar.from_ical(served)  # icalendar reads it


@pytest.mark.parametrize("name", CLIENTS)
def test_a_rest_edit_replaces_only_what_we_model(name: str) -> None:
    body = fixture(name)
    parsed = parse(body)
    task = stored_as(
        parsed,
        title="Edited, on the web; with \\ and: colons",
        tags=["web"],
        priority=Priority.low,
    )
    served = render(task, parsed.keep, [], parent_uid=parsed.parent_uid)
    todo = todo_of(served)
    assert str(todo["SUMMARY"]) == task.title
    assert int(todo["PRIORITY"]) == 9
    assert parse(served, zone=task.time_zone).fields["tags"] == ["web"]
    # Every line we do not model comes back byte for byte.
    modelled = re.compile(
        r"^(SUMMARY|PRIORITY|CATEGORIES|DTSTAMP|LAST-MODIFIED|X-APPLE-SORT-ORDER|[ \t])"
    )
    kept_master = _master_lines(parsed.keep)
    served_master = _master_lines(served)
    unmodelled = [line for line in kept_master if not modelled.match(line)]
    assert unmodelled == [line for line in served_master if not modelled.match(line)]


def _master_lines(body: bytes) -> list[str]:
    lines = raw_lines(body)
    start = next(
        i
        for i, line in enumerate(lines)
        if line == "BEGIN:VTODO"
        and not any(x.startswith("RECURRENCE-ID") for x in lines[i : lines.index("END:VTODO", i)])
    )
    return [line for line in lines[start : lines.index("END:VTODO", start)] if line]


def test_x_properties_and_parameters_survive_a_rest_edit_byte_for_byte() -> None:
    parsed = parse(fixture("jtx_board.ics"))
    served = render(stored_as(parsed, title="New"), parsed.keep, [], parent_uid=None)
    for line in (
        "X-JTX-ORIGINAL-COLOR;X-JTX-SOURCE=app:#1E90FF",
        "GEO:48.208174;16.373819",
        "COLOR:dodgerblue",
        "CLASS:PRIVATE",
        "RELATED-TO;RELTYPE=CHILD:0d3e8b5f-2a7c-4e19-b6d4-9f1a3c5e7b20",
        "SEQUENCE:4",
    ):
        assert line in raw_lines(served)
    # The parent relation went with the parent (moved to top level on the web).
    assert "RELATED-TO;RELTYPE=PARENT" not in served.decode()
    # A still-open task keeps the client's IN-PROCESS and percentage.
    assert "STATUS:IN-PROCESS" in raw_lines(served)
    assert "PERCENT-COMPLETE:40" in raw_lines(served)


def test_completing_on_the_web_replaces_the_status_group() -> None:
    parsed = parse(fixture("jtx_board.ics"))
    served = render(
        stored_as(parsed, completed=True, completed_at=NOW),
        parsed.keep,
        [],
        parent_uid=parsed.parent_uid,
    )
    lines = raw_lines(served)
    assert "STATUS:COMPLETED" in lines and "PERCENT-COMPLETE:100" in lines
    assert "STATUS:IN-PROCESS" not in lines and "PERCENT-COMPLETE:40" not in lines


def test_a_new_due_date_moves_the_start_and_names_the_tasks_zone() -> None:
    parsed = parse(fixture("thunderbird.ics"))
    task = stored_as(parsed, due_date=datetime(2026, 12, 2, 14, 0, tzinfo=UTC))
    served = render(task, parsed.keep, [])
    lines = raw_lines(served)
    assert "DUE;TZID=Europe/Berlin:20261202T150000" in lines
    assert "DTSTART;TZID=Europe/Berlin:20261202T140000" in lines  # an hour before, as sent
    assert lines.count("BEGIN:VTIMEZONE") == 1  # the client's own zone, kept


def test_a_new_zone_gets_its_vtimezone_beside_the_clients() -> None:
    parsed = parse(fixture("thunderbird.ics"))
    task = stored_as(parsed, time_zone="America/New_York")
    served = render(task, parsed.keep, [])
    todo = todo_of(served)
    assert todo["DUE"].params["TZID"] == "America/New_York"
    assert todo["DUE"].dt.astimezone(UTC) == task.due_date
    assert served.decode().count("BEGIN:VTIMEZONE") == 2


def test_a_date_due_edited_to_another_day_stays_a_date() -> None:
    parsed = parse(fixture("tasks_org.ics"))
    task = stored_as(parsed, due_date=datetime(2026, 11, 25, tzinfo=UTC))
    lines = unfolded(render(task, parsed.keep, [], parent_uid=parsed.parent_uid))
    assert "DUE;VALUE=DATE:20261125" in lines
    assert "DTSTART;VALUE=DATE:20261125" in lines


def test_reminders_are_the_readers_own() -> None:
    parsed = parse(fixture("apple_reminders.ics"))
    task = stored_as(parsed)
    owner = render(task, parsed.keep, [{"minutes_before_due": 15}])
    member = render(task, parsed.keep, [])
    other = render(task, parsed.keep, [{"at": "2026-12-03T08:00:00Z"}])
    assert "BEGIN:VALARM" not in member.decode()
    assert "X-WR-ALARMUID" not in owner.decode()  # the writer's alarm is not kept
    assert todo_of(owner).walk("VALARM")[0]["TRIGGER"].dt == -timedelta(minutes=15)
    assert todo_of(other).walk("VALARM")[0]["TRIGGER"].dt == datetime(2026, 12, 3, 8, tzinfo=UTC)
    assert len({owner, member, other}) == 3
    assert render(task, parsed.keep, []) == member  # the same bytes for the same reader


def test_text_that_looks_like_icalendar_stays_text() -> None:
    sneaky = "x\nEND:VTODO\nBEGIN:VEVENT\nUID:evil\nEND:VEVENT\nBEGIN:VTODO"
    task = row(title="END:VCALENDAR", description=sneaky, tags=["end:vtodo"])
    body = render(task, None, [])
    calendar = Calendar.from_ical(body)
    assert [c.name for c in calendar.subcomponents] == ["VTODO"]
    back = parse(body).fields
    assert back["title"] == "END:VCALENDAR" and back["description"] == sneaky


_CHARACTERS = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"),
        blacklist_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    ),
    max_size=6,
)
_TEXT = st.lists(
    _CHARACTERS | st.sampled_from(["\\", ";", ",", ":", '"', "\\n", "\\N", "END:VTODO"]),
    min_size=1,
    max_size=12,
).map("".join)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=_TEXT, description=_TEXT, lines=st.integers(0, 3))
def test_escaping_round_trip(title: str, description: str, lines: int) -> None:
    title = " ".join(title.split()) or "x"
    description = "\n".join([description] * (lines + 1))
    try:
        stored = TaskUpdate.model_validate({"title": title, "description": description})
    except ValueError:
        return  # a text the REST API refuses is never stored, so never served
    task = row(title=stored.title, description=stored.description)
    body = render(task, None, [])
    assert str(todo_of(body)["SUMMARY"]) == stored.title
    described = todo_of(body).get("DESCRIPTION")
    assert (None if described is None else str(described)) == (stored.description or None)
    back = parse(body).fields
    assert (back["title"], back["description"]) == (stored.title, stored.description or None)
    # And merged into a client's object, the same.
    parsed = parse(fixture("jtx_board.ics"))
    merged = render(stored_as(parsed, title=stored.title), parsed.keep, [])
    assert parse(merged).fields["title"] == stored.title


def test_future_and_completed_overrides_stay_past_open_ones_leave() -> None:
    body = fixture("thunderbird_completed.ics")
    future = body.replace(
        b"END:VCALENDAR",
        b"BEGIN:VTODO\r\nUID:5c1d9e44-7b0a-4d2f-9e8b-0f3c6a2d1e77\r\n"
        b"RECURRENCE-ID;TZID=Europe/Berlin:20261214T090000\r\n"
        b"DUE;TZID=Europe/Berlin:20261215T090000\r\nSUMMARY:Water the plants\r\n"
        b"X-MOVED:1\r\nEND:VTODO\r\n"
        b"BEGIN:VTODO\r\nUID:5c1d9e44-7b0a-4d2f-9e8b-0f3c6a2d1e77\r\n"
        b"RECURRENCE-ID;TZID=Europe/Berlin:20261123T090000\r\n"
        b"DUE;TZID=Europe/Berlin:20261124T090000\r\nSUMMARY:Water the plants\r\n"
        b"X-PAST:1\r\nEND:VTODO\r\nEND:VCALENDAR",
    )
    parsed = parse(future)
    # The series moved on: its open occurrence is 2026-12-07.
    task = stored_as(
        parsed,
        due_date=datetime(2026, 12, 7, 8, tzinfo=UTC),
        series_start=datetime(2026, 11, 30, 8, tzinfo=UTC),
    )
    served = render(task, parsed.keep, [])
    text = served.decode()
    # The completed one stays as sent (its occurrence is served inside this object), a later
    # one stays the client's, an open one before the open occurrence leaves.
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20261130T090000" in text
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20261214T090000" in text and "X-MOVED:1" in text
    assert "20261123T090000" not in text and "X-PAST" not in text
    assert "DTSTART;TZID=Europe/Berlin:20261207T080000" in raw_lines(served)


def test_bare_line_feeds_are_kept_as_crlf_and_values_are_not_split() -> None:
    body = fixture("todoman.ics").replace(b"\r\n", b"\n")
    body = body.replace(b"LOCATION:Town hall", "X-NOTE:one\u2028two\u0085three".encode())
    parsed = parse(body)
    assert b"\n" not in parsed.keep.replace(b"\r\n", b"")
    served = render(stored_as(parsed, title="Edited"), parsed.keep, [])
    assert "X-NOTE:one\u2028two\u0085three" in raw_lines(served)
    assert b"\n" not in served.replace(b"\r\n", b"")


_UNKNOWN = st.lists(
    st.tuples(
        st.sampled_from(["X-FOO", "X-MOZ-SNOOZE", "X-APPLE-THING", "LOCATION", "URL", "CONTACT"]),
        st.text(alphabet=st.sampled_from('abc ;:,"\\=-/é'), max_size=90),
        st.booleans(),
    ),
    max_size=4,
)
_EDITS = st.fixed_dictionaries(
    {},
    optional={
        "title": st.sampled_from(["New title", "Comma, semicolon; colon:", "END:VTODO"]),
        "tags": st.lists(st.sampled_from(["a", "b,c", "é", "x;y"]), unique=True, max_size=3),
        "priority": st.sampled_from(list(Priority)),
        "completed": st.booleans(),
        "shift": st.integers(-3000, 3000),
        "description": st.sampled_from([None, "Two\nlines", "back\\slash"]),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(CLIENTS), unknown=_UNKNOWN, edits=_EDITS)
def test_any_edit_of_any_client_object_round_trips(
    name: str, unknown: list[tuple[str, str, bool]], edits: dict[str, Any]
) -> None:
    """Unknown lines added to a real client's object, then any of our fields edited: the
    served object reads back as the edited task, and every unknown line is there as sent."""
    added = []
    for prop, value, with_param in unknown:
        escaped = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
        param = ';X-PARAM="' + value.replace('"', "") + '"' if with_param else ""
        added.append(f"{prop}{param}:{escaped}")
    body = fixture(name)
    end = body.index(b"END:VTODO")
    body = body[:end] + "".join(f"{line}\r\n" for line in added).encode() + body[end:]
    parsed = parse(body)
    values: dict[str, Any] = {k: v for k, v in edits.items() if k != "shift"}
    base = stored_as(parsed)
    if "shift" in edits and base.due_date is not None and base.all_day:
        day = day_of(base.due_date, base.time_zone) + timedelta(days=edits["shift"] // 60)
        values["due_date"] = day_start(day, base.time_zone)
    elif "shift" in edits and base.due_date is not None:
        values["due_date"] = base.due_date + timedelta(minutes=edits["shift"])
    if values.get("completed"):
        values["completed_at"] = NOW
    task = stored_as(parsed, **values)
    served = render(task, parsed.keep, [], parent_uid=parsed.parent_uid)
    back = parse(served, zone=task.time_zone)
    fields = back.fields
    assert fields["title"] == task.title
    assert fields["description"] == (task.description or None)
    assert fields["tags"] == task.tags
    assert fields["priority"] == Priority(task.priority).value
    assert fields["completed"] == task.completed
    assert fields["due_date"] == due_value(task.due_date, task.all_day, task.time_zone)
    assert back.uid == parsed.uid and back.parent_uid == parsed.parent_uid
    lines = raw_lines(served)
    for line in added:
        assert line in lines
    if task.completed:
        assert "RRULE" not in todo_of(served)


_PIECES = st.sampled_from(
    [":", ";", "=", '"', ",", "\\", "T", "Z", "2026", "-P", "T1H", "VALUE=DATE", "TZID=",
     "RELATED=END", "X-", "BEGIN", "END", "\r\n", "\r\n ", "é", "\u2028", "99", "0", "-"]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(CLIENTS),
    at=st.integers(0, 60),
    cut=st.integers(0, 40),
    noise=st.lists(_PIECES, max_size=6).map("".join),
)
def test_a_damaged_client_object_is_read_or_refused(
    name: str, at: int, cut: int, noise: str
) -> None:
    """A real object with a stretch replaced by iCalendar-looking noise: read (and then served
    and read back) or refused with a CalendarObjectRefused, never another exception."""
    text = fixture(name).decode()
    lines = text.split("\r\n")
    index = at % len(lines)
    line = lines[index]
    lines[index] = line[: cut % (len(line) + 1)] + noise + line[cut % (len(line) + 1) + 3 :]
    try:
        parsed = parse("\r\n".join(lines).encode())
    except CalendarObjectRefused:
        return
    served = render(stored_as(parsed), parsed.keep, parsed.fields["reminders"])
    assert parse(served, zone=stored_as(parsed).time_zone).uid == parsed.uid


def test_a_multi_valued_parameter_is_read() -> None:
    body = fixture("jtx_board.ics").replace(b"RELTYPE=PARENT", b"RELTYPE=,ENT")
    parsed = parse(body)
    assert parsed.parent_uid is None  # not a PARENT relation: the client's, kept
    served = render(stored_as(parsed), parsed.keep, [])
    assert "RELATED-TO;RELTYPE=,ENT:e91f6c2a-0b4d-47e3-8a1f-5d2c9b7e3f10" in raw_lines(served)


# --- DTSTART + DURATION: the due date without DUE (RFC 5545 3.6.2, 3.8.2.5) ------------------

_DURATION = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Corp.//CalDAV Client//EN\r\n"
    b"BEGIN:VTODO\r\nUID:takeoutthethrash\r\nDTSTAMP:20221013T151313Z\r\n"
    b"DTSTART:20221017T065500Z\r\nSTATUS:NEEDS-ACTION\r\nDURATION:PT10M\r\n"
    b"SUMMARY:Take out the trash\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3\r\n"
    b"X-CLIENT:kept\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)


def test_a_duration_states_the_due_date_and_a_rule_on_it_is_read() -> None:
    parsed = parse(_DURATION)
    assert parsed.fields["due_date"] == datetime(2022, 10, 17, 7, 5, tzinfo=UTC)
    assert rule_key(parsed.fields["recurrence"]) == {"FREQ=WEEKLY", "BYDAY=MO", "COUNT=3"}
    dated = _DURATION.replace(b"DTSTART:20221017T065500Z", b"DTSTART;VALUE=DATE:20221017")
    dated = dated.replace(b"DURATION:PT10M", b"DURATION:P2D")
    assert parse(dated).fields["due_date"] == date(2022, 10, 19)  # a DATE + days: a day
    # DURATION without DTSTART states nothing: no due date, and so no rule either.
    _refused(_DURATION.replace(b"DTSTART:20221017T065500Z\r\n", b""), UnsupportedRecurrence)


def test_a_duration_object_comes_back_without_a_due() -> None:
    parsed = parse(_DURATION)
    served = raw_lines(render(stored_as(parsed), parsed.keep, []))
    assert "DURATION:PT10M" in served and "DTSTART:20221017T065500Z" in served
    assert not any(line.startswith("DUE") for line in served)  # exclusive (RFC 5545 3.6.2)


def test_a_rest_due_edit_of_a_duration_object_moves_its_start() -> None:
    """PATCH due_date on a task a client wrote with DURATION: DTSTART = due - duration, the
    DURATION kept, no DUE written; the object read again states the new due date."""
    parsed = parse(_DURATION)
    task = stored_as(parsed, due_date=datetime(2026, 12, 1, 9, 0, tzinfo=UTC), recurrence=None)
    served = render(task, parsed.keep, [])
    lines = raw_lines(served)
    assert "DTSTART:20261201T085000Z" in lines and "DURATION:PT10M" in lines
    assert "X-CLIENT:kept" in lines
    assert not any(line.startswith("DUE") for line in lines)
    assert parse(served).fields["due_date"] == task.due_date
    # The due date cleared: DTSTART stays, DURATION goes (it would state a due date).
    cleared = raw_lines(render(stored_as(parsed, due_date=None, recurrence=None), parsed.keep, []))
    assert "DTSTART:20221017T065500Z" in cleared
    assert not any(line.startswith(("DUE", "DURATION")) for line in cleared)


def test_a_series_of_one_does_not_recur_and_keeps_its_rule() -> None:
    """COUNT=1 (the `caldav` library counts COUNT down as it completes occurrences): no next
    occurrence, so the task holds no rule; the client's RRULE is served as sent."""
    body = _DURATION.replace(b"COUNT=3", b"COUNT=1")
    parsed = parse(body)
    assert parsed.fields["recurrence"] is None
    lines = raw_lines(render(stored_as(parsed), parsed.keep, []))
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=1" in lines


def test_a_series_completed_as_a_whole_keeps_its_rule() -> None:
    """A master sent STATUS:COMPLETED with its RRULE (recurrence_forms MASTER_COMPLETED: the
    series ended, no rule stored) is served as sent, rule and all."""
    body = _DURATION.replace(
        b"STATUS:NEEDS-ACTION", b"STATUS:COMPLETED\r\nCOMPLETED:20261127T120000Z"
    )
    parsed = parse(body)
    task = stored_as(parsed, completed=True, recurrence=None)
    lines = raw_lines(render(task, parsed.keep, []))
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3" in lines and "STATUS:COMPLETED" in lines
