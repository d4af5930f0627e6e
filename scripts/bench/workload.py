"""What wrk sends: tokens minted with the API's own secret, task ids known from the seed, and
tasks made for the delete scenario. Written as Lua data files the scripts in lua/ load."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, text

from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.db.engine import normalize_url
from scripts.bench.db import BenchDb

LUA_DIR = Path(__file__).resolve().parent / "lua"
TOKEN_LIFETIME = 12 * 3600
OWNED_USERS = 2000  # users whose task ids the get/update/toggle scenarios use
OWNED_PER_USER = 10


def settings_for(secret: str, database_url: str) -> Settings:
    # Built-in tokens (`task_api` + `ver` claims), as the API's own sign-in mints them.
    return Settings(_env_file=None, jwt_secret=secret, database_url=database_url)  # type: ignore[call-arg]


def mint_tokens(settings: Settings, users: int) -> list[str]:
    """tokens[i] is user-(i+1)'s, so Lua can find a task's owner from its `user_id`."""
    return [
        issue_token(f"user-{i}", settings, expires_in=TOKEN_LIFETIME, token_version=0)
        for i in range(1, users + 1)
    ]


def _lua(value: object) -> str:
    """Lua table syntax for lists of strings/ints (JSON strings are valid Lua strings here:
    tokens and ids contain no escapes)."""
    if isinstance(value, list):
        return "{" + ",".join(_lua(v) for v in value) + "}"
    if isinstance(value, str):
        return json.dumps(value)
    return str(int(value))  # type: ignore[call-overload]


def owned_pairs(db: BenchDb) -> list[list[int]]:
    """(user number, task id) pairs of seeded tasks, interleaved across users."""
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT substr(user_id, 6)::int AS u, id FROM ("
                "  SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY id) AS n"
                "  FROM tasks WHERE id <= :max AND user_id IN ("
                "    SELECT 'user-' || g FROM generate_series(1, :users) AS g)"
                ") t WHERE n <= :per ORDER BY n, u"
            ),
            {"max": db.max_seed_id, "users": min(db.users, OWNED_USERS), "per": OWNED_PER_USER},
        ).all()
    engine.dispose()
    return [[int(u), int(i)] for u, i in rows]


def callers_in_no_list(db: BenchDb) -> str:
    """Check that the seeded users (the `list` scenario's callers, and get/update/toggle's) are
    members of no list and own no shared list: their listing is a member of nothing's, the one
    whose member arm the planner gates away (issue 60). RuntimeError otherwise."""
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        member, sharing = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE member_id = ANY(CAST(:users AS text[]))), "
                "count(*) FILTER (WHERE user_id = ANY(CAST(:users AS text[]))) FROM list_members"
            ),
            {"users": [f"user-{n}" for n in range(1, db.users + 1)]},
        ).one()
    engine.dispose()
    if member or sharing:
        raise RuntimeError(
            f"the seeded users have {member} memberships and share {sharing} times: the list "
            "scenario would not measure a member of nothing"
        )
    return (
        f"list: its {db.users} callers (user-1..user-{db.users}) are members of no list and "
        "own no shared list"
    )


def write_data(path: Path, tokens: list[str], owned: list[list[int]]) -> Path:
    path.write_text(f"return {{\ntokens = {_lua(tokens)},\nowned = {_lua(owned)},\n}}\n")
    return path


def make_pool(db: BenchDb, count: int, path: Path) -> Path:
    """Insert `count` throw-away tasks spread over the users; write their (user, id) pairs."""
    engine = create_engine(normalize_url(db.url))
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "INSERT INTO tasks (user_id, title, tags) "
                "SELECT 'user-' || (1 + g % :users), 'Disposable ' || g, '{bench}' "
                "FROM generate_series(1, :count) AS g RETURNING substr(user_id, 6)::int, id"
            ),
            {"users": min(db.users, OWNED_USERS), "count": count},
        ).all()
    engine.dispose()
    path.write_text(f"return {_lua([[int(u), int(i)] for u, i in rows])}\n")
    return path
