"""The live change stream (issue 51) through the real server (uvicorn, its own process):
every event is the change feed's entry with the feed's cursor as its id; resuming loses and
repeats nothing; a member sees the list's changes and, removed, its tombstones and nothing
after; revocation and deletion end the stream within a heartbeat; bad input is a 4xx with
the envelope. The heartbeat is shortened (`STREAM_HEARTBEAT_SECONDS`) so tests need not
wait 15 s; nothing asserts a duration but the bound a test would otherwise hang on."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.changes.sse import Stream
from tests.conftest import Account, _registering, running_server
from tests.sharing.helpers import add_member, drain_feed, make_list, make_task, remove_member

HEARTBEAT = 0.5


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[tuple[str, Path]]:
    with running_server(
        database_url,
        STREAM_HEARTBEAT_SECONDS=str(HEARTBEAT),
        STREAM_MAX_PER_USER="3",
        RATE_LIMIT_ENABLED="false",
    ) as (base_url, _, log):
        yield base_url, log


@pytest.fixture(scope="module")
def server(served: tuple[str, Path]) -> str:
    return served[0]


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture
def register(http: httpx.Client) -> Callable[..., Account]:
    return _registering(http)  # type: ignore[arg-type]


@pytest.fixture
def streams(server: str) -> Iterator[Callable[..., Stream]]:
    opened: list[Stream] = []

    def open_stream(
        account: Account, headers: dict[str, str] | None = None, **params: str
    ) -> Stream:
        stream = Stream(server, {**account.headers, **(headers or {})}, **params)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def test_each_event_is_the_feeds_entry_and_its_id_the_feeds_cursor(
    http: httpx.Client, register: Callable[..., Account], streams: Callable[..., Stream]
) -> None:
    alice = register()
    _, cursor = drain_feed(http, alice)  # type: ignore[arg-type]
    stream = streams(alice)
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    task = make_task(http, alice, "Live")  # type: ignore[arg-type]
    renamed = http.patch(f"/api/tasks/{task}", json={"title": "Renamed"}, headers=alice.headers)
    assert renamed.status_code == 200
    events = stream.take(2)
    feed, _ = drain_feed(http, alice, cursor)  # type: ignore[arg-type]
    assert [e.data for e in events] == feed
    assert [e.data["type"] for e in events] == ["created", "updated"]
    assert events[1].data["task"]["title"] == "Renamed"
    # The id is a feed cursor: the feed after it has nothing more.
    after, _ = drain_feed(http, alice, events[-1].id)  # type: ignore[arg-type]
    assert after == []
    assert stream.retry is not None


def test_a_childs_event_names_its_row_as_the_feed_does(
    http: httpx.Client, register: Callable[..., Account], streams: Callable[..., Stream]
) -> None:
    alice = register()
    task = make_task(http, alice, "Live")  # type: ignore[arg-type]
    _, cursor = drain_feed(http, alice)  # type: ignore[arg-type]
    stream = streams(alice)
    comments = f"/api/tasks/{task}/comments"
    added = http.post(comments, json={"body": "hi"}, headers=alice.headers).json()["data"]
    assert http.delete(f"{comments}/{added['id']}", headers=alice.headers).status_code == 204
    events = stream.take(2)
    feed, _ = drain_feed(http, alice, cursor)  # type: ignore[arg-type]
    assert [e.data for e in events] == feed
    named = {"kind": "comment", "id": added["id"]}
    assert [(e.data["type"], e.data["child"]) for e in events] == [
        ("comment.created", named),
        ("comment.deleted", named),
    ]


def test_resuming_from_the_last_id_loses_and_repeats_nothing(
    http: httpx.Client, register: Callable[..., Account], streams: Callable[..., Stream]
) -> None:
    alice = register()
    first = streams(alice)
    one = make_task(http, alice, "one")  # type: ignore[arg-type]
    seen = first.next()
    assert seen.data["task_id"] == one
    first.close()
    # Made while no stream was open.
    two = make_task(http, alice, "two")  # type: ignore[arg-type]
    http.patch(f"/api/tasks/{one}/complete", headers=alice.headers)
    resumed = streams(alice, {"Last-Event-ID": seen.id or ""})
    got = resumed.take(2)
    assert [(e.data["type"], e.data["task_id"]) for e in got] == [
        ("created", two),
        ("completed", one),
    ]
    assert resumed.quiet(3 * HEARTBEAT)
    # `?cursor=` resumes the same way.
    again = streams(alice, cursor=got[0].id or "")
    assert [e.data["task_id"] for e in again.take(1)] == [one]
    assert again.quiet(3 * HEARTBEAT)


def test_a_member_sees_the_list_and_removed_its_tombstones_then_nothing(
    http: httpx.Client,
    register: Callable[..., Account],
    streams: Callable[..., Stream],
    db_engine: Engine,
) -> None:
    alice, bob = register(), register()
    list_id = make_list(http, alice)  # type: ignore[arg-type]
    mine = make_task(http, alice, "alice's own")  # type: ignore[arg-type]
    before = make_task(http, alice, "before", list_id=list_id)  # type: ignore[arg-type]
    stream = streams(bob)
    add_member(db_engine, alice, list_id, bob, "viewer")
    # What the feed gives on gaining access: the list's retained changes, then the upsert.
    granted = stream.take(2)
    assert [(e.data["type"], e.data["task_id"]) for e in granted] == [
        ("created", before),
        ("access.granted", before),
    ]
    shared = make_task(http, alice, "shared", list_id=list_id)  # type: ignore[arg-type]
    created = stream.next()
    assert (created.data["type"], created.data["task_id"]) == ("created", shared)
    remove_member(db_engine, list_id, bob)
    ended = stream.take(2)
    assert {(e.data["type"], e.data["task_id"]) for e in ended} == {
        ("access.ended", before),
        ("access.ended", shared),
    }
    http.patch(f"/api/tasks/{shared}", json={"title": "after"}, headers=alice.headers)
    http.patch(f"/api/tasks/{mine}", json={"title": "private"}, headers=alice.headers)
    assert stream.quiet(3 * HEARTBEAT)


def test_a_stranger_sees_nothing_of_anothers_changes(
    http: httpx.Client, register: Callable[..., Account], streams: Callable[..., Stream]
) -> None:
    alice, mallory = register(), register()
    list_id = make_list(http, alice)  # type: ignore[arg-type]
    stream = streams(mallory)
    make_task(http, alice, "in a list", list_id=list_id)  # type: ignore[arg-type]
    make_task(http, alice, "private")  # type: ignore[arg-type]
    assert stream.quiet(3 * HEARTBEAT)
    # A heartbeat came meanwhile.
    assert ": heartbeat" in stream.comments


@pytest.mark.parametrize("how", ["revoked", "deleted"])
def test_revoking_or_deleting_ends_the_stream_within_a_heartbeat(
    how: str, http: httpx.Client, register: Callable[..., Account], streams: Callable[..., Stream]
) -> None:
    alice = register()
    stream = streams(alice)
    if how == "revoked":
        answer = http.post("/api/auth/logout-all", headers=alice.headers)
    else:
        answer = http.delete("/api/auth/me", headers=alice.headers)
    assert answer.status_code in (200, 204), answer.text
    assert stream.ended(timeout=10 * HEARTBEAT)
    assert streams(alice).response.status_code == 401


def test_an_expired_token_ends_the_stream(
    http: httpx.Client, register: Callable[..., Account], streams: Callable[..., Stream]
) -> None:
    from tests.conftest import make_token

    token = make_token({"sub": "stream-expiry"}, lifetime=2)
    stream = Stream(http.base_url.__str__().rstrip("/"), {"Authorization": f"Bearer {token}"})
    try:
        assert stream.response.status_code == 200
        assert stream.ended(timeout=30)
    finally:
        stream.close()


def test_bad_input_is_a_4xx_with_the_envelope(
    http: httpx.Client, register: Callable[..., Account], streams: Callable[..., Stream]
) -> None:
    alice, bob = register(), register()
    _, bobs = drain_feed(http, bob)  # type: ignore[arg-type]
    cases = [
        (streams(alice, {"Last-Event-ID": "not-a-cursor"}), 422),
        (streams(alice, {"Last-Event-ID": bobs}), 422),  # another user's cursor
        (streams(alice, cursor="x" * 3000), 422),
        (streams(alice, {"Authorization": "Bearer nope"}), 401),
    ]
    for stream, status in cases:
        assert stream.response.status_code == status
        stream.response.read()
        assert stream.response.json()["error"]["code"] in {"VALIDATION_ERROR", "UNAUTHORIZED"}
    assert http.get("/api/changes/stream").status_code == 401


def test_past_the_users_bound_a_stream_is_429(
    http: httpx.Client, register: Callable[..., Account], streams: Callable[..., Stream]
) -> None:
    alice = register()
    held = [streams(alice) for _ in range(3)]
    assert all(s.response.status_code == 200 for s in held)
    refused = streams(alice)
    assert refused.response.status_code == 429
    refused.response.read()
    assert refused.response.json()["error"]["code"] == "RATE_LIMITED"
    assert "Retry-After" in refused.response.headers
    held[0].close()
    # Its place is given back once the server sees the client gone (at its next write).
    for _ in range(40):
        again = streams(alice)
        if again.response.status_code == 200:
            break
        again.close()
        held[1].quiet(HEARTBEAT)
    assert again.response.status_code == 200


def _ticket(http: httpx.Client, account: Account) -> str:
    made = http.post("/api/changes/stream/tickets", headers=account.headers)
    assert made.status_code == 201, made.text
    ticket: str = made.json()["data"]["ticket"]
    return ticket


def test_a_ticket_opens_one_stream_once_and_is_stored_hashed_and_never_logged(
    http: httpx.Client,
    register: Callable[..., Account],
    served: tuple[str, Path],
    db_engine: Engine,
) -> None:
    base_url, log = served
    alice = register()
    ticket = _ticket(http, alice)
    with db_engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM stream_tickets")).scalars().all()
    assert stored == [hashlib.sha256(ticket.encode()).hexdigest()]
    stream = Stream(base_url, {}, ticket=ticket)  # no bearer header: the ticket alone
    try:
        assert stream.response.status_code == 200
        task = make_task(http, alice, "via ticket")  # type: ignore[arg-type]
        assert stream.next().data["task_id"] == task
    finally:
        stream.close()
    replayed = http.get("/api/changes/stream", params={"ticket": ticket})
    assert replayed.status_code == 401
    assert ticket not in log.read_text()
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_tickets")).scalar_one() == 0


def test_every_bad_ticket_is_the_same_401(
    http: httpx.Client, register: Callable[..., Account], db_engine: Engine, server: str
) -> None:
    alice = register()
    expired = _ticket(http, alice)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE stream_tickets SET expires_at = now() - interval '1 second'"))
    used = _ticket(http, alice)
    first = Stream(server, {}, ticket=used)
    assert first.response.status_code == 200
    first.close()
    answers = [
        http.get("/api/changes/stream", params={"ticket": t})
        for t in (expired, used, "never-issued", "x" * 200)
    ]
    assert [a.status_code for a in answers] == [401] * 4
    assert len({a.json()["error"]["message"] for a in answers}) == 1
    # The expired one was used up too: nothing is left to try again.
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_tickets")).scalar_one() == 0


def test_a_ticket_of_a_revoked_token_opens_nothing(
    http: httpx.Client, register: Callable[..., Account]
) -> None:
    alice = register()
    ticket = _ticket(http, alice)
    assert http.post("/api/auth/logout-all", headers=alice.headers).status_code in (200, 204)
    refused = http.get("/api/changes/stream", params={"ticket": ticket})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "UNAUTHORIZED"


def _largest_send_buffer() -> int:
    """The most a socket's send buffer may grow to here (Linux's `tcp_wmem` maximum)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20


def test_a_reader_that_stops_reading_is_disconnected_and_nothing_else_waits(
    database_url: str, register: Callable[..., Account], http: httpx.Client, db_engine: Engine
) -> None:
    alice = register()
    with running_server(
        database_url, STREAM_SEND_TIMEOUT_SECONDS="0.5", RATE_LIMIT_ENABLED="false"
    ) as (base_url, _, log):
        port = int(base_url.rsplit(":", 1)[1])
        # A client with a tiny receive buffer that reads the response's head and stops.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(
            f"GET /api/changes/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {alice.token}\r\n\r\n".encode()
        )
        assert stalled.recv(15).startswith(b"HTTP/1.1 200")
        reader = Stream(base_url, alice.headers)  # a stream that does read
        try:
            for n in range(100):
                body = {"title": f"big {n}", "description": "x" * 2000}
                assert http.post("/api/tasks", json=body, headers=alice.headers).is_success
            # More changes than the kernel's socket buffers hold (three times its largest send
            # buffer, some 2 KB an event): each update of a task records its change, as any
            # writer's does. Fewer, and a fast machine buffers the stalled stream whole.
            rounds = max(20, -(-3 * _largest_send_buffer() // (100 * 2000)))
            for n in range(rounds):
                with db_engine.begin() as conn:
                    conn.execute(
                        text("UPDATE tasks SET title = :title WHERE user_id = :owner"),
                        {"title": f"round {n}", "owner": alice.id},
                    )
            # The reading stream got every change, however the stalled one fared.
            total = 100 * (rounds + 1)
            assert len(reader.take(total, timeout=180)) == total
        finally:
            reader.close()
        # The stalled one was dropped: what it finally reads ends (or the reset says so).
        stalled.settimeout(5)
        ended = False
        try:
            for _ in range(10_000):
                if not stalled.recv(1 << 20):
                    ended = True
                    break
        except ConnectionResetError:
            ended = True
        stalled.close()
        assert ended
        assert "stopped taking events" in log.read_text()


def test_a_shutdown_ends_every_stream_cleanly(
    database_url: str, register: Callable[..., Account]
) -> None:
    alice = register()
    with running_server(database_url) as (base_url, process, _):
        stream = Stream(base_url, alice.headers)
        try:
            assert stream.response.status_code == 200
            process.terminate()
            assert stream.ended(timeout=30)
            assert stream.clean, "the response was cut, not ended"
            assert process.wait(timeout=30) == 0
        finally:
            stream.close()


def test_a_burst_of_connects_from_one_user_is_refused_past_the_bound_and_harms_no_one(
    http: httpx.Client,
    register: Callable[..., Account],
    streams: Callable[..., Stream],
    server: str,
) -> None:
    alice, bob = register(), register()
    watching = streams(bob)
    held = [streams(alice) for _ in range(3)]
    assert [s.response.status_code for s in held] == [200] * 3

    def connect(_: int) -> int:
        with httpx.Client(base_url=server, timeout=30) as burst:
            return burst.get("/api/changes/stream", headers=alice.headers).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(connect, range(300)))
    assert set(statuses) == {429}
    # Bob's stream still works.
    task = make_task(http, bob, "still live")  # type: ignore[arg-type]
    assert watching.next().data["task_id"] == task
