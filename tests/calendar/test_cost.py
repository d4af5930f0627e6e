"""What a feed costs (issue 52, "Cost"): a feed of 1,000 tasks is one round trip to the
database, and its `304` answers without making the body. Counted, not timed: the round trips
through the counting proxy (scripts/bench/dbproxy.py), the bodies made by a spy on
`calendar_ics.body`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import icalendar
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.main import create_app
from backend.services.calendar import calendar_ics
from scripts.bench.dbproxy import DbProxy
from tests.calendar.test_feeds import make_feed, path_of
from tests.conftest import TEST_SECRET, Account

TASKS = 1000


@pytest.fixture(scope="module")
def proxy(database_url: str) -> Iterator[DbProxy]:
    with DbProxy.for_url(database_url, count=True) as running:
        yield running


@pytest.fixture(scope="module")
def counted(proxy: DbProxy, database_url: str) -> Iterator[TestClient]:
    """The app through the counting proxy, with the per-token rate limit on (its count rides
    in the same message)."""
    settings = Settings(
        environment="test",
        database_url=proxy.url(database_url),
        jwt_secret=TEST_SECRET,
        auto_migrate=False,
        db_pool_ping_idle_seconds=3600,
        rate_limit_enabled=True,
        rate_limit_calendar_feed_per_hour=10_000,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _thousand_tasks(engine: Engine, account: Account) -> None:
    """1,000 tasks due in the next 100 days, a tenth of them recurring, in three zones."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (user_id, title, description, due_date, time_zone, "
                "recurrence, series_id, series_start, tags, position) "
                "SELECT :user, 'task ' || n, 'about task ' || n, "
                "now() + n * interval '144 minutes', "
                "(ARRAY['Europe/Berlin', 'America/New_York', 'Australia/Sydney'])[n % 3 + 1], "
                "CASE WHEN n % 10 = 0 THEN 'FREQ=WEEKLY;BYDAY=MO,TH' END, "
                "CASE WHEN n % 10 = 0 THEN gen_random_uuid() END, "
                "CASE WHEN n % 10 = 0 THEN now() + n * interval '144 minutes' END, "
                "ARRAY['t' || n % 7], n * 65536 "
                "FROM generate_series(1, :n) n"
            ),
            {"user": account.id, "n": TASKS},
        )


def test_a_thousand_task_feed_is_one_round_trip_and_its_304_makes_no_body(
    proxy: DbProxy,
    counted: TestClient,
    alice: Account,
    setup_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _thousand_tasks(setup_engine, alice)
    feed = make_feed(counted, alice)
    bodies: list[int] = []
    made = calendar_ics.body

    def spy(*args: Any) -> bytes:
        bodies.append(1)
        return made(*args)

    monkeypatch.setattr(calendar_ics, "body", spy)
    assert counted.get(path_of(feed)).status_code == 200  # warm: the pool holds a connection
    with proxy.measure() as full:
        first = counted.get(path_of(feed))
    assert first.status_code == 200
    assert len(icalendar.Calendar.from_ical(first.content).walk("VEVENT")) == TASKS
    assert (full.round_trips, full.connections) == (1, 0)
    assert first.headers["RateLimit-Policy"] == '"calendar-feed";q=10000;w=3600'
    before = len(bodies)
    with proxy.measure() as revalidated:
        again = counted.get(path_of(feed), headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert (revalidated.round_trips, revalidated.connections) == (1, 0)
    assert len(bodies) == before, "a 304 made the body"


def test_an_unknown_token_is_one_round_trip_and_counts_nothing(
    proxy: DbProxy, counted: TestClient, alice: Account
) -> None:
    """A fetch that finds no feed (a guessed, revoked or rotated token) costs what a found one
    does, one message, and counts nothing (issue 61: a count kept per token told a dead token
    from one never valid); a live token's fetches are counted, once each, in the same
    message."""
    feed = make_feed(counted, alice)
    path = path_of(feed)
    unknown = path[: -len("x.ics")] + ("y" if path[-5] != "y" else "z") + ".ics"
    assert counted.get(unknown).status_code == 404  # warm: the pool holds a connection
    with proxy.measure() as missing:
        first = counted.get(unknown)
    assert first.status_code == 404
    assert (missing.round_trips, missing.connections) == (1, 0)
    assert "RateLimit" not in first.headers and "RateLimit-Policy" not in first.headers
    with proxy.measure() as found:
        live = [counted.get(path) for _ in range(2)]
    assert found.round_trips == 2
    remaining = [int(r.headers["RateLimit"].rsplit("r=", 1)[1].split(";")[0]) for r in live]
    assert remaining[0] - remaining[1] == 1, remaining
