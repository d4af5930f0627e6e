"""Issue 62's scenario ("a benchmark scenario reports p50 and throughput ... of a PUT beside
PATCH, at 0 and 10 ms RTT"), run against the API alone (the baseline and naive apps speak no
DAV): `dav-put`, beside `update` (the PATCH of a task's title and priority).

`DAV_USERS` seeded accounts each get an app password (written afresh per benchmark, stored as
its hash as the API stores one) and one of their own tasks in no list, not recurring and no
subtask: a CalDAV client saving its edit, `PUT /dav/calendars/no-list/task-<id>@task-api.ics`
with the whole object (a new SUMMARY and PRIORITY each request), signed in with HTTP Basic, no
`If-Match` (as Tasks.org sends it). `validate` checks each answers 204 and the task's title
changed through REST's read of it.

`dav-put-if-match` (issue 70): the same save with `If-Match` naming the object's current tag,
as DAVx5, Thunderbird and vdirsyncer send it. Each request writes a task of its own, once (a
PUT stored as sent answers its new tag since issue 81; the scenario chains none, as measured):
`make_pool` inserts throw-away tasks for the same accounts before each run (`seed.reset`
deletes them) and reads their tags with one PROPFIND per account, and
`lua/dav-put-if-match.lua` PUTs each (user, path, tag) of the pool once, as `delete` does.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from backend.db.engine import normalize_url
from backend.models.app_password import dav_username
from backend.models.names import name_key
from backend.services.accounts.app_passwords import new_password
from backend.services.statements.tokens import token_hash
from scripts.bench.db import BenchDb
from scripts.bench.workload import _lua

SCENARIO = "dav-put"
IF_MATCH_SCENARIO = "dav-put-if-match"
DAV_USERS = 16
_NAME = "bench"
_TASKS = text(
    "SELECT DISTINCT ON (user_id) user_id, id FROM tasks WHERE user_id = ANY(:users) "
    "AND list_id IS NULL AND parent_id IS NULL AND recurrence IS NULL ORDER BY user_id, id"
)
_FORGET = text("DELETE FROM app_passwords WHERE user_id = ANY(:users) AND name_key = :key")
_PASSWORD = text(
    "INSERT INTO app_passwords (user_id, name, name_key, scope, token_hash) "
    "VALUES (:user, :name, :key, 'read_write', :hash)"
)


def credentials(db: BenchDb) -> list[tuple[str, str]]:
    """(Basic header, object path) per account with such a task: a fresh app password each."""
    users = [f"user-{n}" for n in range(1, min(db.users, DAV_USERS) + 1)]
    engine = create_engine(normalize_url(db.url))
    made: list[tuple[str, str]] = []
    with engine.begin() as conn:
        conn.execute(_FORGET, {"users": users, "key": name_key(_NAME)})
        for user, task_id in conn.execute(_TASKS, {"users": users}).all():
            password = new_password()
            conn.execute(
                _PASSWORD,
                {"user": user, "name": _NAME, "key": name_key(_NAME), "hash": token_hash(password)},
            )
            pair = f"{dav_username(user)}:{password}".encode()
            path = f"/dav/calendars/no-list/task-{task_id}@task-api.ics"
            made.append(("Basic " + base64.b64encode(pair).decode(), path))
    engine.dispose()
    if not made:
        raise RuntimeError(f"{SCENARIO}: no seeded task in no list to PUT")
    return made


def write_data(path: Path, made: list[tuple[str, str]]) -> Path:
    """The scenario's data file: the Basic headers (`tokens`, walked a request at a time by
    common.lua, as every script's) and each account's object path (`paths`)."""
    tokens, paths = [header for header, _ in made], [p for _, p in made]
    path.write_text(f"return {{\ntokens = {_lua(tokens)},\npaths = {_lua(paths)},\n}}\n")
    return path


def body(uid: str, n: int) -> bytes:
    """The object a client PUTs: the whole VTODO, its title and priority changed (`n`)."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bench//EN\r\nBEGIN:VTODO\r\n"
        f"UID:{uid}\r\nSUMMARY:Saved on the phone {n}\r\nPRIORITY:{1 + n % 9}\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def validate(url: str, made: list[tuple[str, str]]) -> list[str]:
    """Each account's PUT answers 204 and its task's title is the one it wrote."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for n, (header, path) in enumerate(made):
            uid = path.rsplit("/", 1)[1].removesuffix(".ics")
            headers = {"Authorization": header, "Content-Type": "text/calendar"}
            answer = client.put(path, content=body(uid, n), headers=headers)
            if answer.status_code != 204:
                raise AssertionError(f"{SCENARIO}: {answer.status_code} {answer.text[:200]}")
            got = client.get(path, headers={"Authorization": header})
            if f"SUMMARY:Saved on the phone {n}".encode() not in got.content:
                raise AssertionError(f"{SCENARIO}: the PUT's title is not served")
    return [f"{SCENARIO}: {len(made)} accounts' PUTs answered 204 and served back"]


# A server that holds the PUT's cost near 6 ms of CPU a request, and at most this many a second
# on this machine: enough pool for a run with room to spare (`pool_size`).
PUT_SERVER_MS = 6.0
PUT_MAX_RATE = 400.0
_DISPOSABLE = text(
    "INSERT INTO tasks (user_id, title, tags) "
    "SELECT (:users)[1 + g % cardinality(:users)], 'Disposable DAV ' || g, '{bench}' "
    "FROM generate_series(1, :count) AS g RETURNING user_id, id"
)
_LISTED = re.compile(r"<D:href>([^<]+)</D:href>.*?<D:getetag>([^<]+)</D:getetag>", re.DOTALL)
_PROPFIND = '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'


def pool_size(seconds: float, connections: int, rtt_ms: float | None) -> int:
    """Tasks enough for a `dav-put-if-match` run, with room to spare."""
    per_connection = 1000 / ((rtt_ms or 0) + PUT_SERVER_MS)
    rate = min(PUT_MAX_RATE, connections * per_connection)
    return int(rate * seconds * 1.5) + 2 * connections + 20


def make_pool(url: str, db: BenchDb, made: list[tuple[str, str]], count: int, path: Path) -> Path:
    """`count` throw-away tasks in no list over the accounts of `made`, each with its current
    tag (one PROPFIND Depth 1 per account): write their (account number, path, tag) triples."""
    number = {}
    for n, (header, _) in enumerate(made, 1):
        number[base64.b64decode(header.split()[1]).decode().partition(":")[0]] = n
    users = [f"user-{k}" for k in range(1, db.users + 1) if dav_username(f"user-{k}") in number][
        : len(made)
    ]
    engine = create_engine(normalize_url(db.url))
    with engine.begin() as conn:
        rows = conn.execute(_DISPOSABLE, {"users": users, "count": count}).all()
    engine.dispose()
    wanted = {f"task-{task_id}@task-api.ics": user for user, task_id in rows}
    triples: list[list[object]] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for header, _ in made:
            listed = client.request(
                "PROPFIND",
                "/dav/calendars/no-list/",
                content=_PROPFIND,
                headers={"Authorization": header, "Depth": "1"},
            )
            if listed.status_code != 207:
                raise AssertionError(f"{IF_MATCH_SCENARIO}: PROPFIND {listed.status_code}")
            for href, tag in _LISTED.findall(listed.text):
                user = wanted.get(href.rsplit("/", 1)[1])
                if user is not None:
                    account = number[dav_username(user)]
                    triples.append([account, href, tag.replace("&quot;", '"')])
    if len(triples) != len(rows):
        raise AssertionError(f"{IF_MATCH_SCENARIO}: {len(triples)} tags for {len(rows)} tasks")
    triples.sort(key=lambda triple: str(triple[1]))
    path.write_text(f"return {_lua(triples)}\n")
    return path
