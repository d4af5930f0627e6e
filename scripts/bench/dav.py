"""Issue 62's scenario ("a benchmark scenario reports p50 and throughput ... of a PUT beside
PATCH, at 0 and 10 ms RTT"), run against the API alone (the baseline and naive apps speak no
DAV): `dav-put`, beside `update` (the PATCH of a task's title and priority).

`DAV_USERS` seeded accounts each get an app password (written afresh per benchmark, stored as
its hash as the API stores one) and one of their own tasks in no list, not recurring and no
subtask: a CalDAV client saving its edit, `PUT /dav/calendars/no-list/task-<id>@task-api.ics`
with the whole object (a new SUMMARY and PRIORITY each request), signed in with HTTP Basic, no
`If-Match` (as Tasks.org sends it). `validate` checks each answers 204 and the task's title
changed through REST's read of it.
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from backend.db.engine import normalize_url
from backend.models.app_password import dav_username
from backend.models.names import name_key
from backend.services.app_passwords import new_password
from backend.services.invitations import token_hash
from scripts.bench.seed import BenchDb
from scripts.bench.workload import _lua

SCENARIO = "dav-put"
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
