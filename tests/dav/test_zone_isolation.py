"""One user's VTIMEZONE never reads another's object: icalendar keeps every zone it parses in a
process-wide registry (`vtodo._OwnZones` parses without it), and every path that reads a
client's object, a REPORT's prop-filter included, must not fill it."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, _query, put, responses, signed_in, task_of


def _object(uid: str, summary: str, zone: str, defined: bool) -> bytes:
    definition = (
        f"BEGIN:VTIMEZONE\r\nTZID:{zone}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        "TZOFFSETFROM:+0500\r\nTZOFFSETTO:+0500\r\nTZNAME:ZX\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    )
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n"
        f"{definition if defined else ''}BEGIN:VTODO\r\nUID:{uid}\r\n"
        f"DTSTAMP:20261116T090245Z\r\nSUMMARY:{summary}\r\nDUE;TZID={zone}:20261215T100000\r\n"
        "STATUS:NEEDS-ACTION\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def test_a_zone_defined_by_one_user_never_reads_anothers_object(
    client: TestClient, alice: Account, bob: Account
) -> None:
    zone = f"Zone {uuid.uuid4().hex[:8]}"  # a name no other test (nor the zone database) has
    alices, bobs = signed_in(client, alice), signed_in(client, bob)
    put(client, NO_LIST + "before.ics", _object("before", "Before", zone, False), bobs)
    unread = task_of(client, bob, "Before")["due_date"]

    assert put(client, NO_LIST + "own.ics", _object("own", "Own", zone, True), alices).is_success
    assert task_of(client, alice, "Own")["due_date"].startswith("2026-12-15T05:00:00")
    # A prop-filter on a property no column holds reads each object's text.
    open_only = '<C:prop-filter name="COMPLETED"><C:is-not-defined/></C:prop-filter>'
    answer = client.request(
        "REPORT", NO_LIST, content=_query(open_only), headers={**alices, "Depth": "1"}
    )
    assert {h.rsplit("/", 1)[1] for h in responses(answer)} == {"own.ics"}

    put(client, NO_LIST + "after.ics", _object("after", "After", zone, False), bobs)
    assert task_of(client, bob, "After")["due_date"] == unread
    assert task_of(client, alice, "Own")["due_date"].startswith("2026-12-15T05:00:00")
