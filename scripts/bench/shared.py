"""Issue 39's scenario (item: "a member listing a shared list of 100 tasks stays within 1.2x of
listing its own at 10 ms RTT"), run against the API alone: `shared-list`.

`SHARED_PAIRS` owners (`sharer-n`) each own one list of `SHARED_TASKS` tasks, all at its top
level (`seeding.seed_lists`), shared with one member each (`member-n`, a viewer: the least
role that reads). The scenario is two timed runs per concurrency level, back to back (the
order alternating from level to level): the member lists the list shared with it,
`GET /api/tasks?list_id=<id>` (`shared-list`), and the owner lists the same list, its own, with
the same request (`shared-list-owner`); one page each, the default page size (100), a
different pair per request. Both answers are the same page, checked before any timing.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import Connection, create_engine, text

from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.db.engine import normalize_url
from scripts.bench.db import BenchDb
from scripts.bench.workload import TOKEN_LIFETIME, _lua
from scripts.seeding import seed_lists

SCENARIO = "shared-list"
OWNER_SCENARIO = "shared-list-owner"
# One pair per connection of the largest standard run, so that requests seldom queue on one.
SHARED_PAIRS = 32
SHARED_TASKS = 100
ROLE = "viewer"


def sharer(n: int) -> str:
    return f"sharer-{n}"


def member(n: int) -> str:
    return f"member-{n}"


# Accounts by id (the calendar-feed scenario makes its own with it too).
INSERT_USERS = text("INSERT INTO users (id) SELECT unnest(CAST(:users AS text[]))")
_MEMBERS = text(
    "INSERT INTO list_members (user_id, list_id, member_id, role) "
    "SELECT l.user_id, l.id, 'member-' || substr(l.user_id, 8), :role FROM task_lists AS l "
    "WHERE l.user_id = ANY(CAST(:owners AS text[]))"
)
_PAIRS = text(
    "SELECT substr(m.user_id, 8)::int AS n, m.list_id FROM list_members AS m "
    "WHERE m.user_id LIKE 'sharer-%' ORDER BY 1"
)


def seed_shared(conn: Connection) -> None:
    """The owners, their lists and the members, in the caller's transaction (`seed.prepare`)."""
    owners = [sharer(n) for n in range(1, SHARED_PAIRS + 1)]
    members = [member(n) for n in range(1, SHARED_PAIRS + 1)]
    conn.execute(INSERT_USERS, {"users": owners + members})
    seed_lists(conn, owners, "Shared", tasks=SHARED_TASKS)
    conn.execute(_MEMBERS, {"role": ROLE, "owners": owners})
    conn.execute(text("ANALYZE list_members"))


def pairs(db: BenchDb) -> list[int]:
    """lists[n - 1] is the list `sharer(n)` owns and `member(n)` is a member of."""
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        rows = conn.execute(_PAIRS).all()
    engine.dispose()
    lists = [int(list_id) for n, list_id in rows]
    if [int(n) for n, _ in rows] != list(range(1, SHARED_PAIRS + 1)):
        raise RuntimeError(f"the shared lists are not seeded as expected: {rows}")
    return lists


def write_data(
    path: Path, settings: Settings, lists: list[int]
) -> tuple[Path, list[str], list[str]]:
    """The scenario's data file: the members' tokens (`tokens`, as every script's), the
    owners' (`owners`) and the lists (`lists`), n-th for the n-th pair."""
    members, owners = (
        [
            issue_token(name(n), settings, expires_in=TOKEN_LIFETIME, token_version=0)
            for n in range(1, len(lists) + 1)
        ]
        for name in (member, sharer)
    )
    path.write_text(
        f"return {{\ntokens = {_lua(members)},\nowners = {_lua(owners)},\n"
        f"lists = {_lua(lists)},\n}}\n"
    )
    return path, members, owners


def validate(url: str, members: list[str], owners: list[str], lists: list[int]) -> list[str]:
    """The member's page and the owner's are the same page of `SHARED_TASKS` tasks, for the
    first and the last pair."""
    checked: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for index in (0, len(lists) - 1):
            path = f"/api/tasks?list_id={lists[index]}"
            answers = [
                client.get(path, headers={"Authorization": f"Bearer {token}"})
                for token in (members[index], owners[index])
            ]
            for answer in answers:
                if answer.status_code != 200:
                    raise AssertionError(f"{SCENARIO} {path}: {answer.status_code} {answer.text}")
            pages = [answer.json()["data"] for answer in answers]
            if len(pages[0]) != SHARED_TASKS or pages[0] != pages[1]:
                raise AssertionError(
                    f"{SCENARIO} {path}: the member's page ({len(pages[0])} tasks) is not the "
                    f"owner's ({len(pages[1])})"
                )
            checked.append(
                f"{SCENARIO}: member and owner list the same {SHARED_TASKS} tasks "
                f"(list {lists[index]})"
            )
    return checked
