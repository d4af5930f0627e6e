"""One calendar mapping of a task (backend/models/task_calendar.py; specs/caldav.md, "The
mapping"): every writable field mapped or said why not, one UID, one VALARM in CalDAV and the
feeds, each object read with its own zones, and what a client sends kept as sent."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from backend.ical.vtodo import parse, render
from backend.models.task_calendar import MAPPING, NOT_MAPPED, InvalidTodoObject, derived_uid
from backend.models.task_fields import FIELDS, WRITABLE
from backend.services.calendar import calendar_ics
from backend.services.calendar.dav_tags import RENDER_FORMAT
from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, put, signed_in
from tests.dav.test_vtodo import NOW, fixture, row, stored_as
from tests.mcp.conftest import call_tool_rpc
from tests.sharing.helpers import join, make_list

_VALARM = re.compile(r"BEGIN:VALARM\r\n.*?END:VALARM\r\n", re.S)


def test_every_writable_field_has_a_calendar_property_or_a_reason() -> None:
    mapped = {name for m in MAPPING for name in m.fields}
    unmapped = [name for name in WRITABLE if name not in mapped and name not in NOT_MAPPED]
    assert unmapped == [], f"map these fields in task_calendar.MAPPING or say why not: {unmapped}"
    assert not mapped & set(NOT_MAPPED), "a field is mapped and said unmapped"
    assert set(NOT_MAPPED) <= set(WRITABLE), "NOT_MAPPED names only writable fields"
    assert mapped <= {f.name for f in FIELDS}, "a mapping names a field that does not exist"
    assert all(reason.strip() for reason in NOT_MAPPED.values())


def _feed(task: object, kind: str = "todos") -> bytes:
    return calendar_ics.body(kind, "Tasks", NOW, [task])


def test_a_task_has_one_uid_in_caldav_and_the_feeds() -> None:
    task = row(id=7, due_date=NOW)
    assert b"UID:task-7@task-api\r\n" in render(task, None, [])
    assert b"UID:task-7@task-api\r\n" in _feed(task)
    assert b"UID:task-7@task-api\r\n" in _feed(task, "events")
    assert derived_uid(7) == "task-7@task-api"


def test_a_reminder_is_the_same_valarm_in_caldav_and_the_feed() -> None:
    reminders = [{"minutes_before_due": 30}, {"at": (NOW - timedelta(hours=2)).isoformat()}]
    task = row(title="Pay rent; now", due_date=NOW + timedelta(days=1), reminders=reminders)
    caldav = _VALARM.findall(render(task, None, reminders).decode())
    feed = _VALARM.findall(_feed(task).decode())
    assert len(caldav) == 2
    assert caldav == feed  # byte for byte
    # Relative to the VTODO's DUE (RFC 5545 3.8.6.3): a VTODO with no DTSTART anchors a
    # trigger relative to its start to nothing.
    assert "TRIGGER;RELATED=END:-PT30M\r\n" in caldav[0]
    # An event's due date is its DTSTART: its trigger is relative to the start.
    assert "TRIGGER:-PT30M\r\n" in _VALARM.findall(_feed(task, "events").decode())[0]


def test_the_feed_writes_every_mapped_property_of_a_todo() -> None:
    task = row(
        title="Water plants",
        description="Both",
        priority="high",
        due_date=NOW,
        tags=["home"],
        completed=True,
        completed_at=NOW,
    )
    body = _feed(task).decode()
    for line in ("SUMMARY:Water plants", "DESCRIPTION:Both", "PRIORITY:1", "CATEGORIES:home"):
        assert f"\r\n{line}\r\n" in body
    assert "\r\nSTATUS:COMPLETED\r\n" in body and "\r\nCOMPLETED:20261125T120000Z\r\n" in body


def _custom_zone(offset: str, due: str = "20261201T090000") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Exchange//EN\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\n"
        f"BEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nTZOFFSETFROM:{offset}\r\n"
        f"TZOFFSETTO:{offset}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        f"BEGIN:VTODO\r\nUID:zone-{offset}\r\nSUMMARY:Call\r\n"
        f"DUE;TZID=Customized Time Zone:{due}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.mark.parametrize("order", [("+0200", "+0500"), ("+0500", "+0200")])
def test_each_object_reads_its_own_custom_zone(order: tuple[str, str]) -> None:
    """Two users' objects with one custom TZID and different definitions (Outlook and Exchange
    invent such names): each DUE is read with its own object's, again and again, either first."""
    expected = {
        "+0200": datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
        "+0500": datetime(2026, 12, 1, 4, 0, tzinfo=UTC),
    }
    for _ in range(3):
        for offset in order:
            parsed = parse(_custom_zone(offset))
            assert parsed.fields["due_date"] == expected[offset], offset
            assert "time_zone" not in parsed.fields  # not a zone we know by name: unchanged
            # Served back, the client's DUE agrees with the task: its line is kept as sent.
            body = render(stored_as(parsed), parsed.keep, [])
            assert b"DUE;TZID=Customized Time Zone:20261201T090000\r\n" in body


@pytest.mark.parametrize("name", ["SUMMARY", "DESCRIPTION", "DUE", "STATUS", "PRIORITY"])
def test_a_property_sent_twice_that_occurs_once_is_refused(name: str) -> None:
    body = fixture("todoman.ics")
    line = next(x for x in body.split(b"\r\n") if x.startswith(name.encode() + b":"))
    twice = body.replace(line + b"\r\n", line + b"\r\n" + line[: len(name) + 1] + b"other\r\n")
    with pytest.raises(InvalidTodoObject) as refused:
        parse(twice)
    assert refused.value.precondition == "valid-calendar-object-resource"
    assert name in refused.value.message


def test_a_multi_line_summary_is_a_one_line_title_and_kept_as_sent() -> None:
    body = fixture("todoman.ics").replace(b"SUMMARY:Renew passport", b"SUMMARY:Renew\\npassport")
    parsed = parse(body)
    assert parsed.fields["title"] == "Renew passport"
    served = render(stored_as(parsed), parsed.keep, [])
    assert b"\r\nSUMMARY:Renew\\npassport\r\n" in served  # the client's line, as it sent it
    # A REST edit of the title replaces it.
    edited = render(stored_as(parsed, title="Renew ID"), parsed.keep, [])
    assert b"\r\nSUMMARY:Renew ID\r\n" in edited and b"Renew\\npassport" not in edited


def test_completed_is_read_as_sent() -> None:
    body = fixture("todoman.ics").replace(
        b"END:VTODO", b"STATUS:COMPLETED\r\nCOMPLETED:20261101T100000Z\r\nEND:VTODO"
    )
    body = re.sub(rb"STATUS:NEEDS-ACTION\r\n", b"", body)
    parsed = parse(body)
    assert parsed.fields["completed"] is True
    assert parsed.completed_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    # Served back (the task completed at another time), the client's COMPLETED is as it sent it.
    served = render(stored_as(parsed, completed_at=NOW), parsed.keep, [])
    assert b"\r\nCOMPLETED:20261101T100000Z\r\n" in served
    assert RENDER_FORMAT >= 3  # bumped with the COMPLETED written as sent


def _series(uid: str, due: str, extra: str = "") -> bytes:
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//todoman//EN\r\nBEGIN:VTODO\r\n"
        f"UID:{uid}\r\nSUMMARY:Water plants\r\nDUE:{due}\r\n{extra}END:VTODO\r\nEND:VCALENDAR\r\n"
    )
    return body.encode()


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("copy_first", [True, False])
def test_a_completed_copy_and_its_series_are_one_completed_task(
    client: TestClient, alice: Account, bob: Account, copy_first: bool, shared: bool
) -> None:
    """todoman and the `caldav` library complete an occurrence as two PUTs: a completed copy
    under a new UID and the series with its DUE advanced on the rule. In either order, REST
    then holds one completed occurrence and one open one (so does MCP), the copy's object
    served for the completed one. `shared`: the series in Alice's list, both PUTs an
    editor's (Bob's), the objects kept in her space."""
    headers = signed_in(client, alice)
    collection = NO_LIST
    if shared:
        list_id = make_list(client, alice, "Garden")
        join(client, alice, bob, list_id, "editor")
        collection = f"/dav/calendars/{list_id}/"
    series = _series("series-1", "20261201T090000Z", "RRULE:FREQ=DAILY\r\nSTATUS:NEEDS-ACTION\r\n")
    assert put(client, f"{collection}series-1.ics", series, headers).status_code == 201
    writer = signed_in(client, bob) if shared else headers
    copy = _series(
        "copy-1", "20261201T090000Z", "STATUS:COMPLETED\r\nCOMPLETED:20261201T080000Z\r\n"
    )
    advanced = _series(
        "series-1", "20261202T090000Z", "RRULE:FREQ=DAILY\r\nSTATUS:NEEDS-ACTION\r\n"
    )
    writes = [(f"{collection}copy-1.ics", copy), (f"{collection}series-1.ics", advanced)]
    for path, body in writes if copy_first else writes[::-1]:
        answer = put(client, path, body, writer)
        assert answer.status_code in (201, 204), answer.text
    listed = client.get("/api/tasks?status=all", headers=alice.headers).json()["data"]
    assert sorted((t["completed"], t["due_date"]) for t in listed) == [
        (False, "2026-12-02T09:00:00Z"),
        (True, "2026-12-01T09:00:00Z"),
    ]
    tools = call_tool_rpc(client, "/mcp", alice.token, "list_tasks", {"status": "all"})
    seen = tools["structuredContent"]["tasks"]
    assert sorted((t["completed"], t["due_date"]) for t in seen) == [
        (False, "2026-12-02T09:00:00Z"),
        (True, "2026-12-01T09:00:00Z"),
    ]
    done = next(t for t in listed if t["completed"])
    for reader in (headers, writer):
        copy_served = client.get(f"{collection}copy-1.ics", headers=reader)
        assert copy_served.status_code == 200 and b"UID:copy-1" in copy_served.content
        assert f"task-{done['id']}@task-api".encode() not in copy_served.content
        series_served = client.get(f"{collection}series-1.ics", headers=reader)
        assert b"UID:series-1" in series_served.content
        assert b"DUE:20261202T090000Z" in series_served.content


def test_completed_is_stored_as_sent(client: TestClient, alice: Account) -> None:
    """STATUS:COMPLETED with COMPLETED:20261101T100000Z is a task completed then, created so or
    completed by an update; REST's completions are stamped now, as before."""
    headers = signed_in(client, alice)
    done = "STATUS:COMPLETED\r\nCOMPLETED:20261101T100000Z\r\n"
    made = put(client, f"{NO_LIST}made.ics", _series("made", "20261201T090000Z", done), headers)
    assert made.status_code == 201, made.text
    opened = _series("later", "20261201T090000Z", "STATUS:NEEDS-ACTION\r\n")
    assert put(client, f"{NO_LIST}later.ics", opened, headers).status_code == 201
    later = put(client, f"{NO_LIST}later.ics", _series("later", "20261201T090000Z", done), headers)
    assert later.status_code == 204, later.text
    listed = client.get("/api/tasks?status=all", headers=alice.headers).json()["data"]
    assert [t["completed_at"] for t in listed] == ["2026-11-01T10:00:00Z"] * 2
    rest = client.post(
        "/api/tasks", json={"title": "Now", "completed": True}, headers=alice.headers
    )
    assert rest.json()["data"]["completed_at"] > "2026-11-27"


def test_two_users_custom_zones_each_read_with_its_own(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """Over HTTP, in one server process: alice's and bob's objects name one custom TZID with
    other offsets, written in turns, each twice; each task's due date is its own zone's."""
    signed = {alice.id: signed_in(client, alice), bob.id: signed_in(client, bob)}
    for turn in range(2):
        for who, offset in ((alice, "+0200"), (bob, "+0500"))[:: 1 if turn == 0 else -1]:
            path = f"{NO_LIST}zone-{turn}.ics"
            body = _custom_zone(offset).replace(b"UID:zone-", f"UID:{turn}-zone-".encode())
            assert put(client, path, body, signed[who.id]).status_code == 201
    for who, hour in ((alice, "07"), (bob, "04")):
        listed = client.get("/api/tasks", headers=who.headers).json()["data"]
        assert [t["due_date"] for t in listed] == [f"2026-12-01T{hour}:00:00Z"] * 2


_ZONES = ("Pacific/Auckland", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")
_FEED_IN_ZONES = f"""
import hashlib, sys
from datetime import timedelta
from zoneinfo import ZoneInfo
from backend.services.calendar import calendar_ics
from tests.dav.test_vtodo import NOW, row
tasks = [
    row(id=n, due_date=(NOW + timedelta(days=n)).astimezone(ZoneInfo(zone)), time_zone=zone)
    for n, zone in enumerate({_ZONES!r})
]
sys.stdout.write(calendar_ics.body("todos", "Tasks", NOW, tasks).decode())
"""


def test_a_feed_is_the_same_bytes_in_every_process() -> None:
    """One state is one body under one strong ETag, whichever worker serves it: the VTIMEZONEs
    come in TZID order, not in the order of a set, which a process's hash seed decides."""
    bodies = set()
    for seed in ("0", "1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-c", _FEED_IN_ZONES],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        bodies.add(done.stdout)
    assert len(bodies) == 1
    (feed,) = bodies
    zones = re.findall(r"BEGIN:VTIMEZONE\r?\nTZID:([^\r\n]+)", feed)
    assert len(zones) >= 4 and zones == sorted(zones)
