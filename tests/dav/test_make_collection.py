"""MKCALENDAR (RFC 4791 5.3.1) and extended MKCOL (RFC 5689) over real HTTP and the real
database (issue 70; specs/caldav.md, "Making a collection"): a list made through REST's
`ListService.create`, addressed by its id, listed by a PROPFIND of the home and by
`GET /api/lists`, taking tasks; what exists, what is not a task calendar and every hostile
body refused with a DAV error body and nothing made."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.dav.xml import MAX_BODY_BYTES
from backend.models.task_list import LISTS_PER_USER
from tests.conftest import Account
from tests.dav.test_edges import _dav_error, _hostile
from tests.dav.test_objects import NO_LIST, put, responses, signed_in, task_of, vtodo
from tests.sharing.helpers import make_list

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
NAMESPACES = (
    'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"'
)


def _components(*names: str) -> str:
    comps = "".join(f'<C:comp name="{name}"/>' for name in names)
    return f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"


VTODO_ONLY = _components("VTODO")


def _mkcalendar(props: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><C:mkcalendar {NAMESPACES}>'
        f"<D:set><D:prop>{props}</D:prop></D:set></C:mkcalendar>"
    ).encode()


def _mkcol(props: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:mkcol {NAMESPACES}>'
        f"<D:set><D:prop>{props}</D:prop></D:set></D:mkcol>"
    ).encode()


CALENDAR_TYPE = "<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>"
# What Apple Reminders sends when a person adds a list (its order, time zone and colour
# with alpha): the order and time zone are not kept, the list is made.
APPLE_BODY = _mkcalendar(
    "<D:displayname>Groceries</D:displayname><A:calendar-color>#FF2968FF</A:calendar-color>"
    "<A:calendar-order>3</A:calendar-order><C:calendar-timezone>BEGIN:VCALENDAR\r\n"
    "END:VCALENDAR</C:calendar-timezone>" + VTODO_ONLY
)


def _lists(client: TestClient, who: Account) -> dict[str, dict[str, Any]]:
    got = client.get("/api/lists", headers=who.headers)
    assert got.status_code == 200, got.text
    return {row["name"]: row for row in got.json()["data"]}


def _home(client: TestClient, headers: dict[str, str]) -> dict[str, ET.Element]:
    body = b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop></D:propfind>'
    answer = client.request(
        "PROPFIND", "/dav/calendars/", content=body, headers={**headers, "Depth": "1"}
    )
    return responses(answer)


def test_mkcalendar_makes_a_list_that_rest_and_a_propfind_see_and_that_takes_tasks(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    headers = signed_in(client, alice)
    made = client.request(
        "MKCALENDAR", "/dav/calendars/7D5E1A6B-0C9F/", content=APPLE_BODY, headers=headers
    )
    assert made.status_code == 201, made.text
    row = _lists(client, alice)["Groceries"]
    assert row["color"] == "#ff2968"  # Apple's alpha dropped, as PROPPATCH drops it
    location = f"/dav/calendars/{row['id']}/"
    assert made.headers["Location"] == location
    assert "extended-mkcol" in made.headers["DAV"]
    # The home lists it where the Location said, with its name.
    listed = _home(client, headers)
    assert listed[location].findtext(f".//{D}displayname") == "Groceries"
    # A task PUT into it is in the list.
    assert put(client, location + "milk.ics", vtodo("milk", "Milk"), headers).status_code == 201
    assert task_of(client, alice, "Milk")["list_id"] == row["id"]
    # REST's event: the same service made it.
    with db_engine.connect() as conn:
        types = conn.execute(
            text("SELECT type FROM task_events WHERE list_id = :l AND type LIKE 'list.%'"),
            {"l": row["id"]},
        ).scalars()
        assert list(types) == ["list.created"]


def test_extended_mkcol_makes_a_list_named_by_its_segment_when_the_body_names_none(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    named = client.request(
        "MKCOL",
        "/dav/calendars/anything/",
        content=_mkcol(CALENDAR_TYPE + "<D:displayname>Work</D:displayname>" + VTODO_ONLY),
        headers=headers,
    )
    assert named.status_code == 201, named.text
    # vdirsyncer's way: the folder's name is the segment, no displayname sent.
    plain = client.request(
        "MKCOL", "/dav/calendars/garden/", content=_mkcol(CALENDAR_TYPE), headers=headers
    )
    assert plain.status_code == 201, plain.text
    lists = _lists(client, alice)
    assert named.headers["Location"] == f"/dav/calendars/{lists['Work']['id']}/"
    assert plain.headers["Location"] == f"/dav/calendars/{lists['garden']['id']}/"
    assert lists["garden"]["color"] is None
    listed = _home(client, headers)
    assert plain.headers["Location"] in listed and named.headers["Location"] in listed
    # An empty MKCALENDAR body: a task list named by its segment.
    empty = client.request("MKCALENDAR", "/dav/calendars/Errands/", headers=headers)
    assert empty.status_code == 201, empty.text
    assert "Errands" in _lists(client, alice)


def test_an_existing_url_is_405_and_nothing_is_made(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """The server's own segments (a list id, `no-list`) exist, or are the server's to give:
    405 with the collection's Allow, the same bytes for Alice's list, Bob's and a missing one
    (a stranger learns nothing); the home and an object's path are 405 too."""
    headers = signed_in(client, alice)
    own = make_list(client, alice, "Mine")
    theirs = make_list(client, bob, "Bob's")
    before = _lists(client, alice)
    answers = [
        client.request("MKCALENDAR", path, content=APPLE_BODY, headers=headers)
        for path in (
            f"/dav/calendars/{own}/",
            f"/dav/calendars/{theirs}/",
            "/dav/calendars/9999999/",
        )
    ]
    for answer in answers:
        _dav_error(answer, 405)
        assert "PROPPATCH" in answer.headers["Allow"]
    assert len({(a.content, a.headers["Allow"]) for a in answers}) == 1
    for method in ("MKCALENDAR", "MKCOL"):
        _dav_error(client.request(method, NO_LIST, headers=headers), 405)
        _dav_error(client.request(method, "/dav/calendars/", headers=headers), 405)
        _dav_error(client.request(method, NO_LIST + "x.ics/", headers=headers), 405)
    # A name the caller's lists have: REST's 409, as a DAV error body.
    _dav_error(client.request("MKCALENDAR", "/dav/calendars/mine/", headers=headers), 409)
    assert _lists(client, alice) == before
    assert _lists(client, bob).keys() == {"Bob's"}


def test_a_calendar_of_events_or_a_plain_collection_is_refused(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    events = _components("VEVENT")
    for method, body in (
        ("MKCALENDAR", _mkcalendar(events)),
        ("MKCOL", _mkcol(CALENDAR_TYPE + events)),
    ):
        root = _dav_error(
            client.request(method, "/dav/calendars/events/", content=body, headers=headers), 403
        )
        assert root.find(f"{C}supported-calendar-component") is not None
    plain = ("", "<D:resourcetype><D:collection/></D:resourcetype>")
    for props in plain:
        body = _mkcol(props) if props else b""
        root = _dav_error(
            client.request("MKCOL", "/dav/calendars/folder/", content=body, headers=headers), 403
        )
        assert root.find(f"{D}valid-resourcetype") is not None
    # Events and tasks asked together: a task list (its component set says VTODO only).
    both = _components("VEVENT", "VTODO")
    made = client.request(
        "MKCALENDAR", "/dav/calendars/both/", content=_mkcalendar(both), headers=headers
    )
    assert made.status_code == 201, made.text
    assert set(_lists(client, alice)) == {"both"}


_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    f"<C:mkcalendar {NAMESPACES}><D:set><D:prop><D:displayname>&lol3;</D:displayname>"
    "</D:prop></D:set></C:mkcalendar>"
).encode()
HOSTILE = {
    "unknown encoding": (_hostile("x-no-such").replace(b"propfind", b"mkcol"), 400),
    "NUL byte": (_mkcalendar("<D:displayname>a\x00b</D:displayname>"), 400),
    "NUL reference": (_mkcalendar("<D:displayname>a&#0;b</D:displayname>"), 400),
    "billion laughs": (_LAUGHS, 400),
    "wrong root": (b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>', 400),
    "not xml": (b"\xff\xfe{json: 1}", 400),
    "set without prop": (f"<C:mkcalendar {NAMESPACES}><D:set/></C:mkcalendar>".encode(), 400),
    "remove": (
        f"<C:mkcalendar {NAMESPACES}><D:remove><D:prop><D:displayname/></D:prop></D:remove>"
        "</C:mkcalendar>".encode(),
        400,
    ),
    "long name": (_mkcalendar(f"<D:displayname>{'x' * 101}</D:displayname>"), 422),
    "huge name": (_mkcalendar(f"<D:displayname>{'x' * 200_000}</D:displayname>"), 422),
    "name of elements": (_mkcalendar("<D:displayname><D:href>x</D:href></D:displayname>"), 422),
    "blank name": (_mkcalendar("<D:displayname>   </D:displayname>"), 422),
    "two-line name": (_mkcalendar("<D:displayname>a&#10;b</D:displayname>"), 422),
    "colour": (_mkcalendar("<A:calendar-color>red</A:calendar-color>"), 422),
    "past the limit": (
        _mkcalendar("<D:displayname>" + "x" * MAX_BODY_BYTES + "</D:displayname>"),
        413,
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_bad_body_is_a_4xx_with_a_dav_error_and_nothing_made(
    client: TestClient, alice: Account, case: str
) -> None:
    headers = signed_in(client, alice)
    body, status = HOSTILE[case]
    method = "MKCOL" if b"mkcol" in body[:200] else "MKCALENDAR"
    root = _dav_error(
        client.request(method, "/dav/calendars/new/", content=body, headers=headers), status
    )
    message = root.findtext("{urn:x-task-api:}message") or ""
    for leak in ("Traceback", "Error", ".py", "xxxxxxxxxx"):
        assert leak not in message, message
    assert _lists(client, alice) == {}


@pytest.mark.parametrize("segment", ["%00", "a%0Ab", "x" * 300, "%20"])
def test_a_segment_no_list_may_be_named_is_a_422_when_the_body_names_none(
    client: TestClient, alice: Account, segment: str
) -> None:
    headers = signed_in(client, alice)
    answer = client.request("MKCALENDAR", f"/dav/calendars/{segment}/", headers=headers)
    _dav_error(answer, 422)
    assert _lists(client, alice) == {}
    # Named by the body, the segment is only a path.
    body = _mkcalendar("<D:displayname>Named</D:displayname>")
    made = client.request("MKCALENDAR", f"/dav/calendars/{segment}/", content=body, headers=headers)
    assert made.status_code == 201, made.text
    assert set(_lists(client, alice)) == {"Named"}


def test_signing_in_comes_first_and_a_read_password_makes_nothing(
    client: TestClient, alice: Account
) -> None:
    """No credential or a bearer token: 401 before the body is parsed; a `read` password:
    403, before it too."""
    reading = signed_in(client, alice, "read")
    for headers, status in (({}, 401), (alice.headers, 401), (reading, 403)):
        for method in ("MKCALENDAR", "MKCOL"):
            answer = client.request(method, "/dav/calendars/new/", content=_LAUGHS, headers=headers)
            _dav_error(answer, status)
    assert _lists(client, alice) == {}


def test_the_list_limit_is_rests(client: TestClient, alice: Account, db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task_lists (user_id, name, name_key, position) "
                "SELECT :u, 'l' || n, 'l' || n, n FROM generate_series(1, :count) AS n"
            ),
            {"u": alice.id, "count": LISTS_PER_USER},
        )
    headers = signed_in(client, alice)
    root = _dav_error(client.request("MKCALENDAR", "/dav/calendars/more/", headers=headers), 422)
    assert root.findtext("{urn:x-task-api:}code") == "LIMIT_REACHED"
    assert len(_lists(client, alice)) == LISTS_PER_USER


def test_a_users_new_list_is_its_own(client: TestClient, alice: Account, bob: Account) -> None:
    made = client.request(
        "MKCALENDAR", "/dav/calendars/b/", content=APPLE_BODY, headers=signed_in(client, bob)
    )
    assert made.status_code == 201, made.text
    assert "Groceries" in _lists(client, bob)
    assert _lists(client, alice) == {}
    mine = signed_in(client, alice)
    assert made.headers["Location"] not in _home(client, mine)
    gone = client.request("PROPFIND", made.headers["Location"], headers={**mine, "Depth": "0"})
    _dav_error(gone, 404)
    # Alice may make her own list of the same name.
    again = client.request("MKCALENDAR", "/dav/calendars/a/", content=APPLE_BODY, headers=mine)
    assert again.status_code == 201, again.text
    assert again.headers["Location"] != made.headers["Location"]


def test_two_devices_making_one_list_at_once_make_one(
    unlimited_live_server: str, client: TestClient, alice: Account
) -> None:
    """Two of Alice's devices add the same list at once (the name is unique in the insert,
    a constraint, not a check before it): one `201`, the other REST's `409`, one list."""
    auth = signed_in(client, alice)
    devices = [auth, auth]  # one password on two devices, each its own connection
    rounds = 10
    for round_ in range(rounds):
        barrier = threading.Barrier(len(devices))
        body = _mkcalendar(f"<D:displayname>Trip {round_}</D:displayname>")

        def send(
            auth: dict[str, str],
            round_: int = round_,
            body: bytes = body,
            barrier: threading.Barrier = barrier,
        ) -> int:
            with httpx.Client(base_url=unlimited_live_server, headers=auth, timeout=120) as http:
                http.request("OPTIONS", "/dav/calendars/")  # connected before the barrier
                barrier.wait(timeout=120)
                path = f"/dav/calendars/trip-{round_}/"
                return http.request("MKCALENDAR", path, content=body).status_code

        with ThreadPoolExecutor(max_workers=len(devices)) as pool:
            assert sorted(pool.map(send, devices)) == [201, 409]
    names = _lists(client, alice)
    assert sorted(names) == sorted(f"Trip {n}" for n in range(rounds))
