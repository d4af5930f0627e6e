"""`sync-collection` (RFC 6578) and a collection's `sync-token` / `getctag` over real HTTP
(issue 62; specs/caldav.md, "Sync"): the initial sync, changes and deletions made through
any door since a token, tokens refused, limits, and the access relation."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.dav.test_objects import NO_LIST, put, responses, signed_in, vtodo
from tests.mcp.conftest import call_tool_rpc
from tests.sharing.helpers import join, make_list, make_task

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
GETETAG = "<D:getetag/>"


def sync(
    client: TestClient,
    path: str,
    headers: dict[str, str],
    token: str = "",
    props: str = GETETAG,
    extra: str = "",
) -> Any:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:" '
        f'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:sync-token>{token}</D:sync-token>'
        f"<D:sync-level>1</D:sync-level>{extra}<D:prop>{props}</D:prop></D:sync-collection>"
    )
    return client.request("REPORT", path, content=body, headers={**headers, "Depth": "0"})


def synced(answer: Any) -> tuple[str, dict[str, str]]:
    """A sync's new token and, per href, its ETag or its status (`404`, `507`)."""
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    members: dict[str, str] = {}
    for response in root.findall(f"{D}response"):
        href = response.findtext(f"{D}href") or ""
        assert href not in members, f"{href} reported twice"
        status = response.findtext(f"{D}status")
        if status is not None:
            members[href] = status.split()[1]
        else:
            members[href] = response.findtext(f"{D}propstat/{D}prop/{D}getetag") or ""
    token = root.findtext(f"{D}sync-token")
    assert token, answer.text
    return token, members


def derived(collection: str, task_id: int) -> str:
    return f"{collection}task-{task_id}@task-api.ics"


def test_a_rest_delete_is_a_404_in_the_next_sync(client: TestClient, alice: Account) -> None:
    """Deliberate break "leave deletions out of a sync": the sync after the DELETE fails."""
    headers = signed_in(client, alice)
    kept = NO_LIST + "phone-1.ics"
    assert put(client, kept, vtodo("phone-1", "From the phone"), headers).status_code == 201
    made_here = make_task(client, alice, "From the web app")
    token, first = synced(sync(client, NO_LIST, headers))
    assert set(first) == {kept, derived(NO_LIST, made_here)}
    from_phone = next(
        t["id"]
        for t in client.get("/api/tasks", headers=alice.headers).json()["data"]
        if t["title"] == "From the phone"
    )
    for task_id in (from_phone, made_here):
        deleted = client.delete(f"/api/tasks/{task_id}", headers=alice.headers)
        assert deleted.status_code == 204, deleted.text
    after, members = synced(sync(client, NO_LIST, headers, token))
    # The phone's object under the name it PUT; the other under its derived name. (A gone
    # task's derived name is reported too: what a client held while nobody had PUT it.)
    assert members == {
        kept: "404",
        derived(NO_LIST, made_here): "404",
        derived(NO_LIST, from_phone): "404",
    }
    assert after != token
    # Nothing since: an empty answer, the same token.
    assert synced(sync(client, NO_LIST, headers, after)) == (after, {})


def test_the_initial_sync_lists_every_object_with_the_etags_a_listing_gives(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    list_id = make_list(client, alice, "Groceries")
    collection = f"/dav/calendars/{list_id}/"
    ids = [make_task(client, alice, f"Buy {n}", list_id=list_id) for n in range(3)]
    make_task(client, alice, "In no list")
    token, members = synced(sync(client, collection, headers))
    assert token.startswith(f"urn:x-task-api:sync:{list_id}:")
    assert set(members) == {derived(collection, i) for i in ids}
    for href, tag in members.items():
        assert client.get(href, headers=headers).headers["etag"] == tag
    with_data = sync(client, collection, headers, props=GETETAG + "<C:calendar-data/>")
    assert with_data.content.count(b"BEGIN:VTODO") == 3
    assert synced(sync(client, collection, headers, token)) == (token, {})


def test_edits_through_rest_and_dav_are_reported_with_their_new_etags(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "x-prop.ics"
    assert put(client, path, vtodo("x-prop", extra="X-CLIENT:1\r\n"), headers).status_code == 201
    other = make_task(client, alice, "Untouched")
    token, members = synced(sync(client, NO_LIST, headers))
    old_tag = members[path]
    # A PUT that changes only what we do not model: the task is the same, its object not.
    done = put(client, path, vtodo("x-prop", extra="X-CLIENT:2\r\n"), headers)
    assert done.status_code == 204, done.text
    token, members = synced(sync(client, NO_LIST, headers, token))
    assert set(members) == {path}
    assert members[path] == client.get(path, headers=headers).headers["etag"] != old_tag
    # A REST edit of the other task.
    edited = client.patch(f"/api/tasks/{other}", json={"title": "Touched"}, headers=alice.headers)
    assert edited.status_code == 200, edited.text
    token, members = synced(sync(client, NO_LIST, headers, token))
    assert members == {
        derived(NO_LIST, other): client.get(derived(NO_LIST, other), headers=headers).headers[
            "etag"
        ]
    }


def test_a_move_out_of_a_list_is_a_404_there_and_a_change_in_the_other(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    home, away = make_list(client, alice, "Home"), make_list(client, alice, "Away")
    here, there = f"/dav/calendars/{home}/", f"/dav/calendars/{away}/"
    kept = here + "moving.ics"
    assert put(client, kept, vtodo("moving", "Moving box"), headers).status_code == 201
    plain = make_task(client, alice, "Plain", list_id=home)
    at_home, _ = synced(sync(client, here, headers))
    at_away, _ = synced(sync(client, there, headers))
    moved = [t["id"] for t in client.get("/api/tasks", headers=alice.headers).json()["data"]]
    for task_id in moved:
        answer = client.patch(
            f"/api/tasks/{task_id}", json={"list_id": away}, headers=alice.headers
        )
        assert answer.status_code == 200, answer.text
    _, left = synced(sync(client, here, headers, at_home))
    assert {href for href, status in left.items() if status == "404"} >= {
        kept,
        derived(here, plain),
    }
    assert all(status == "404" for status in left.values())
    _, arrived = synced(sync(client, there, headers, at_away))
    assert set(arrived) == {there + "moving.ics", derived(there, plain)}
    assert all(tag.startswith('"') for tag in arrived.values())


def test_a_trashed_task_restored_comes_back_and_a_dav_delete_is_a_404(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    path = NO_LIST + "undo-me.ics"
    assert put(client, path, vtodo("undo-me"), headers).status_code == 201
    token, _ = synced(sync(client, NO_LIST, headers))
    assert client.delete(path, headers=headers).status_code == 204
    token, members = synced(sync(client, NO_LIST, headers, token))
    assert members[path] == "404" and set(members.values()) == {"404"}
    trashed = client.get("/api/trash", headers=alice.headers).json()["data"]
    restored = client.post(f"/api/trash/{trashed[0]['id']}/restore", headers=alice.headers)
    assert restored.status_code < 300, restored.text
    _, members = synced(sync(client, NO_LIST, headers, token))
    assert members == {path: client.get(path, headers=headers).headers["etag"]}


def test_a_members_sync_sees_the_owners_changes_and_loses_the_collection_when_removed(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice, "Shared")
    collection = f"/dav/calendars/{list_id}/"
    join(client, alice, bob, list_id, "editor")
    task = make_task(client, alice, "Shared task", list_id=list_id)
    bobs = signed_in(client, bob)
    token, members = synced(sync(client, collection, bobs))
    assert set(members) == {derived(collection, task)}
    assert client.delete(f"/api/tasks/{task}", headers=alice.headers).status_code == 204
    token, members = synced(sync(client, collection, bobs, token))
    assert members == {derived(collection, task): "404"}
    # Bob leaves: his collection is gone at once, the same 404 as a list that never was.
    with db_engine.begin() as conn:
        conn.execute(
            text("DELETE FROM list_members WHERE list_id = :l AND member_id = :m"),
            {"l": list_id, "m": bob.id},
        )
    gone = sync(client, collection, bobs, token)
    missing = sync(
        client, "/dav/calendars/999999999/", bobs, token.replace(str(list_id), "999999999")
    )
    assert gone.status_code == missing.status_code == 404
    assert gone.content == missing.content


def test_a_strangers_sync_of_another_users_list_is_the_missing_ones_404(
    client: TestClient, alice: Account, bob: Account
) -> None:
    list_id = make_list(client, alice, "Private")
    make_task(client, alice, "Secret", list_id=list_id)
    bobs = signed_in(client, bob)
    theirs = sync(client, f"/dav/calendars/{list_id}/", bobs)
    nothing = sync(client, "/dav/calendars/999999999/", bobs)
    assert theirs.status_code == nothing.status_code == 404
    assert theirs.content == nothing.content
    token = f"urn:x-task-api:sync:{list_id}:0"
    assert sync(client, f"/dav/calendars/{list_id}/", bobs, token).content == nothing.content


def _refused(answer: Any, condition: str) -> None:
    assert answer.status_code in (403, 507), answer.text
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    assert root.tag == f"{D}error" and root.find(f"{D}{condition}") is not None, answer.text


def test_tokens_that_are_not_this_collections_or_too_old_are_refused(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    headers = signed_in(client, alice)
    list_id = make_list(client, alice)
    token, _ = synced(sync(client, NO_LIST, headers))
    position = int(token.rsplit(":", 1)[1])
    for bad in (
        "not a token",
        "urn:x-task-api:sync:no-list:-1",
        "urn:x-task-api:sync:no-list:99999999999999999999999",
        f"urn:x-task-api:sync:{list_id}:{position}",  # another collection's
    ):
        answer = sync(client, NO_LIST, headers, bad)
        assert answer.status_code == 403, bad
        _refused(answer, "valid-sync-token")
    # No XML holds a NUL: the body is malformed.
    assert sync(client, NO_LIST, headers, "urn:x-task-api:sync:no-list:1&#0;").status_code == 400
    # Pruned past the token: the feed cannot say what changed since.
    make_task(client, alice, "After the token")
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task_events_pruned (user_id, through_id) VALUES (:u, :t) "
                "ON CONFLICT (user_id) DO UPDATE SET through_id = excluded.through_id"
            ),
            {"u": alice.id, "t": position + 1},
        )
    _refused(sync(client, NO_LIST, headers, token), "valid-sync-token")
    assert synced(sync(client, NO_LIST, headers))[1]  # an initial sync starts again


def test_a_limit_truncates_with_a_507_and_a_token_to_go_on_from(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    token, _ = synced(sync(client, NO_LIST, headers))
    ids = [make_task(client, alice, f"Task {n}") for n in range(3)]
    limit = "<D:limit><D:nresults>2</D:nresults></D:limit>"
    token, members = synced(sync(client, NO_LIST, headers, token, extra=limit))
    assert members.pop(NO_LIST) == "507"
    assert set(members) == {derived(NO_LIST, i) for i in ids[:2]}
    token, members = synced(sync(client, NO_LIST, headers, token, extra=limit))
    assert members == {derived(NO_LIST, ids[2]): members[derived(NO_LIST, ids[2])]}
    # The initial listing has no partial token: past the limit it is refused.
    _refused(sync(client, NO_LIST, headers, extra=limit), "number-of-matches-within-limits")
    for bad in ("0", "-1", "x", "99999999999"):
        wrong = f"<D:limit><D:nresults>{bad}</D:nresults></D:limit>"
        assert sync(client, NO_LIST, headers, token, extra=wrong).status_code == 400


def test_propfind_gives_the_sync_token_and_ctag_and_lists_the_report(
    client: TestClient, alice: Account
) -> None:
    headers = signed_in(client, alice)
    body = (
        '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop>'
        "<D:sync-token/><CS:getctag/><D:supported-report-set/></D:prop></D:propfind>"
    )

    def props() -> dict[str, ET.Element]:
        answer = client.request(
            "PROPFIND", "/dav/calendars/", content=body, headers={**headers, "Depth": "1"}
        )
        assert answer.status_code == 207, answer.text
        root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
        return {r.findtext(f"{D}href") or "": r for r in root.iter(f"{D}response")}

    before = props()[NO_LIST]
    token = before.findtext(f".//{D}sync-token")
    assert token and before.findtext(f".//{CS}getctag") == token
    reports = {r.tag for r in before.iter()}
    assert f"{D}sync-collection" in reports
    assert synced(sync(client, NO_LIST, headers))[0] == token
    make_task(client, alice, "Changes the tag")
    after = props()[NO_LIST]
    assert after.findtext(f".//{D}sync-token") not in (None, token)
    # Depth 0 on the collection says the same.
    one = client.request("PROPFIND", NO_LIST, content=body, headers={**headers, "Depth": "0"})
    assert after.findtext(f".//{D}sync-token").encode() in one.content  # type: ignore[union-attr]


def test_a_members_own_reminders_changed_in_the_web_app_reach_its_sync(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """A member's reminders are its own (its ETag is a hash of what it reads): set in the web
    app, the task is changed for that member's client."""
    list_id = make_list(client, alice, "Trip")
    collection = f"/dav/calendars/{list_id}/"
    join(client, alice, bob, list_id, "editor")
    task = make_task(
        client, alice, "Book the train", list_id=list_id, due_date="2027-01-10T09:00:00Z"
    )
    bobs = signed_in(client, bob)
    bob_token, _ = synced(sync(client, collection, bobs))
    href = derived(collection, task)
    before = client.get(href, headers=bobs).headers["etag"]
    reminded = client.patch(
        f"/api/tasks/{task}", json={"reminders": [{"minutes_before_due": 15}]}, headers=bob.headers
    )
    assert reminded.status_code == 200, reminded.text
    after = client.get(href, headers=bobs).headers["etag"]
    assert after != before
    assert synced(sync(client, collection, bobs, bob_token))[1] == {href: after}


def test_changes_through_mcp_reach_the_sync(client: TestClient, alice: Account) -> None:
    headers = signed_in(client, alice)
    done, gone = make_task(client, alice, "Done by the assistant"), make_task(client, alice, "Gone")
    token, _ = synced(sync(client, NO_LIST, headers))
    for tool, task_id in (("complete_task", done), ("delete_task", gone)):
        result = call_tool_rpc(client, "/mcp", alice.token, tool, {"task_id": task_id})
        assert result["isError"] is False, result
    _, members = synced(sync(client, NO_LIST, headers, token))
    assert members == {
        derived(NO_LIST, done): client.get(derived(NO_LIST, done), headers=headers).headers["etag"],
        derived(NO_LIST, gone): "404",
    }


def test_a_completed_occurrence_handed_over_is_reported_under_both_names(
    client: TestClient, alice: Account
) -> None:
    """Completing a recurring task over DAV hands the client's name to the next occurrence;
    the completed one is served under its derived name: both are reported, as served now."""
    headers = signed_in(client, alice)
    path = NO_LIST + "weekly.ics"
    series = "DUE:20261207T090000Z\r\nRRULE:FREQ=WEEKLY\r\n"
    assert put(client, path, vtodo("weekly", "Bins", series), headers).status_code == 201
    token, _ = synced(sync(client, NO_LIST, headers))
    # Tasks.org's completion: the master's DUE advanced along the rule (a master sent
    # COMPLETED would end the series, handing nothing over).
    advanced = vtodo("weekly", "Bins", series.replace("20261207", "20261214"))
    assert put(client, path, advanced, headers).status_code == 204
    listed = client.get("/api/tasks", params={"limit": 100}, headers=alice.headers).json()["data"]
    completed = next(t["id"] for t in listed if t["title"] == "Bins" and t["completed"])
    _, members = synced(sync(client, NO_LIST, headers, token))
    assert members == {
        href: client.get(href, headers=headers).headers["etag"]
        for href in (path, derived(NO_LIST, completed))
    }


_TOKENS = (
    '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop>'
    "<D:sync-token/><CS:getctag/></D:prop></D:propfind>"
)


def _tokens(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    """Each collection of the home's `sync-token`, as a client polls them (Depth 1), checked
    equal to its `getctag`."""
    answer = client.request(
        "PROPFIND", "/dav/calendars/", content=_TOKENS, headers={**headers, "Depth": "1"}
    )
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    found = {}
    for response in root.iter(f"{D}response"):
        token = response.findtext(f".//{D}sync-token")
        if token:
            assert response.findtext(f".//{CS}getctag") == token
            found[response.findtext(f"{D}href") or ""] = token
    return found


def test_a_collections_token_moves_only_with_its_own_changes(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """A change in one list leaves every other collection's token and ctag as they were (a
    client re-lists only what changed); a move changes both lists; a member's change in a
    shared list moves that list's token for the owner and the member alike."""
    headers = signed_in(client, alice)
    first, second = make_list(client, alice, "First"), make_list(client, alice, "Second")
    shared = make_list(client, bob, "Bob's")
    join(client, bob, alice, shared, "editor")
    one, two, theirs = (f"/dav/calendars/{n}/" for n in (first, second, shared))
    before = _tokens(client, headers)
    assert set(before) == {NO_LIST, one, two, theirs}
    task = make_task(client, alice, "Only in the first", list_id=first)
    after = _tokens(client, headers)
    assert after[one] != before[one]
    assert {k: after[k] for k in (NO_LIST, two, theirs)} == {
        k: before[k] for k in (NO_LIST, two, theirs)
    }
    # The collection's own PROPFIND and its sync say the same token.
    assert synced(sync(client, one, headers))[0] == after[one]
    moved = client.patch(f"/api/tasks/{task}", json={"list_id": second}, headers=alice.headers)
    assert moved.status_code == 200, moved.text
    again = _tokens(client, headers)
    assert again[one] != after[one] and again[two] != after[two]
    assert (again[NO_LIST], again[theirs]) == (after[NO_LIST], after[theirs])
    # A task of the tasks in no list, then the owner's change in the shared list.
    make_task(client, alice, "In no list")
    fourth = _tokens(client, headers)
    assert fourth[NO_LIST] != again[NO_LIST]
    assert {k: fourth[k] for k in (one, two, theirs)} == {k: again[k] for k in (one, two, theirs)}
    make_task(client, bob, "Bob's change", list_id=shared)
    fifth = _tokens(client, headers)
    assert fifth[theirs] != fourth[theirs]
    assert {k: fifth[k] for k in (NO_LIST, one, two)} == {k: fourth[k] for k in (NO_LIST, one, two)}


def test_a_token_ahead_of_the_feed_is_refused_not_unchanged(
    client: TestClient, alice: Account
) -> None:
    """A database restored from before a client's last sync: its token names a position the
    feed does not hold. "Nothing changed" would hide every later change from it for good."""
    headers = signed_in(client, alice)
    list_id = make_list(client, alice, "Restored")
    make_task(client, alice, "Before the backup", list_id=list_id)
    here = f"/dav/calendars/{list_id}/"
    for path in (here, NO_LIST):
        token, _ = synced(sync(client, path, headers))
        position = int(token.rsplit(":", 1)[1])
        assert synced(sync(client, path, headers, token))[1] == {}  # its own token: unchanged
        ahead = token.rsplit(":", 1)[0] + f":{position + 1000}"
        _refused(sync(client, path, headers, ahead), "valid-sync-token")


def _thisandfuture(due: str, completed: str | None, future: str) -> bytes:
    """The `caldav` library's thisandfuture completion of the occurrence due `completed`
    (None: the series before any): the master as it was, a completed override named by its
    DTSTART with its DUE, and a RANGE=THISANDFUTURE override for the rest."""
    master = f"DTSTART:{due}T080000Z\r\nDUE:{due}T090000Z\r\nRRULE:FREQ=WEEKLY\r\n"
    body = vtodo("weekly-taf", "Bins", master).decode()
    if completed is None:
        return body.encode()
    overrides = (
        f"BEGIN:VTODO\r\nUID:weekly-taf\r\nSUMMARY:Bins\r\nDTSTART:{completed}T080000Z\r\n"
        f"DUE:{completed}T090000Z\r\nSTATUS:COMPLETED\r\nCOMPLETED:20261201T100000Z\r\n"
        f"RECURRENCE-ID:{completed}T080000Z\r\nSEQUENCE:1\r\nEND:VTODO\r\n"
        f"BEGIN:VTODO\r\nUID:weekly-taf\r\nSUMMARY:Bins\r\nDTSTART:{future}T080000Z\r\n"
        f"DUE:{future}T090000Z\r\nSTATUS:NEEDS-ACTION\r\n"
        f"RECURRENCE-ID;RANGE=THISANDFUTURE:{future}T080000Z\r\nSEQUENCE:2\r\nEND:VTODO\r\n"
    )
    return body.replace("END:VCALENDAR", overrides + "END:VCALENDAR").encode()


def test_a_completion_sent_inside_the_series_object_is_served_there(
    client: TestClient, alice: Account
) -> None:
    """`OVERRIDE_COMPLETED` (the `caldav` library's thisandfuture mode, Thunderbird): the
    completed occurrence is a task for REST and MCP, and for DAV the override inside the
    series' object, as sent: one object listed, synced, queried; no href of its own. Deliberate
    break "serve the completed occurrence as an object of its own": its derived href is 200."""
    headers = signed_in(client, alice)
    path = NO_LIST + "weekly-taf.ics"
    assert put(client, path, _thisandfuture("20261207", None, ""), headers).status_code == 201
    token, _ = synced(sync(client, NO_LIST, headers))
    before = client.get(path, headers=headers).headers["etag"]
    completing = _thisandfuture("20261207", "20261207", "20261214")
    assert put(client, path, completing, headers, **{"If-Match": before}).status_code == 204
    listed = client.get("/api/tasks", params={"limit": 100}, headers=alice.headers).json()["data"]
    bins = sorted((t for t in listed if t["title"] == "Bins"), key=lambda t: t["id"])
    assert [(t["completed"], t["due_date"][:10]) for t in bins] == [
        (True, "2026-12-07"),
        (False, "2026-12-14"),
    ]
    tools = call_tool_rpc(client, "/mcp", alice.token, "list_tasks", {"status": "all"})
    assert {t["id"] for t in tools["structuredContent"]["tasks"]} >= {t["id"] for t in bins}
    done = bins[0]["id"]

    served = client.get(path, headers=headers)
    body = served.text
    assert body.count("BEGIN:VTODO") == 2  # the open master and the completed override
    assert "RECURRENCE-ID:20261207T080000Z" in body and "STATUS:COMPLETED" in body
    assert "DUE:20261214T090000Z" in body.split("BEGIN:VTODO")[1]  # the master: the open one
    assert served.headers["etag"] != before
    assert client.get(derived(NO_LIST, done), headers=headers).status_code == 404
    # Listed, synced from empty and since the token: the series' object alone. (The completed
    # task's derived name, which no client holds, may be reported gone.)
    propfind = client.request("PROPFIND", NO_LIST, headers={**headers, "Depth": "1"})
    assert set(responses(propfind)) == {NO_LIST, path}
    assert synced(sync(client, NO_LIST, headers))[1] == {path: served.headers["etag"]}
    _, members = synced(sync(client, NO_LIST, headers, token))
    assert members.pop(path) == served.headers["etag"]
    assert members in ({}, {derived(NO_LIST, done): "404"})
    query = client.request(
        "REPORT",
        NO_LIST,
        content=(
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
            '<C:comp-filter name="VTODO"/></C:comp-filter></C:filter></C:calendar-query>'
        ),
        headers={**headers, "Depth": "1"},
    )
    assert set(responses(query)) == {path}
    # A REST edit of the completed occurrence is that task's: the series' object (the override
    # as the client sent it) and its ETag do not move, and it gets no href of its own.
    edited = client.patch(f"/api/tasks/{done}", json={"title": "Bins, done"}, headers=alice.headers)
    assert edited.status_code == 200, edited.text
    assert client.get(path, headers=headers).headers["etag"] == served.headers["etag"]
    assert client.get(derived(NO_LIST, done), headers=headers).status_code == 404
    edited = client.patch(f"/api/tasks/{done}", json={"title": "Bins"}, headers=alice.headers)
    assert edited.status_code == 200, edited.text

    # The same PUT again (a retry of the completion): nothing more completes.
    assert put(client, path, completing, headers).status_code == 204
    again = client.get("/api/tasks", params={"limit": 100}, headers=alice.headers).json()["data"]
    assert sorted(t["completed"] for t in again if t["title"] == "Bins") == [False, True]
    assert client.get(derived(NO_LIST, done), headers=headers).status_code == 404

    # Deleting the series' object trashes its open occurrence; the completed one inside it
    # stays a task (REST), no object of its own. A restore brings the object back, the
    # completion inside it.
    open_id = bins[1]["id"]
    assert client.delete(path, headers=headers).status_code == 204
    propfind = client.request("PROPFIND", NO_LIST, headers={**headers, "Depth": "1"})
    assert set(responses(propfind)) == {NO_LIST}
    assert client.get(f"/api/tasks/{done}", headers=alice.headers).status_code == 200
    restored = client.post(f"/api/trash/{open_id}/restore", headers=alice.headers)
    assert restored.status_code == 200, restored.text
    back = client.get(path, headers=headers)
    assert back.status_code == 200 and "RECURRENCE-ID:20261207T080000Z" in back.text
    propfind = client.request("PROPFIND", NO_LIST, headers={**headers, "Depth": "1"})
    assert set(responses(propfind)) == {NO_LIST, path}
