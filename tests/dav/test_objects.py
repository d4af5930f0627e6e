"""A collection's objects over real HTTP (issue 62; specs/caldav.md, "Objects"): GET, PUT and
DELETE of a task as a VTODO through the task service, with ETags and preconditions; a
collection's listing and its REPORTs; sharing through the access relation; fidelity of what a
client sent; the trash keeping the client's object."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.api.test_app_passwords import basic, create
from tests.conftest import Account
from tests.sharing.helpers import join, make_list, make_task

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
NO_LIST = "/dav/calendars/no-list/"


def signed_in(client: TestClient, who: Account, scope: str = "read_write") -> dict[str, str]:
    made = create(client, who, f"client {scope}", scope=scope)
    return basic(made["username"], made["password"])


def vtodo(uid: str, summary: str = "Water the plants", extra: str = "") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VTODO\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261116T090245Z\r\nSUMMARY:{summary}\r\n"
        f"STATUS:NEEDS-ACTION\r\n{extra}END:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def task_by_id(client: TestClient, who: Account, task_id: int) -> dict[str, Any]:
    """The task as its REST route serves it to `who`."""
    got = client.get(f"/api/tasks/{task_id}", headers=who.headers)
    assert got.status_code == 200, got.text
    data: dict[str, Any] = got.json()["data"]
    return data


def derived_path(list_id: int | None, task_id: int) -> str:
    """Where a task no client wrote is served: its derived name in its list's collection."""
    collection = NO_LIST if list_id is None else f"/dav/calendars/{list_id}/"
    return f"{collection}task-{task_id}@task-api.ics"


def put(client: TestClient, path: str, body: bytes, headers: dict[str, str], **extra: str) -> Any:
    sent = {**headers, "Content-Type": "text/calendar; charset=utf-8", **extra}
    return client.put(path, content=body, headers=sent)


def responses(answer: Any) -> dict[str, ET.Element]:
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    return {r.findtext(f"{D}href") or "": r for r in root.iter(f"{D}response")}


def task_of(client: TestClient, who: Account, title: str) -> dict[str, Any]:
    listed = client.get("/api/tasks", params={"limit": 100}, headers=who.headers).json()["data"]
    [task] = [t for t in listed if t["title"] == title]
    return dict(task)


def test_put_creates_a_task_and_get_serves_it_with_its_etag(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "abc-1@example.com.ics"
    made = put(client, path, vtodo("abc-1@example.com"), headers, **{"If-None-Match": "*"})
    assert made.status_code == 201, made.text
    task = task_of(client, alice, "Water the plants")
    assert task["completed"] is False
    got = client.get(path, headers=headers)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/calendar")
    assert b"UID:abc-1@example.com" in got.content
    tag = got.headers["etag"]
    assert tag.startswith('"') and client.get(path, headers=headers).headers["etag"] == tag
    again = put(client, path, vtodo("abc-1@example.com"), headers, **{"If-None-Match": "*"})
    assert again.status_code == 412


def _count(db_engine: Engine, table: str) -> int:
    with db_engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_if_match_guards_put_and_delete(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "guarded.ics"
    assert put(client, path, vtodo("guarded"), headers).status_code == 201
    tag = client.get(path, headers=headers).headers["etag"]
    stale = '"o' + "0" * 39 + '"'
    edited = vtodo("guarded", "Water the roses")
    assert put(client, path, edited, headers, **{"If-Match": stale}).status_code == 412
    assert task_of(client, alice, "Water the plants")  # nothing changed
    done = put(client, path, edited, headers, **{"If-Match": tag})
    assert done.status_code == 204, done.text
    assert task_of(client, alice, "Water the roses")
    # The old tag is stale now: a write with it is refused, a delete too.
    assert put(client, path, vtodo("guarded", "x"), headers, **{"If-Match": tag}).status_code == 412
    assert client.delete(path, headers={**headers, "If-Match": tag}).status_code == 412
    fresh = client.get(path, headers=headers).headers["etag"]
    assert fresh != tag
    assert client.delete(path, headers={**headers, "If-Match": fresh}).status_code == 204
    assert client.get(path, headers=headers).status_code == 404
    # If-Match on a missing object is 412, not a create.
    assert (
        put(client, NO_LIST + "nope.ics", vtodo("nope"), headers, **{"If-Match": fresh}).status_code
        == 412
    )


def test_a_task_made_through_rest_is_served_and_written_under_its_derived_name(
    client: TestClient, alice: Account
) -> None:
    task_id = make_task(client, alice, "Made in the web app")
    headers = signed_in(client, alice)
    path = f"{NO_LIST}task-{task_id}@task-api.ics"
    got = client.get(path, headers=headers)
    assert got.status_code == 200 and b"SUMMARY:Made in the web app" in got.content
    body = got.content.replace(b"SUMMARY:Made in the web app", b"SUMMARY:Edited on the phone")
    written = put(client, path, body, headers, **{"If-Match": got.headers["etag"]})
    assert written.status_code == 204, written.text
    assert client.get(f"/api/tasks/{task_id}", headers=alice.headers).json()["data"]["title"] == (
        "Edited on the phone"
    )


def test_x_properties_come_back_after_a_rest_edit(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "fidelity.ics"
    extra = "X-CLIENT-COLOUR;X-P=1:teal\r\nLOCATION:Garden\r\n"
    assert put(client, path, vtodo("fidelity", extra=extra), headers).status_code == 201
    task = task_of(client, alice, "Water the plants")
    patched = client.patch(
        f"/api/tasks/{task['id']}", json={"title": "Water the lawn"}, headers=alice.headers
    )
    assert patched.status_code == 200
    got = client.get(path, headers=headers).content
    assert b"X-CLIENT-COLOUR;X-P=1:teal\r\n" in got and b"LOCATION:Garden" in got
    assert b"SUMMARY:Water the lawn" in got and b"Water the plants" not in got


def test_bad_objects_are_4xx_with_a_dav_error_and_write_nothing(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    headers = signed_in(client, alice)
    before = (_count(db_engine, "tasks"), _count(db_engine, "task_dav_objects"))
    event = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e\r\nDTSTART:20261201T100000Z\r\n"
        b"SUMMARY:Party\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    two = vtodo("a").replace(
        b"END:VCALENDAR", b"BEGIN:VTODO\r\nUID:b\r\nSUMMARY:B\r\nEND:VTODO\r\nEND:VCALENDAR"
    )
    cases = {
        b"not a calendar \x00": "valid-calendar-data",
        b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\n": "valid-calendar-data",
        event: "supported-calendar-component",
        two: "valid-calendar-object-resource",
    }
    for body, precondition in cases.items():
        answer = put(client, NO_LIST + "bad.ics", body, headers)
        assert 400 <= answer.status_code < 500, answer.text
        root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
        assert root.tag == f"{D}error" and root.find(f"{C}{precondition}") is not None, answer.text
    huge = put(
        client, NO_LIST + "huge.ics", vtodo("h", extra="X-PAD:" + "a" * 300_000 + "\r\n"), headers
    )
    assert huge.status_code == 413
    assert (_count(db_engine, "tasks"), _count(db_engine, "task_dav_objects")) == before


def test_a_read_password_reads_but_never_writes(client: TestClient, alice: Account) -> None:
    writer = signed_in(client, alice)
    reader = signed_in(client, alice, "read")
    path = NO_LIST + "ro.ics"
    assert put(client, path, vtodo("ro"), writer).status_code == 201
    assert client.get(path, headers=reader).status_code == 200
    assert put(client, path, vtodo("ro", "Changed"), reader).status_code == 403
    assert client.delete(path, headers=reader).status_code == 403
    assert task_of(client, alice, "Water the plants")


def test_sharing_owner_editor_viewer_stranger_and_a_removed_member(
    client: TestClient, alice: Account, bob: Account, register: Callable[..., Account]
) -> None:
    carol = register("carol@example.com")
    list_id = make_list(client, alice, "Garden")
    collection = f"/dav/calendars/{list_id}/"
    owner = signed_in(client, alice)
    assert put(client, collection + "rose.ics", vtodo("rose"), owner).status_code == 201
    join(client, alice, bob, list_id, "editor")
    editor = signed_in(client, bob)
    assert (
        put(client, collection + "tulip.ics", vtodo("tulip", "Plant tulips"), editor).status_code
        == 201
    )
    tag = client.get(collection + "rose.ics", headers=editor).headers["etag"]
    edited = put(
        client,
        collection + "rose.ics",
        vtodo("rose", "Prune the roses"),
        editor,
        **{"If-Match": tag},
    )
    assert edited.status_code == 204, edited.text
    join(client, alice, carol, list_id, "viewer")
    viewer = signed_in(client, carol)
    assert client.get(collection + "rose.ics", headers=viewer).status_code == 200
    for answer in (
        put(client, collection + "rose.ics", vtodo("rose", "Viewer was here"), viewer),
        put(client, collection + "new.ics", vtodo("new"), viewer),
        client.delete(collection + "rose.ics", headers=viewer),
    ):
        assert answer.status_code == 403, answer.text
    titles = {
        t["title"]
        for t in client.get(f"/api/tasks?list_id={list_id}", headers=alice.headers).json()["data"]
    }
    assert titles == {"Prune the roses", "Plant tulips"}
    # A stranger: every request is the missing object's 404, byte for byte.
    stranger = signed_in(client, register("stranger@example.com"))
    missing = client.get(collection + "absent.ics", headers=owner)
    for answer in (
        client.get(collection + "rose.ics", headers=stranger),
        put(client, collection + "rose.ics", vtodo("rose", "Mine now"), stranger),
        put(client, collection + "fresh.ics", vtodo("fresh"), stranger),
        client.delete(collection + "rose.ics", headers=stranger),
        client.get("/dav/calendars/999999/rose.ics", headers=owner),
    ):
        assert (answer.status_code, answer.content) == (404, missing.content)
    # A removed member's collection and objects are gone at once.
    removed = client.delete(f"/api/lists/{list_id}/members/{carol.id}", headers=alice.headers)
    assert removed.status_code == 204, removed.text
    assert (client.get(collection + "rose.ics", headers=viewer).content) == missing.content
    gone = client.request("PROPFIND", collection, headers={**viewer, "Depth": "1"})
    assert gone.status_code == 404


def test_each_reader_gets_its_own_reminders_and_etag(
    client: TestClient, alice: Account, bob: Account
) -> None:
    list_id = make_list(client, alice, "Trips")
    join(client, alice, bob, list_id, "editor")
    collection = f"/dav/calendars/{list_id}/"
    owner, member = signed_in(client, alice), signed_in(client, bob)
    alarm = (
        "DUE:20261220T100000Z\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\n"
        "TRIGGER;RELATED=END:-PT30M\r\nEND:VALARM\r\n"
    )
    assert (
        put(client, collection + "trip.ics", vtodo("trip", extra=alarm), owner).status_code == 201
    )
    mine, theirs = (client.get(collection + "trip.ics", headers=h) for h in (owner, member))
    assert b"BEGIN:VALARM" in mine.content and b"BEGIN:VALARM" not in theirs.content
    assert mine.headers["etag"] != theirs.headers["etag"]


def test_delete_puts_the_task_in_the_trash_and_a_restore_brings_its_object_back(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "trashed.ics"
    assert put(client, path, vtodo("trashed", extra="X-KEEP:me\r\n"), headers).status_code == 201
    task_id = task_of(client, alice, "Water the plants")["id"]
    assert client.delete(path, headers=headers).status_code == 204
    assert client.get(path, headers=headers).status_code == 404
    assert client.get(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 404
    restored = client.post(f"/api/trash/{task_id}/restore", headers=alice.headers)
    assert restored.status_code == 200, restored.text
    got = client.get(path, headers=headers)
    assert got.status_code == 200 and b"X-KEEP:me" in got.content and b"UID:trashed" in got.content


def test_a_trashed_uid_may_be_put_again_as_a_new_task(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "again.ics"
    assert put(client, path, vtodo("again", "First"), headers).status_code == 201
    first = task_of(client, alice, "First")["id"]
    assert client.delete(path, headers=headers).status_code == 204
    assert put(client, path, vtodo("again", "Second"), headers).status_code == 201
    second = task_of(client, alice, "Second")["id"]
    assert second != first
    # Restoring the first: the object there keeps the name; the first is served under its own.
    assert client.post(f"/api/trash/{first}/restore", headers=alice.headers).status_code == 200
    assert b"SUMMARY:Second" in client.get(path, headers=headers).content
    listed = responses(client.request("PROPFIND", NO_LIST, headers={**headers, "Depth": "1"}))
    assert NO_LIST + "again.ics" in listed
    assert f"{NO_LIST}task-{first}@task-api.ics" in listed


def test_a_move_into_a_list_holding_the_name_keeps_the_one_there(
    client: TestClient, alice: Account
) -> None:
    """A task whose object's name and UID a list's object holds moves into that list (a
    PATCH): no error; the list's object keeps them, the moved task is served under its
    derived name there, and gets its own back when it moves out again."""
    headers = signed_in(client, alice)
    garden, shed = make_list(client, alice, "Garden"), make_list(client, alice, "Shed")
    there, moving = f"/dav/calendars/{garden}/", f"/dav/calendars/{shed}/"
    assert put(client, there + "m.ics", vtodo("m", "Stays"), headers).status_code == 201
    assert put(client, moving + "m.ics", vtodo("m", "Moves"), headers).status_code == 201
    moved = task_of(client, alice, "Moves")["id"]
    patched = client.patch(f"/api/tasks/{moved}", json={"list_id": garden}, headers=alice.headers)
    assert patched.status_code == 200, patched.text
    assert b"SUMMARY:Stays" in client.get(there + "m.ics", headers=headers).content
    listed = responses(client.request("PROPFIND", there, headers={**headers, "Depth": "1"}))
    assert set(listed) == {there, there + "m.ics", f"{there}task-{moved}@task-api.ics"}
    back = client.patch(f"/api/tasks/{moved}", json={"list_id": shed}, headers=alice.headers)
    assert back.status_code == 200, back.text
    assert b"SUMMARY:Moves" in client.get(moving + "m.ics", headers=headers).content


def test_a_uid_another_object_holds_is_refused(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    assert put(client, NO_LIST + "one.ics", vtodo("same"), headers).status_code == 201
    answer = put(client, NO_LIST + "two.ics", vtodo("same"), headers)
    assert answer.status_code == 403
    assert ET.fromstring(answer.content).find(f"{C}no-uid-conflict") is not None  # noqa: S314


def test_depth_1_lists_objects_with_the_tags_get_gives(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    for n in range(3):
        assert (
            put(client, f"{NO_LIST}l{n}.ics", vtodo(f"l{n}", f"Task {n}"), headers).status_code
            == 201
        )
    rest = make_task(client, alice, "From the web")
    listed = responses(client.request("PROPFIND", NO_LIST, headers={**headers, "Depth": "1"}))
    hrefs = [f"{NO_LIST}l{n}.ics" for n in range(3)] + [f"{NO_LIST}task-{rest}@task-api.ics"]
    assert set(listed) == {NO_LIST, *hrefs}
    for href in hrefs:
        got = client.get(href, headers=headers)
        assert listed[href].findtext(f".//{D}getetag") == got.headers["etag"]
        assert listed[href].findtext(f".//{D}getcontenttype").startswith("text/calendar")
    allowed = client.options(hrefs[0], headers=headers).headers["Allow"]
    assert allowed == "OPTIONS, PROPFIND, GET, HEAD, PUT, DELETE"


_MULTIGET = """<?xml version="1.0"?>
<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}
</C:calendar-multiget>"""


def test_multiget_returns_each_named_object_once_and_404_for_missing(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    assert put(client, NO_LIST + "m1.ics", vtodo("m1", "Milk"), headers).status_code == 201
    hrefs = "".join(f"<D:href>{NO_LIST}{n}</D:href>" for n in ("m1.ics", "m1.ics", "zz.ics"))
    answer = client.request(
        "REPORT", NO_LIST, content=_MULTIGET.format(hrefs=hrefs), headers={**headers, "Depth": "1"}
    )
    found = responses(answer)
    assert set(found) == {NO_LIST + "m1.ics", NO_LIST + "zz.ics"}
    data = found[NO_LIST + "m1.ics"].findtext(f".//{C}calendar-data") or ""
    assert "SUMMARY:Milk" in data
    assert "404" in (found[NO_LIST + "zz.ics"].findtext(f"{D}status") or "")


def _query(inner: str) -> str:
    return (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        f'<C:comp-filter name="VTODO">{inner}</C:comp-filter></C:comp-filter></C:filter>'
        "</C:calendar-query>"
    )


def test_calendar_query_filters_by_time_range_text_and_absence(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    put(client, NO_LIST + "dec.ics", vtodo("dec", "Buy gifts", "DUE:20261215T100000Z\r\n"), headers)
    put(
        client, NO_LIST + "jan.ics", vtodo("jan", "Tax return", "DUE:20270115T100000Z\r\n"), headers
    )
    put(client, NO_LIST + "undated.ics", vtodo("undated", "Someday"), headers)
    put(
        client,
        NO_LIST + "done.ics",
        vtodo("done", "Done gifts", "COMPLETED:20261120T100000Z\r\n").replace(
            b"NEEDS-ACTION", b"COMPLETED"
        ),
        headers,
    )

    def hrefs(inner: str) -> set[str]:
        answer = client.request(
            "REPORT", NO_LIST, content=_query(inner), headers={**headers, "Depth": "1"}
        )
        return {h.rsplit("/", 1)[1] for h in responses(answer)}

    december = '<C:time-range start="20261201T000000Z" end="20261231T000000Z"/>'
    assert hrefs(december) == {"dec.ics", "undated.ics"}  # done: completed today, not in it
    text_match = '<C:prop-filter name="SUMMARY"><C:text-match>GIFTS</C:text-match></C:prop-filter>'
    assert hrefs(text_match) == {"dec.ics", "done.ics"}
    open_only = '<C:prop-filter name="COMPLETED"><C:is-not-defined/></C:prop-filter>'
    assert hrefs(open_only) == {"dec.ics", "jan.ics", "undated.ics"}
    assert hrefs("") == {"dec.ics", "jan.ics", "undated.ics", "done.ics"}
    event_query = _query("").replace('name="VTODO"', 'name="VEVENT"')
    answer = client.request("REPORT", NO_LIST, content=event_query, headers=headers)
    assert responses(answer) == {}
    bad = client.request("REPORT", NO_LIST, content=b"<x", headers=headers)
    assert bad.status_code == 400


def test_a_recurring_master_sent_completed_ends_the_series(
    client: TestClient, alice: Account
) -> None:
    """A master's STATUS is the whole recurrence set's (RFC 5545; recurrence_forms
    MASTER_COMPLETED): the task completed, no next occurrence, the object served as sent."""
    headers = signed_in(client, alice)
    path = NO_LIST + "weekly.ics"
    series = "DUE:20261207T090000Z\r\nRRULE:FREQ=WEEKLY\r\nX-SERIES:kept\r\n"
    assert put(client, path, vtodo("weekly", "Bins", series), headers).status_code == 201
    done = vtodo("weekly", "Bins", series).replace(b"NEEDS-ACTION", b"COMPLETED")
    for _ in range(2):  # the same PUT again (a retry) changes nothing more
        assert put(client, path, done, headers).status_code == 204
        listed = client.get(
            "/api/tasks", params={"limit": 100, "completed": "true"}, headers=alice.headers
        ).json()["data"]
        [bins] = [t for t in listed if t["title"] == "Bins"]
        assert bins["completed"] and bins["recurrence"] is None
        open_ = client.get("/api/tasks", params={"limit": 100}, headers=alice.headers).json()
        assert not [t for t in open_["data"] if t["title"] == "Bins" and not t["completed"]]
        served = client.get(path, headers=headers).content
        assert b"X-SERIES:kept" in served and b"STATUS:COMPLETED" in served
        assert b"RRULE:FREQ=WEEKLY" in served


def test_an_editors_object_is_kept_in_the_owners_space_and_a_commenter_only_reads(
    client: TestClient, alice: Account, bob: Account, register: Callable[..., Account]
) -> None:
    list_id = make_list(client, alice, "House")
    join(client, alice, bob, list_id, "editor")
    commenter_account = register("dave@example.com")
    join(client, alice, commenter_account, list_id, "commenter")
    path = f"/dav/calendars/{list_id}/paint.ics"
    editor, owner = signed_in(client, bob), signed_in(client, alice)
    commenter = signed_in(client, commenter_account)
    made = put(client, path, vtodo("paint", "Paint the door", "X-EDITOR-APP:1\r\n"), editor)
    assert made.status_code == 201, made.text
    seen = client.get(path, headers=owner)
    assert b"X-EDITOR-APP:1" in seen.content
    assert client.get(path, headers=commenter).status_code == 200
    refused = put(client, path, vtodo("paint", "Paint it red"), commenter)
    assert refused.status_code == 403
    assert client.delete(path, headers=commenter).status_code == 403
    assert client.get(path, headers=owner).content == seen.content


def test_hostile_names_and_bodies_are_4xx(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    missing = client.get(NO_LIST + "absent.ics", headers=headers)
    # A NUL or a line break in a path is refused at the edge (the API's own 4xx).
    for name in ("a%00b.ics", "%0a.ics"):
        assert 400 <= client.get(NO_LIST + name, headers=headers).status_code < 500
    odd = NO_LIST + "%FF%FE.ics"  # an odd name is a name: kept and served under it
    assert client.get(odd, headers=headers).content == missing.content
    assert put(client, odd, vtodo("odd"), headers).status_code == 201
    assert client.get(odd, headers=headers).status_code == 200
    for name in ("x" * 2000 + ".ics", "a%2Fb.ics"):
        assert client.get(NO_LIST + name, headers=headers).content == missing.content, name
        answer = put(client, NO_LIST + name, vtodo("hostile"), headers)
        assert 400 <= answer.status_code < 500, (name, answer.text)
    for body in (b"", b"\xff\xfe", vtodo("n", "A\x00B")):
        answer = put(client, NO_LIST + "body.ics", body, headers)
        assert 400 <= answer.status_code < 500, (body, answer.text)
    bad_range = _query('<C:time-range start="yesterday"/>')
    answer = client.request("REPORT", NO_LIST, content=bad_range, headers=headers)
    assert 400 <= answer.status_code < 500
    unknown = client.request("REPORT", NO_LIST, content=b"<D:x xmlns:D='DAV:'/>", headers=headers)
    assert unknown.status_code == 403
    entity = (
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]>'
        b'<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav">&a;</C:calendar-query>'
    )
    assert client.request("REPORT", NO_LIST, content=entity, headers=headers).status_code == 400


def test_dav_writes_reach_the_change_feed_and_activity_and_undo(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "fed.ics"
    assert put(client, path, vtodo("fed", "Feed me"), headers).status_code == 201
    task_id = task_of(client, alice, "Feed me")["id"]
    assert put(client, path, vtodo("fed", "Fed"), headers).status_code == 204
    assert client.delete(path, headers=headers).status_code == 204
    feed = client.get("/api/tasks/changes", params={"limit": 100}, headers=alice.headers)
    changes = [(c["type"], c["task_id"]) for c in feed.json()["data"]]
    assert [kind for kind, task in changes if task == task_id] == [
        "created",
        "updated",
        "deleted",
    ]
    newest = client.get("/api/activity", params={"limit": 1}, headers=alice.headers).json()
    event_id = newest["data"][0]["id"]
    undone = client.post(f"/api/activity/{event_id}/undo", headers=alice.headers)
    assert undone.status_code == 200, undone.text
    assert client.get(path, headers=headers).status_code == 200  # the delete undone
