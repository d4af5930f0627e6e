"""The live streams' reader query (backend/services/live.py, `moved_since`): each new event
once, with every user whose feed it moves, and nothing it was told it has seen (its answer
per poll is what moved since the last poll, not the whole rescan window)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.services.live import feed_head, moved_since
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
