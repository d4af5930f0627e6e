"""The raw baseline: the practical limit of Python on this machine for the same work.

A minimal ASGI app (Starlette + asyncpg, no ORM, no validation library) that does what the
API does for the benchmarked routes, and nothing more:

- verifies the same HS256 token with the same library and checks (exp/sub required, iat not
  in the future, the built-in `task_api` + `ver` claims), then reads the caller's
  `(id, token_version)` row first in the request's transaction and refuses a revoked `ver`, as
  `UserService.resolve_id` does; a write's read also takes the caller's change lock
  (`task_events_lock`, migration 0008), as the API's does;
- counts task writes in the same PostgreSQL rate-limit statement (`rate_limits._HIT`),
  in its own transaction, as the API does;
- runs the same SQL as the API (captured from SQLAlchemy's compiled statements) and returns
  the same JSON bodies, including `is_overdue`, an encrypted `next_cursor` and, on a listing, the
  change-feed position read in the page's own statement, encrypted as `meta.changes_cursor`
  (the cursors are sealed by `cursors.py`, which the floor shares).

Configured by the API's own environment variables: DATABASE_URL, JWT_SECRET,
JWT_LEEWAY_SECONDS, DB_POOL_SIZE, DB_MAX_OVERFLOW, RATE_LIMIT_ENABLED,
RATE_LIMIT_TASK_WRITES_PER_USER, RATE_LIMIT_TASK_WINDOW_SECONDS.
Served with `uvicorn scripts.bench.baseline:app --loop uvloop --http httptools`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

import asyncpg
from jose import jwt
from jose.exceptions import JOSEError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from backend.models.task_fields import FIELDS as TASK_FIELDS
from backend.models.task_table import Task
from scripts.bench.cursors import encode_changes_cursor, encode_cursor, list_fingerprint

SECRET = os.environ["JWT_SECRET"]
LEEWAY = int(os.environ.get("JWT_LEEWAY_SECONDS", "30"))
RATE_LIMITED = os.environ.get("RATE_LIMIT_ENABLED", "true").lower() == "true"
WRITE_LIMIT = int(os.environ.get("RATE_LIMIT_TASK_WRITES_PER_USER", "120"))
WRITE_WINDOW = int(os.environ.get("RATE_LIMIT_TASK_WINDOW_SECONDS", "60"))
POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "10")) + int(os.environ.get("DB_MAX_OVERFLOW", "10"))

# Every column of `tasks`, in table order; a task is encoded from them by name, the fields of
# the declaration (`backend/models/task_fields.py`) in its order, as `TaskPublic` prints them.
COLUMN_NAMES = tuple(column.name for column in Task.__table__.columns)  # type: ignore[attr-defined]
COLUMNS = ", ".join(COLUMN_NAMES)
# Per field: its column's conversion to JSON (None: as the driver reads it).
TYPE_NAMES = {column.name: type(column.type).__name__ for column in Task.__table__.columns}  # type: ignore[attr-defined]
FIELD_NAMES = tuple(field.name for field in TASK_FIELDS)
# Where a listing row's `sort_key` is, after the columns (the floor reads rows by position);
# a first page's `feed_position` follows it.
SORT_KEY = COLUMNS.count(",") + 1
# `UserService.resolve_id`: the caller's id and token version, first in the transaction; for
# a request that may change tasks, with the caller's change lock (`_ACCOUNT_FOR_WRITE`), held
# until the transaction ends.
ACCOUNT_SQL = "SELECT users.id, users.token_version FROM users WHERE users.id = $1"
ACCOUNT_FOR_WRITE_SQL = (
    "SELECT users.id, users.token_version, task_events_lock(users.id) FROM users "
    "WHERE users.id = $1"
)
# `backend.services.changes.latest_position`: the caller's latest change id, or how far pruning
# went if that is further, or 0.
FEED_POSITION = (
    "greatest((SELECT max(task_events.id) FROM task_events WHERE task_events.user_id = $1), "
    "(SELECT task_events_pruned.through_id FROM task_events_pruned "
    "WHERE task_events_pruned.user_id = $1), 0)"
)
# A page: the task's columns and its sort key; `{where}`: the filters.
PAGE_SQL = (
    f"SELECT {COLUMNS}, created_at AS sort_key FROM tasks WHERE user_id = $1{{where}} "
    "ORDER BY created_at DESC, id DESC LIMIT $2"
)
# A first page (`TaskService.list_page(feed_position=True)`): the feed position is a column of
# the page's own statement, so both come from one snapshot.
LIST_SQL = (
    f"SELECT {COLUMNS}, created_at AS sort_key, {FEED_POSITION} AS feed_position "
    "FROM tasks WHERE user_id = $1{where} ORDER BY created_at DESC, id DESC LIMIT $2"
)
# An empty first page carries no position: it is read with the proof that the page is still
# empty, in one statement (`TaskService._with_position`).
EMPTY_LIST_SQL = f"SELECT {FEED_POSITION}, EXISTS ({PAGE_SQL})"
# Re-reads of an empty page that filled up meanwhile, before giving up (503), as the API.
EMPTY_PAGE_ATTEMPTS = 5
CHANGING = "The task list kept changing while it was read; retry"
GET_SQL = f"SELECT {COLUMNS} FROM tasks WHERE user_id = $1 AND id = $2"
INSERT_SQL = (
    "INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, "
    "due_date, tags) VALUES ($1, $2, $3, $4, CASE WHEN $4 THEN now() END, $5, $6, $7) "
    f"RETURNING {COLUMNS}"
)
TOGGLE_SQL = (
    "UPDATE tasks SET completed = NOT completed, completed_at = CASE WHEN NOT completed "
    "THEN coalesce(completed_at, now()) ELSE NULL END, updated_at = now(), version = version + 1 "
    f"WHERE user_id = $1 AND id = $2 RETURNING {COLUMNS}"
)
DELETE_SQL = "DELETE FROM tasks WHERE user_id = $1 AND id = $2 RETURNING id"
HIT_SQL = """
    WITH expired AS (
        DELETE FROM rate_limits
        WHERE $3::boolean AND window_end < clock_timestamp() AND key <> ALL ($1::text[])
    )
    INSERT INTO rate_limits AS r (key, window_start, window_end, hits)
    SELECT k, s, s + make_interval(secs => w), 1
    FROM (
        SELECT k, w,
               date_bin(make_interval(secs => w), clock_timestamp(),
                        TIMESTAMPTZ '2000-01-01 00:00:00+00') AS s
        FROM unnest($1::text[], $2::integer[]) AS t(k, w)
        ORDER BY k
    ) AS windows
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
        window_start = EXCLUDED.window_start,
        window_end = EXCLUDED.window_end
    RETURNING key, hits,
              greatest(1, ceil(extract(epoch FROM window_end - clock_timestamp())))::integer
"""
PRIORITIES = ("none", "low", "medium", "high")
CLEAN_UP_ONE_IN = 500  # backend/services/rate_limits.py


def _clean_up() -> bool:
    """Whether this hit also deletes expired windows, as the API's does (one in 500)."""
    return random.randrange(CLEAN_UP_ONE_IN) == 0  # noqa: S311 (not security-relevant)


JSON = {"content-type": "application/json"}


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(text, status, headers=headers, media_type="application/json")


def _error(exc: Refused) -> Response:
    body = {"error": {"code": exc.code, "message": exc.message, "details": []}}
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _json(exc.status, body, headers)


def _claims(request: Request) -> tuple[str, int]:
    """The subject and `ver` of a valid built-in token, with the API's checks."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or len(token) > 8192:
        raise Refused(401, "UNAUTHORIZED", "Missing bearer token")
    options = {
        "require_exp": True,
        "require_sub": True,
        "verify_aud": False,
        "verify_nbf": True,
        "verify_iat": True,
        "leeway": LEEWAY,
    }
    try:
        if jwt.get_unverified_header(token).get("alg") != "HS256":
            raise Refused(401, "UNAUTHORIZED", "Invalid or expired token")
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options=options)
    except (JOSEError, TypeError, ValueError, KeyError):
        raise Refused(401, "UNAUTHORIZED", "Invalid or expired token") from None
    subject, version, issued = claims.get("sub"), claims.get("ver"), claims.get("iat")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise Refused(401, "UNAUTHORIZED", "Invalid or expired token")
    if isinstance(issued, int | float) and issued > time.time() + LEEWAY:
        raise Refused(401, "UNAUTHORIZED", "Invalid or expired token")
    if (
        claims.get("task_api") is not True
        or isinstance(version, bool)
        or not isinstance(version, int)
    ):
        # Only built-in tokens are benchmarked; the API would provision other subjects.
        raise Refused(401, "UNAUTHORIZED", "Invalid or expired token")
    return subject, version


async def _resolve(
    conn: asyncpg.Connection, subject: str, version: int, *, write: bool = False
) -> str:
    """The caller's id (401 if deleted or revoked); a `write` also takes their change lock."""
    user = await conn.fetchrow(ACCOUNT_FOR_WRITE_SQL if write else ACCOUNT_SQL, subject)
    if user is None:
        raise Refused(401, "UNAUTHORIZED", "The account for this token no longer exists")
    if user["token_version"] != version:
        raise Refused(401, "UNAUTHORIZED", "This token was revoked")
    return str(user["id"])


async def _limit_write(pool: asyncpg.Pool, subject: str) -> dict[str, str]:
    if not RATE_LIMITED or WRITE_LIMIT <= 0:
        return {}
    key = "task-writes:" + hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()
    async with pool.acquire() as conn, conn.transaction():
        _, hits, reset = await conn.fetchrow(HIT_SQL, [key], [WRITE_WINDOW], _clean_up())
    remaining = max(0, WRITE_LIMIT - hits)
    headers = {
        "RateLimit-Policy": f'"task-writes";q={WRITE_LIMIT};w={WRITE_WINDOW}',
        "RateLimit": f'"task-writes";r={remaining};t={reset}',
    }
    if hits > WRITE_LIMIT:
        headers["Retry-After"] = str(reset)
        raise Refused(429, "RATE_LIMITED", "Too many requests")
    return headers


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


_CONVERT = {
    "DateTime": _iso,
    "UUID": _str,
    "JSONB": json.loads,  # asyncpg hands JSONB over as text
    "TextArray": list,
}
_ENCODE = tuple((name, _CONVERT.get(TYPE_NAMES[name])) for name in FIELD_NAMES)


def _task(row: asyncpg.Record, now: datetime) -> dict[str, Any]:
    task = {name: row[name] if f is None else f(row[name]) for name, f in _ENCODE}
    completed, due = row["completed"], row["due_date"]
    task["is_overdue"] = not completed and due is not None and due < now
    return task


def _etag(row: asyncpg.Record) -> str:
    return f'"{row["id"]}-{row["version"]}"'


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def _page(
    conn: asyncpg.Connection, where: str, args: tuple[Any, ...]
) -> tuple[list[asyncpg.Record], int]:
    """A first page and the feed position of its snapshot (`TaskService._with_position`): a
    column of the page's rows, or, for an empty page, read with the proof that it is still
    empty; a page that filled up in between is read again."""
    rows = await conn.fetch(LIST_SQL.format(where=where), *args)
    for _ in range(EMPTY_PAGE_ATTEMPTS):
        if rows:
            return rows, rows[0]["feed_position"]
        position, appeared = await conn.fetchrow(EMPTY_LIST_SQL.format(where=where), *args)
        if not appeared:
            return rows, position
        rows = await conn.fetch(LIST_SQL.format(where=where), *args)
    raise Refused(503, "SERVICE_UNAVAILABLE", CHANGING)


async def list_tasks(request: Request) -> Response:
    try:
        subject, version = _claims(request)
        params = request.query_params
        status, q = params.get("status", "all"), (params.get("q") or "").strip() or None
        limit = int(params.get("limit", "100"))
        where, args = "", []
        if status in ("pending", "completed"):
            where += f" AND completed = {'true' if status == 'completed' else 'false'}"
        if q:
            where += " AND (title ILIKE $3 ESCAPE '\\' OR description ILIKE $4 ESCAPE '\\')"
            args = [_like(q), _like(q)]
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            user_id = await _resolve(conn, subject, version)
            rows, feed = await _page(conn, where, (user_id, limit + 1, *args))
    except Refused as exc:
        return _error(exc)
    now = datetime.now(UTC)
    page = rows[:limit]
    next_cursor, headers = None, {}
    if len(rows) > limit:
        fingerprint = list_fingerprint(status, q)
        last = page[-1]
        next_cursor = encode_cursor(
            SECRET, user_id, fingerprint, last["sort_key"], last["id"], feed
        )
        next_url = request.url.include_query_params(cursor=next_cursor)
        headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    body = {
        "data": [_task(r, now) for r in page],
        "meta": {
            "count": len(page),
            "limit": limit,
            "has_more": next_cursor is not None,
            "next_cursor": next_cursor,
            "total": None,
            "changes_cursor": encode_changes_cursor(SECRET, user_id, feed),
        },
    }
    return _json(200, body, headers)


def _task_id(request: Request) -> int:
    try:
        return int(request.path_params["task_id"])
    except ValueError:
        raise Refused(422, "VALIDATION_ERROR", "Invalid task id") from None


async def _one(request: Request, sql: str, write: bool) -> Response:
    try:
        subject, version = _claims(request)
        task_id = _task_id(request)
        pool = request.app.state.pool
        headers = await _limit_write(pool, subject) if write else {}
        async with pool.acquire() as conn, conn.transaction():
            user_id = await _resolve(conn, subject, version, write=write)
            row = await conn.fetchrow(sql, user_id, task_id)
        if row is None:
            raise Refused(404, "NOT_FOUND", "Task not found")
    except Refused as exc:
        return _error(exc)
    headers["ETag"] = _etag(row)
    return _json(200, {"data": _task(row, datetime.now(UTC))}, headers)


async def get_task(request: Request) -> Response:
    return await _one(request, GET_SQL, write=False)


async def toggle_task(request: Request) -> Response:
    return await _one(request, TOGGLE_SQL, write=True)


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), dtime(0), tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("offset required")
    return parsed.astimezone(UTC)


def _tags(value: Any) -> list[str]:
    return list(dict.fromkeys(str(t).strip().lower() for t in value))


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            raise ValueError
        return body
    except ValueError:
        raise Refused(422, "VALIDATION_ERROR", "Invalid body") from None


async def create_task(request: Request) -> Response:
    try:
        subject, version = _claims(request)
        body = await _body(request)
        title = str(body.get("title", "")).strip()
        priority = body.get("priority", "none")
        if not 1 <= len(title) <= 200 or priority not in PRIORITIES:
            raise Refused(422, "VALIDATION_ERROR", "Invalid body")
        values = (
            title,
            body.get("description"),
            bool(body.get("completed", False)),
            priority,
            _instant(body.get("due_date")),
            _tags(body.get("tags", [])),
        )
        pool = request.app.state.pool
        headers = await _limit_write(pool, subject)
        async with pool.acquire() as conn, conn.transaction():
            user_id = await _resolve(conn, subject, version, write=True)
            row = await conn.fetchrow(INSERT_SQL, user_id, *values)
    except Refused as exc:
        return _error(exc)
    except ValueError:
        return _error(Refused(422, "VALIDATION_ERROR", "Invalid body"))
    headers["Location"] = f"/api/tasks/{row['id']}"
    headers["ETag"] = _etag(row)
    return _json(201, {"data": _task(row, datetime.now(UTC))}, headers)


async def update_task(request: Request) -> Response:
    try:
        subject, version = _claims(request)
        task_id = _task_id(request)
        body = await _body(request)
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name == "title":
                changes[name] = str(value).strip()
            elif (name == "priority" and value in PRIORITIES) or name == "description":
                changes[name] = value
            elif name == "due_date":
                changes[name] = _instant(value)
            elif name == "tags":
                changes[name] = _tags(value)
            else:
                raise Refused(422, "VALIDATION_ERROR", "Invalid body")
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=3))
        sql = (
            f"UPDATE tasks SET {sets + ', ' if sets else ''}updated_at = now(), "
            "version = version + 1 "
            f"WHERE user_id = $1 AND id = $2 RETURNING {COLUMNS}"
        )
        pool = request.app.state.pool
        headers = await _limit_write(pool, subject)
        async with pool.acquire() as conn, conn.transaction():
            user_id = await _resolve(conn, subject, version, write=True)
            row = await conn.fetchrow(sql, user_id, task_id, *changes.values())
        if row is None:
            raise Refused(404, "NOT_FOUND", "Task not found")
    except Refused as exc:
        return _error(exc)
    except ValueError:
        return _error(Refused(422, "VALIDATION_ERROR", "Invalid body"))
    headers["ETag"] = _etag(row)
    return _json(200, {"data": _task(row, datetime.now(UTC))}, headers)


async def delete_task(request: Request) -> Response:
    try:
        subject, version = _claims(request)
        task_id = _task_id(request)
        pool = request.app.state.pool
        headers = await _limit_write(pool, subject)
        async with pool.acquire() as conn, conn.transaction():
            user_id = await _resolve(conn, subject, version, write=True)
            deleted = await conn.fetchval(DELETE_SQL, user_id, task_id)
        if deleted is None:
            raise Refused(404, "NOT_FOUND", "Task not found")
    except Refused as exc:
        return _error(exc)
    return Response(status_code=204, headers=headers)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    url = os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")
    app.state.pool = await asyncpg.create_pool(url, min_size=2, max_size=POOL_SIZE)
    try:
        yield
    finally:
        await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/api/tasks", list_tasks, methods=["GET"]),
        Route("/api/tasks", create_task, methods=["POST"]),
        Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
        Route("/api/tasks/{task_id}", update_task, methods=["PATCH"]),
        Route("/api/tasks/{task_id}", delete_task, methods=["DELETE"]),
        Route("/api/tasks/{task_id}/complete", toggle_task, methods=["PATCH"]),
    ],
    lifespan=lifespan,
)
