"""DAV writes racing (issue 70; specs/caldav.md, "Objects"): clients PUTting at once through
the real server (`unlimited_live_server`: uvicorn in its own process; many writes a minute),
each thread its own connection, started together at a barrier, many rounds. A create claims
its href and UID in the database (unique keys, and a refusal in its own message), so two
devices, or one retrying after a timeout, never make two tasks of one object; writers of one
object, an owner and an editor at once, never deadlock (a 503): one wins, the rest are 412."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.dav.test_objects import signed_in, vtodo
from tests.sharing.helpers import join, make_list

ROUNDS = 30
WRITERS = 16
_CALENDAR = {"Content-Type": "text/calendar; charset=utf-8"}


@pytest.fixture
def garden(client: TestClient, alice: Account, bob: Account) -> Iterator[int]:
    """Alice's list, Bob an editor of it."""
    list_id = make_list(client, alice, "Garden")
    join(client, alice, bob, list_id, "editor")
    yield list_id


def _at_once(
    base_url: str, warm: str, requests: list[tuple[dict[str, str], str, bytes, dict[str, str]]]
) -> list[httpx.Response]:
    """PUT each (auth, path, body, headers) together, each from its own thread and client."""
    barrier = threading.Barrier(len(requests))

    def send(request: tuple[dict[str, str], str, bytes, dict[str, str]]) -> httpx.Response:
        auth, path, body, headers = request
        with httpx.Client(base_url=base_url, headers=auth, timeout=120) as http:
            http.request("PROPFIND", warm, headers={"Depth": "0"})  # connected before the barrier
            barrier.wait(timeout=120)
            return http.put(path, content=body, headers={**_CALENDAR, **headers})

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def _stored(engine: Engine, list_id: int, title: str) -> int:
    """How many live tasks of the list have `title`."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM tasks WHERE list_id = :l AND title = :t"),
                {"l": list_id, "t": title},
            ).scalar_one()
        )


def _put(base_url: str, auth: dict[str, str], path: str, body: bytes) -> httpx.Response:
    """One PUT with no precondition, on its own."""
    with httpx.Client(base_url=base_url, headers=auth, timeout=60) as http:
        return http.put(path, content=body, headers=_CALENDAR)


def _objects(engine: Engine, list_id: int, name: str) -> list[tuple[str, str]]:
    """The (title, body) of each task served under `name` in the list."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.title, o.body FROM tasks t JOIN task_dav_objects o"
                " ON o.task_id = t.id WHERE o.list_id = :l AND o.name = :n"
            ),
            {"l": list_id, "n": name},
        ).all()
    return [(title, body) for title, body in rows]


def _statuses(answers: list[httpx.Response]) -> list[int]:
    return sorted(answer.status_code for answer in answers)


def test_creates_of_one_href_with_if_none_match_make_one_task(
    unlimited_live_server: str,
    client: TestClient,
    alice: Account,
    bob: Account,
    garden: int,
    db_engine: Engine,
) -> None:
    """The owner and an editor (two devices) create one href at once, `If-None-Match: *`:
    one `201`, the other the RFC's `412`, one task."""
    owner, editor = signed_in(client, alice), signed_in(client, bob)
    collection = f"/dav/calendars/{garden}/"
    for round_ in range(ROUNDS):
        title = f"Sow {round_}"
        path, body = f"{collection}sow-{round_}.ics", vtodo(f"sow-{round_}", title)
        answers = _at_once(
            unlimited_live_server,
            collection,
            [(who, path, body, {"If-None-Match": "*"}) for who in (owner, editor)],
        )
        assert _statuses(answers) == [201, 412], [a.text for a in answers]
        assert _stored(db_engine, garden, title) == 1


def test_one_uid_put_to_two_hrefs_makes_one_task(
    unlimited_live_server: str,
    client: TestClient,
    alice: Account,
    bob: Account,
    garden: int,
    db_engine: Engine,
) -> None:
    """One UID to two hrefs at once: one `201`, the other `403` `no-uid-conflict` (RFC 4791
    5.3.2.1), one task."""
    owner, editor = signed_in(client, alice), signed_in(client, bob)
    collection = f"/dav/calendars/{garden}/"
    for round_ in range(ROUNDS):
        title = f"Weed {round_}"
        body = vtodo(f"weed-{round_}", title)
        answers = _at_once(
            unlimited_live_server,
            collection,
            [
                (owner, f"{collection}weed-{round_}-a.ics", body, {}),
                (editor, f"{collection}weed-{round_}-b.ics", body, {}),
            ],
        )
        assert _statuses(answers) == [201, 403], [a.text for a in answers]
        [refused] = [a for a in answers if a.status_code == 403]
        assert b"no-uid-conflict" in refused.content, refused.text
        assert _stored(db_engine, garden, title) == 1


def test_puts_without_a_precondition_and_a_retry_make_one_task(
    unlimited_live_server: str,
    client: TestClient,
    alice: Account,
    bob: Account,
    garden: int,
    db_engine: Engine,
) -> None:
    """The same object PUT at once by two devices with no precondition, then again (a retry
    after a timeout): the first to write creates it, the others update it, one task."""
    owner, editor = signed_in(client, alice), signed_in(client, bob)
    collection = f"/dav/calendars/{garden}/"
    for round_ in range(ROUNDS):
        title = f"Mulch {round_}"
        path, body = f"{collection}mulch-{round_}.ics", vtodo(f"mulch-{round_}", title)
        answers = _at_once(
            unlimited_live_server,
            collection,
            [(who, path, body, {}) for who in (owner, editor, owner)],
        )
        assert _statuses(answers) == [201, 204, 204], [a.text for a in answers]
        retried = _put(unlimited_live_server, owner, path, body)
        assert retried.status_code == 204, retried.text
        assert _stored(db_engine, garden, title) == 1


def _tag(base_url: str, auth: dict[str, str], path: str) -> str:
    with httpx.Client(base_url=base_url, headers=auth, timeout=60) as http:
        got = http.get(path)
    assert got.status_code == 200, got.text
    return got.headers["etag"]


def test_if_match_writers_of_one_object_one_wins_the_rest_412(
    unlimited_live_server: str,
    client: TestClient,
    alice: Account,
    bob: Account,
    garden: int,
    db_engine: Engine,
) -> None:
    """Sixteen writers of one object at once, half the owner's and half an editor's, each
    naming the tag it read: one `204`, fifteen `412`, never a deadlock's `503`; the object
    kept is the winner's."""
    owner, editor = signed_in(client, alice), signed_in(client, bob)
    collection = f"/dav/calendars/{garden}/"
    path = f"{collection}prune.ics"
    made = _put(unlimited_live_server, owner, path, vtodo("prune", "Prune"))
    assert made.status_code == 201, made.text
    for round_ in range(ROUNDS):
        tag = _tag(unlimited_live_server, owner, path)
        assert _tag(unlimited_live_server, editor, path) == tag
        writes = [
            ((owner, editor)[n % 2], path, vtodo("prune", f"Prune {round_}.{n}"), {"If-Match": tag})
            for n in range(WRITERS)
        ]
        answers = _at_once(unlimited_live_server, collection, writes)
        assert _statuses(answers) == [204] + [412] * (WRITERS - 1), [a.text for a in answers]
        [won] = [n for n, answer in enumerate(answers) if answer.status_code == 204]
        [(title, body)] = _objects(db_engine, garden, "prune.ics")
        assert title == f"Prune {round_}.{won}"
        assert f"SUMMARY:Prune {round_}.{won}\r\n" in body


def test_writers_of_one_object_with_no_precondition_all_write_in_turn(
    unlimited_live_server: str,
    client: TestClient,
    alice: Account,
    bob: Account,
    garden: int,
    db_engine: Engine,
) -> None:
    """Sixteen writers of one object at once with no precondition (each in one message: the
    collection's locks, the task named, its update), half the owner's and half an editor's:
    every one `204` in turn, never a deadlock's `503`; one task, and its object and its row
    are the same writer's."""
    owner, editor = signed_in(client, alice), signed_in(client, bob)
    collection = f"/dav/calendars/{garden}/"
    path = f"{collection}weed.ics"
    made = _put(unlimited_live_server, owner, path, vtodo("weed", "Weed"))
    assert made.status_code == 201, made.text
    for round_ in range(ROUNDS):
        writes = [
            ((owner, editor)[n % 2], path, vtodo("weed", f"Weed {round_}.{n}"), {})
            for n in range(WRITERS)
        ]
        answers = _at_once(unlimited_live_server, collection, writes)
        assert _statuses(answers) == [204] * WRITERS, [a.text for a in answers]
        [(title, body)] = _objects(db_engine, garden, "weed.ics")
        assert title.startswith(f"Weed {round_}.")
        assert f"SUMMARY:{title}\r\n" in body
        assert _stored(db_engine, garden, title) == 1
