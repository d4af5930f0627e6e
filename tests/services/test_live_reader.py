"""The live streams' service (backend/services/live.py): the reader's query (`moved_since`)
answers each new event once, with every user whose feed it moves, and nothing it was told
it has seen (its answer per poll is what moved since the last poll, not the whole rescan
window). Issue 64: with many streams open and one write, the reader reads every woken
stream's page in ONE message (the feed's hold ahead of one SELECT for every caller), and no
stream reads alone; each stream's share is exactly its own feed, in order; a member removed
from a list gets its tombstones and then nothing of it; a revoked account's stream ends.
Statements are counted with an engine event (deterministic: no timing is asserted)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.db.sender import transaction_locals
from backend.services.history.changes import ChangeFeed, ChangePage
from backend.services.live import Listener, LiveFeeds, feed_head, moved_since
from backend.services.unit_of_work import UnitOfWork
from tests.conftest import Account
from tests.sharing.helpers import add_member, make_list, make_task, remove_member

DEADLINE = 30.0  # what a test would otherwise hang on; nothing asserts a duration


def test_each_new_event_once_with_the_users_it_wakes(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice, "Team")
    add_member(db_engine, alice, list_id, bob, "viewer")
    with db_engine.connect() as conn:
        floor = feed_head(conn)
    make_task(client, alice, "Shared", list_id=list_id)
    make_task(client, alice, "Private")
    make_task(client, bob, "Bob's own")
    with db_engine.connect() as conn:
        moved = moved_since(conn, floor, (), 100)
        assert [sorted(event.users) for event in moved] == [
            sorted([alice.id, bob.id]),  # a shared list's change: the owner and its member
            [alice.id],
            [bob.id],
        ]
        assert [event.id for event in moved] == sorted(event.id for event in moved)
        assert moved[-1].id == feed_head(conn)
        # What the reader has seen is left out: the next poll answers only what is new.
        assert moved_since(conn, floor, [event.id for event in moved], 100) == []
        seen_but_last = [event.id for event in moved[:-1]]
        assert moved_since(conn, floor, seen_but_last, 100) == [moved[-1]]


@contextmanager
def _messages(engine: Engine) -> Iterator[list[str]]:
    """Every message sent on `engine` while inside (the reader's included: its own thread)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _feed(engine: Engine, settings: Settings, claims: TokenClaims, after: int | None) -> ChangePage:
    """The caller's feed after `after` as the polled feed reads it (one caller, its door)."""
    with UnitOfWork(engine, settings, claims=claims) as work:
        return work.service(ChangeFeed).page(after, 1000)


def _claims(engine: Engine, account: Account) -> TokenClaims:
    with engine.connect() as conn:
        version = conn.execute(
            text("SELECT token_version FROM users WHERE id = :id"), {"id": account.id}
        ).scalar_one()
    return TokenClaims(subject=account.id, local=True, token_version=version)


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"waited {DEADLINE} s for {what}"
        await asyncio.sleep(0.01)


def _reading(
    engine: Engine,
    settings: Settings,
    accounts: list[Account],
    scenario: Callable[[LiveFeeds, list[Listener]], Awaitable[None]],
) -> None:
    """`scenario` with a stream's place open for each of `accounts`, each started now, and
    the reader past its first poll."""

    async def run() -> None:
        live = LiveFeeds(
            engine,
            settings.model_copy(update={"stream_poll_ms": 10}),
            transaction_locals(settings.db_statement_timeout_ms),
        )
        listeners = []
        for account in accounts:
            claims = _claims(engine, account)
            listener = live.admit(claims)
            listener.started(await live.start(claims, None))
            listeners.append(listener)
        try:
            await _until(lambda: live.polls >= 2, "the reader's first polls")
            await scenario(live, listeners)
        finally:
            for listener in listeners:
                live.leave(listener)

    asyncio.run(run())


def _received(listener: Listener) -> list[Any]:
    return [change for page in listener.take() for change in page.changes]


def test_one_message_reads_every_woken_streams_page(
    client: TestClient, register: Callable[..., Account], db_engine: Engine, settings: Settings
) -> None:
    owner = register()
    members = [register() for _ in range(6)]
    list_id = make_list(client, owner, "Team")
    for member in members:
        add_member(db_engine, owner, list_id, member, "viewer")
    streams = [owner, *members]

    async def scenario(live: LiveFeeds, listeners: list[Listener]) -> None:
        await _until(lambda: not any(lst.due for lst in listeners), "the first read")
        for listener in listeners:
            listener.take()
        reads = live.reads
        with _messages(db_engine) as sent:
            task = await asyncio.to_thread(make_task, client, owner, "One write", list_id=list_id)
            await _until(lambda: all(lst.pages for lst in listeners), "every stream's event")
        pages = [message for message in sent if "task_events_hold_many" in message]
        # One message, one SELECT for all the streams (the hold rides ahead of it), and no
        # stream read alone: no one caller's hold, no door's entry.
        assert live.reads == reads + 1
        assert len(pages) == 1
        assert pages[0].count("SELECT task_events_hold_many") == 1
        assert not [m for m in sent if "task_events_hold(" in m or "task_api_enter" in m]
        for listener in listeners:
            assert [(c.type, c.task_id) for c in _received(listener)] == [("created", task)]

    _reading(db_engine, settings, streams, scenario)


def test_each_stream_gets_exactly_its_feed_in_order_and_a_removed_member_then_nothing(
    client: TestClient, register: Callable[..., Account], db_engine: Engine, settings: Settings
) -> None:
    alice, bob, carol, dave = (register() for _ in range(4))
    team = make_list(client, alice, "Team")
    other = make_list(client, carol, "Other")
    add_member(db_engine, alice, team, bob, "viewer")
    add_member(db_engine, alice, team, carol, "editor")
    add_member(db_engine, carol, other, bob, "viewer")
    accounts = [alice, bob, carol, dave, bob]  # bob twice: two streams, each its own place

    async def scenario(live: LiveFeeds, listeners: list[Listener]) -> None:
        starts = [listener.position for listener in listeners]
        got: list[list[Any]] = [[] for _ in listeners]

        def collect() -> None:
            for index, listener in enumerate(listeners):
                got[index] += _received(listener)

        def write() -> None:
            make_task(client, alice, "team 1", list_id=team)
            make_task(client, carol, "other 1", list_id=other)
            make_task(client, alice, "alice alone")
            make_task(client, carol, "team by carol", list_id=team)
            make_task(client, dave, "dave alone")
            make_task(client, alice, "team 2", list_id=team)

        await asyncio.to_thread(write)

        def caught_up() -> bool:
            collect()
            return all(
                not lst.due
                and not lst.pages
                and not _feed(db_engine, settings, lst.claims, lst.position).changes
                for lst in listeners
            )

        await _until(caught_up, "every stream caught up")
        # Each stream's share is its feed as the polled feed gives it, in order, once.
        for index, listener in enumerate(listeners):
            feed = _feed(db_engine, settings, listener.claims, starts[index])
            assert [c.id for c in got[index]] == [c.id for c in feed.changes]
            assert [c.id for c in got[index]] == sorted({c.id for c in got[index]})
        titles = [[c.task["title"] for c in changes] for changes in got]
        assert titles[0] == ["team 1", "alice alone", "team by carol", "team 2"]
        assert titles[1] == titles[4] == ["team 1", "other 1", "team by carol", "team 2"]
        assert titles[2] == ["team 1", "other 1", "team by carol", "team 2"]
        assert titles[3] == ["dave alone"]

        # Bob leaves the team: its tombstones, then nothing of the list, while carol sees on.
        got = [[] for _ in listeners]
        await asyncio.to_thread(remove_member, db_engine, team, bob)
        later = await asyncio.to_thread(make_task, client, alice, "after", list_id=team)
        await _until(caught_up, "every stream caught up again")
        assert {c.type for c in got[1]} == {"access.ended"}
        assert [c.type for c in got[1]] == [c.type for c in got[4]]
        assert [(c.type, c.task_id) for c in got[2]] == [("created", later)]
        assert [(c.type, c.task_id) for c in got[0]] == [("created", later)]

    _reading(db_engine, settings, accounts, scenario)


def test_a_revoked_accounts_stream_is_ended_by_the_reader(
    client: TestClient, register: Callable[..., Account], db_engine: Engine, settings: Settings
) -> None:
    alice, bob = register(), register()

    async def scenario(live: LiveFeeds, listeners: list[Listener]) -> None:
        revoked = await asyncio.to_thread(
            client.post, "/api/auth/logout-all", headers=alice.headers
        )
        assert revoked.status_code in (200, 204)
        for listener in listeners:
            listener.check()  # the heartbeat: checked in the next poll's read
        await _until(lambda: listeners[0].ended is not None, "alice's stream to end")
        await _until(lambda: not listeners[1].due, "bob's check")
        assert listeners[0].ended == "account"
        assert listeners[1].ended is None

    _reading(db_engine, settings, [alice, bob], scenario)
