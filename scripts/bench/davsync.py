"""Issue 62's sync scenario ("a benchmark scenario reports p50 and throughput of a sync with 1
change in 1,000"), run against the API alone (the baseline and the naive app speak no DAV):
`dav-sync`; and issue 70's filtered `calendar-query` of the same lists, `dav-query`.

`SYNCERS` accounts (`syncer-n`, seeded with the database by `seed.prepare`) each own a list of
`SYNC_TASKS` tasks. Per pass, `validate` gives each a fresh CalDAV app password (its hash
written, as the API stores it), syncs its list from empty over HTTP for a token, changes one
task (through the database, whose trigger records it as any writer's change), and checks that
a sync from that token reports exactly that one task, and a sync from the token it answers
reports nothing. A level is two timed runs, back to back: `REPORT sync-collection` from the
token with one change since (`dav-sync`: one statement more than unchanged, one object
tagged), and from the token with none (`dav-sync-unchanged`, a client's poll: one statement
after the password's check); a different account per request.
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path

import httpx
from sqlalchemy import Connection, create_engine, text

from backend.db.engine import normalize_url
from backend.models.app_password import dav_username
from backend.services.accounts.app_passwords import new_password
from backend.services.statements.tokens import token_hash
from scripts.bench.db import BenchDb
from scripts.bench.shared import INSERT_USERS
from scripts.bench.workload import _lua
from scripts.seeding import seed_lists

SCENARIO = "dav-sync"
UNCHANGED_SCENARIO = "dav-sync-unchanged"
QUERY_SCENARIO = "dav-query"
# Issue 70's filtered query (`dav-query`): a text-match on SUMMARY and DESCRIPTION
# is-not-defined over the list's 1,000 tasks (`Item 1` ... `Item 1000`, none described): 11
# match (`Item 99`, `Item 990` ... `Item 999`), each returned with its `calendar-data`.
QUERY = (
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
    '<D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
    '<C:comp-filter name="VTODO"><C:prop-filter name="SUMMARY"><C:text-match>Item 99'
    '</C:text-match></C:prop-filter><C:prop-filter name="DESCRIPTION"><C:is-not-defined/>'
    "</C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
)
QUERY_MATCHES = 11
SYNCERS = 4
SYNC_TASKS = 1000
BODY = (
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
)
_TOKEN = re.compile(r"<D:sync-token>([^<]+)</D:sync-token>")


def syncer(n: int) -> str:
    return f"syncer-{n}"


def seed_syncers(conn: Connection) -> None:
    """The accounts and their lists, in the caller's transaction (`seed.prepare`)."""
    users = [syncer(n) for n in range(1, SYNCERS + 1)]
    conn.execute(INSERT_USERS, {"users": users})
    seed_lists(conn, users, "Synced", tasks=SYNC_TASKS)


_LISTS = text(
    "SELECT user_id, id FROM task_lists WHERE user_id = ANY(CAST(:users AS text[])) ORDER BY 1"
)
_FORGET = text("DELETE FROM app_passwords WHERE user_id = ANY(CAST(:users AS text[]))")
_PASSWORD = text(
    "INSERT INTO app_passwords (user_id, name, name_key, scope, token_hash) "
    "VALUES (:user, 'bench', 'bench', 'read_write', :hash)"
)
# One task of the list changed as any writer changes it (its version moves: a new ETag).
_CHANGE = text(
    "UPDATE tasks SET title = :title, version = version + 1 "
    "WHERE id = (SELECT min(id) FROM tasks WHERE list_id = :list)"
)


def _credentials(db: BenchDb) -> tuple[list[str], list[int]]:
    """A fresh app password per account (`Authorization` values) and their lists, in order."""
    users = [syncer(n) for n in range(1, SYNCERS + 1)]
    engine = create_engine(normalize_url(db.url))
    headers: list[str] = []
    with engine.begin() as conn:
        lists = dict(conn.execute(_LISTS, {"users": users}).tuples().all())
        conn.execute(_FORGET, {"users": users})
        for user in users:
            password = new_password()
            conn.execute(_PASSWORD, {"user": user, "hash": token_hash(password)})
            pair = f"{dav_username(user)}:{password}".encode()
            headers.append("Basic " + base64.b64encode(pair).decode())
    engine.dispose()
    return headers, [int(lists[user]) for user in users]


def _sync(client: httpx.Client, auth: str, list_id: int, token: str) -> tuple[str, int]:
    answer = client.request(
        "REPORT",
        f"/dav/calendars/{list_id}/",
        content=BODY.format(token=token),
        headers={"Authorization": auth, "Depth": "0", "Content-Type": "application/xml"},
    )
    found = _TOKEN.search(answer.text)
    if answer.status_code != 207 or found is None:
        raise AssertionError(f"{SCENARIO}: {answer.status_code} {answer.text[:200]}")
    return found.group(1), answer.text.count("<D:response>")


def _query(client: httpx.Client, auth: str, list_id: int) -> None:
    answer = client.request(
        "REPORT",
        f"/dav/calendars/{list_id}/",
        content=QUERY,
        headers={"Authorization": auth, "Depth": "1", "Content-Type": "application/xml"},
    )
    found = answer.text.count("<D:response>")
    if answer.status_code != 207 or found != QUERY_MATCHES or "BEGIN:VTODO" not in answer.text:
        raise AssertionError(f"{QUERY_SCENARIO}: {answer.status_code}, {found} objects")


def write_data(
    path: Path, auth: list[str], lists: list[int], tokens: tuple[list[str], ...]
) -> Path:
    """The scenario's data file: each account's `Authorization` value (`tokens`, which
    common.lua walks a request at a time), its list, its token with one change since
    (`changed`) and with none (`unchanged`)."""
    changed, unchanged = tokens
    path.write_text(
        f"return {{\ntokens = {_lua(auth)},\nlists = {_lua([str(x) for x in lists])},\n"
        f"changed = {_lua(changed)},\nunchanged = {_lua(unchanged)},\n}}\n"
    )
    return path


def validate(url: str, db: BenchDb, path: Path) -> list[str]:
    """Each account's sync from empty lists its `SYNC_TASKS` objects; one task changed, a sync
    from that token reports it alone, and from the token it answers nothing. The tokens go
    into the data file (`write_data`)."""
    auth, lists = _credentials(db)
    engine = create_engine(normalize_url(db.url))
    changed: list[str] = []
    unchanged: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for header, list_id in zip(auth, lists, strict=True):
            before, listed = _sync(client, header, list_id, "")
            if listed != SYNC_TASKS:
                raise AssertionError(f"{SCENARIO}: {listed} objects from empty")
            with engine.begin() as conn:
                conn.execute(_CHANGE, {"title": f"Changed {secrets.token_hex(4)}", "list": list_id})
            after, reported = _sync(client, header, list_id, before)
            if reported != 1:
                raise AssertionError(f"{SCENARIO}: {reported} changes reported, not 1")
            if _sync(client, header, list_id, after)[1] != 0:
                raise AssertionError(f"{UNCHANGED_SCENARIO}: changes reported")
            _query(client, header, list_id)
            changed.append(before)
            unchanged.append(after)
    engine.dispose()
    write_data(path, auth, lists, (changed, unchanged))
    return [
        f"{SCENARIO}: {SYNCERS} lists of {SYNC_TASKS} tasks, 1 change since the token reported "
        "alone, none since the next",
        f"{QUERY_SCENARIO}: the filtered query returns its {QUERY_MATCHES} tasks with their data",
    ]
