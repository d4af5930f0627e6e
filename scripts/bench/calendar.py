"""Issue 52's scenario ("a benchmark scenario reports p50 and throughput for a 1,000-task feed,
full and 304"), run against the API alone: `calendar-feed`.

`FEEDS` accounts (`feeder-n`) each have `FEED_TASKS` tasks due in the next 100 days (a tenth of
them weekly series, in three time zones) and one `events` feed of them all. A level is two
timed runs, back to back (the order alternating from level to level): calendar apps fetching
the whole feed, `GET /api/calendar/<token>.ics` (`calendar-feed`), and revalidating it with
its current `ETag` in `If-None-Match`, answered `304` (`calendar-feed-304`); a different feed
per request. Each feed's token is made afresh per benchmark (its hash written over the seeded
one), and its tag read by `validate`, which also checks the full answer holds `FEED_TASKS`
events and the revalidation is a 304.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
from sqlalchemy import Connection, create_engine, text

from backend.db.engine import normalize_url
from backend.services.statements.tokens import token_hash
from scripts.bench.db import BenchDb
from scripts.bench.shared import INSERT_USERS
from scripts.bench.workload import _lua

SCENARIO = "calendar-feed"
NOT_MODIFIED_SCENARIO = "calendar-feed-304"
FEEDS = 4
FEED_TASKS = 1000


def feeder(n: int) -> str:
    return f"feeder-{n}"


# Every column a task's insert through the API would set that the feed reads; the series'
# columns as the schedule writes them (a weekly rule from its first due date).
_TASKS = text(
    "INSERT INTO tasks (user_id, title, description, due_date, time_zone, recurrence, "
    "series_id, series_start, tags, position) "
    "SELECT u, 'Task ' || n || ' of ' || u, 'Bring the notes for task ' || n, "
    "date_trunc('hour', now()) + n * interval '144 minutes', "
    "(ARRAY['Europe/Berlin', 'America/New_York', 'Australia/Sydney'])[n % 3 + 1], "
    "CASE WHEN n % 10 = 0 THEN 'FREQ=WEEKLY;BYDAY=MO,TH' END, "
    "CASE WHEN n % 10 = 0 THEN gen_random_uuid() END, "
    "CASE WHEN n % 10 = 0 THEN date_trunc('hour', now()) + n * interval '144 minutes' END, "
    "ARRAY['tag' || n % 7], n * 65536 "
    "FROM unnest(CAST(:users AS text[])) AS u, generate_series(1, :tasks) AS n"
)
_FEEDS = text(
    "INSERT INTO calendar_feeds (user_id, token_hash) "
    "SELECT u, md5(u) FROM unnest(CAST(:users AS text[])) AS u"
)


def seed_feeds(conn: Connection) -> None:
    """The accounts, their tasks and feeds, in the caller's transaction, unless seeded."""
    users = [feeder(n) for n in range(1, FEEDS + 1)]
    if conn.execute(text("SELECT 1 FROM users WHERE id = :u"), {"u": users[0]}).first():
        return
    conn.execute(INSERT_USERS, {"users": users})
    conn.execute(_TASKS, {"users": users, "tasks": FEED_TASKS})
    conn.execute(_FEEDS, {"users": users})
    conn.execute(text("ANALYZE tasks"))


def tokens(db: BenchDb) -> list[str]:
    """A fresh token for each feed (its hash replaces the stored one): tokens[n - 1] is
    `feeder(n)`'s. Seeds the feeds first where the database has none."""
    made = [secrets.token_urlsafe(32) for _ in range(FEEDS)]
    engine = create_engine(normalize_url(db.url))
    with engine.begin() as conn:
        seed_feeds(conn)
        for n, token in enumerate(made, start=1):
            conn.execute(
                text("UPDATE calendar_feeds SET token_hash = :hash WHERE user_id = :user"),
                {"hash": token_hash(token), "user": feeder(n)},
            )
    engine.dispose()
    return made


def write_data(path: Path, feed_tokens: list[str], tags: list[str]) -> Path:
    """The scenario's data file: the feeds' tokens (`tokens`, which common.lua walks a
    request at a time, as every script's: here URL tokens, no bearer tokens) and their
    current tags (`tags`), n-th for the n-th feed."""
    path.write_text(f"return {{\ntokens = {_lua(feed_tokens)},\ntags = {_lua(tags)},\n}}\n")
    return path


def validate(url: str, feed_tokens: list[str], path: Path) -> list[str]:
    """Each feed answers its `FEED_TASKS` events and a 304 to its own tag; the tags go into
    the data file (`write_data`)."""
    checked: list[str] = []
    tags: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for token in feed_tokens:
            full = client.get(f"/api/calendar/{token}.ics")
            events = full.content.count(b"BEGIN:VEVENT\r\n")
            if full.status_code != 200 or events != FEED_TASKS:
                raise AssertionError(f"{SCENARIO}: {full.status_code}, {events} events")
            tag = full.headers["ETag"]
            again = client.get(f"/api/calendar/{token}.ics", headers={"If-None-Match": tag})
            if again.status_code != 304 or again.content:
                raise AssertionError(f"{NOT_MODIFIED_SCENARIO}: {again.status_code}")
            tags.append(tag)
    write_data(path, feed_tokens, tags)
    checked.append(
        f"{SCENARIO}: {len(feed_tokens)} feeds of {FEED_TASKS} events each, each a 304 to its tag"
    )
    return checked
