"""The live streams' service (backend/services/live.py): the reader's query (`moved_since`)
answers each new event once, with every user whose feed it moves, and nothing it was told
it has seen (its answer per poll is what moved since the last poll, not the whole rescan
window); a heartbeat's read waits its turn but never past its stream's wake-up."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.config import Settings
from backend.services.live import LiveFeeds, feed_head, moved_since
from tests.conftest import Account
from tests.sharing.helpers import add_member, make_list, make_task


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


def test_a_heartbeat_read_waits_its_turn_but_never_past_a_wake_up(
    db_engine: Engine, settings: Settings
) -> None:
    """Heartbeat reads go one at a time; one waiting for its turn when its stream is woken
    becomes an ordinary read at once (a stream waiting on a heartbeat is not blind to events),
    and gives up its place in the queue (the lock is never left held)."""

    async def scenario() -> None:
        live = LiveFeeds(db_engine, settings)
        wake = asyncio.Event()
        assert await live._heartbeat_turn(wake) is True  # free: its turn, the lock held
        waiting = asyncio.ensure_future(live._heartbeat_turn(wake))
        await asyncio.sleep(0)
        assert not waiting.done()  # another heartbeat read holds the turn
        wake.set()
        assert await waiting is False  # woken: no turn taken
        live._checks.release()
        assert not live._checks.locked()
        wake.clear()
        assert await live._heartbeat_turn(wake) is True
        live._checks.release()

    asyncio.run(scenario())
