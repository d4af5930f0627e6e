"""What real clients (the `caldav` library's functional suite, vdirsyncer + todoman:
tests/interop/test_dav_clients.py) showed wrong in the DAV answers, one focused test each, in
process so a regression is caught by the fast tier."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.dav.test_objects import responses, signed_in
from tests.sharing.helpers import make_list

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"


def _children(node: ET.Element | None) -> list[str]:
    assert node is not None
    return [child.tag for child in node]


def test_resourcetype_holds_its_kinds_directly(client: TestClient, alice: Account) -> None:
    """`D:resourcetype` holds `D:collection` and `C:calendar` themselves: the `caldav`
    library read a second `resourcetype` inside it as no calendar, and listed none."""
    own = make_list(client, alice, "Groceries")
    headers = {**signed_in(client, alice), "Depth": "1"}
    listed = responses(client.request("PROPFIND", "/dav/calendars/", headers=headers))
    kinds = {href: _children(r.find(f".//{D}resourcetype")) for href, r in listed.items()}
    assert kinds == {
        "/dav/calendars/": [f"{D}collection"],
        "/dav/calendars/no-list/": [f"{D}collection", f"{C}calendar"],
        f"/dav/calendars/{own}/": [f"{D}collection", f"{C}calendar"],
    }
    for path, expected in (("/dav/", [f"{D}collection"]),
                           ("/dav/principal/", [f"{D}collection", f"{D}principal"])):  # fmt: skip
        found = responses(client.request("PROPFIND", path, headers={**headers, "Depth": "0"}))
        assert _children(found[path].find(f".//{D}resourcetype")) == expected


TODOMAN = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:nl.whynothugo.todoman\r\nBEGIN:VTODO\r\n"
    "CREATED:20261127T132246Z\r\nDTSTAMP:20261127T132246Z\r\nDUE:20261128T132246Z\r\n"
    "LAST-MODIFIED:20261127T132246Z\r\nSEQUENCE:1\r\nSTATUS:NEEDS-ACTION\r\n"
    "SUMMARY:Buy milk\r\nUID:d440b9dc1edc437faa700d26c1f4f147@vm\r\nEND:VTODO\r\n"
    "END:VCALENDAR\r\n"
)


def test_an_object_comes_back_as_the_client_wrote_it(client: TestClient, alice: Account) -> None:
    """A client that sent no `X-APPLE-SORT-ORDER` gets none back, and its own stamps until
    the task's next write: todoman's object reads back byte for byte, so its PUT answers the
    ETag (vdirsyncer, given none, took its next local edit for a change on both sides)."""
    headers = signed_in(client, alice)
    path = "/dav/calendars/no-list/c6ae073d-c7b6-4750-b9d5-6d621f20ffec.ics"
    sent = {**headers, "Content-Type": "text/calendar", "If-None-Match": "*"}
    made = client.put(path, content=TODOMAN.encode(), headers=sent)
    assert made.status_code == 201
    served = client.get(path, headers=headers)
    assert served.text == TODOMAN and served.headers["etag"] == made.headers["etag"]


def _vtodo(uid: str, summary: str, extra: str = "") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//python-caldav//caldav//en_DK\r\n"
        f"BEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20261127T133434Z\r\nSUMMARY:{summary}\r\n"
        f"{extra}END:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def test_a_parent_named_by_an_update_takes_the_task_under_it(
    client: TestClient, alice: Account
) -> None:
    """The `caldav` library saves a child, then its parent naming it `RELTYPE=CHILD`, then the
    child again with `RELTYPE=PARENT`: that update moves the task under its parent (only a
    PUT creating a task read the relation before), and the child is served with it."""
    headers = {**signed_in(client, alice), "Content-Type": "text/calendar"}
    home = "/dav/calendars/no-list/"
    made = client.put(home + "child.ics", content=_vtodo("child", "Child"), headers=headers)
    assert made.status_code == 201
    parent = _vtodo("parent", "Parent", "RELATED-TO;RELTYPE=CHILD:child\r\n")
    assert client.put(home + "parent.ics", content=parent, headers=headers).status_code == 201
    child = _vtodo("child", "Child", "RELATED-TO;RELTYPE=PARENT:parent\r\n")
    assert client.put(home + "child.ics", content=child, headers=headers).status_code == 204
    tasks = {t["title"]: t for t in client.get("/api/tasks", headers=alice.headers).json()["data"]}
    assert tasks["Child"]["parent_id"] == tasks["Parent"]["id"]
    assert (
        "RELATED-TO;RELTYPE=PARENT:parent\r\n"
        in client.get(home + "child.ics", headers=headers).text
    )


def _query(start: str, end: str) -> str:
    return (
        '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>'
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">'
        f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>"
    )


def test_a_time_range_finds_a_series_by_its_later_occurrences(
    client: TestClient, alice: Account
) -> None:
    """RFC 4791 9.9 expands a recurring component: an open occurrence due before the range
    stands for its later ones (the `caldav` suite's testTodoDatesearch: a yearly task from
    1992 in 1997-2015). Ranges before it, or after its last occurrence, still miss it."""
    made = client.post(
        "/api/tasks",
        headers=alice.headers,
        json={"title": "Weekly", "due_date": "2020-01-06T09:00:00Z", "recurrence":
              "FREQ=WEEKLY;COUNT=10"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    headers = {**signed_in(client, alice), "Depth": "1"}

    def found(start: str, end: str) -> int:
        answer = client.request(
            "REPORT", "/dav/calendars/no-list/", headers=headers, content=_query(start, end)
        )
        return len(responses(answer))

    assert found("20200101T000000Z", "20200107T000000Z") == 1  # the open occurrence
    assert found("20200201T000000Z", "20200204T000000Z") == 1  # the 5th: Monday 3 February
    assert found("20200204T000000Z", "20200209T000000Z") == 0  # between two
    assert found("20190101T000000Z", "20191231T000000Z") == 0  # before the series
    assert found("20200310T000000Z", "20210101T000000Z") == 0  # after the 10th (9 March)
