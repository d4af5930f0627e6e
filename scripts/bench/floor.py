"""The stack floor: the least our own stack can do for the same work as the API.

The raw baseline (`baseline.py`) shows what Python can do with an async driver; the API may not
use one. This app answers the fairer question: how fast can FastAPI + SQLAlchemy + psycopg2 +
python-jose (the stack the API is bound to) serve the benchmarked routes, doing per route
exactly what the API does and nothing more:

- sync `def` routes, run in FastAPI's thread pool (sized as the API sizes it), one hop per
  request: the route does all of its work in it;
- the same HS256 verification and checks as the API (`backend.auth.tokens.decode_token`), with
  the API's per-token cache of verified claims (`backend.auth.token_cache`: at most 30 s, never past
  `exp`, bounded LRU);
- a SQLAlchemy engine over psycopg2 with the API's pool settings and no ping on checkout (the
  API pings only a connection idle past DB_POOL_PING_IDLE_SECONDS: never under load), used
  through Core `text()` statements on a Connection (no ORM Session);
- every transaction starts with `SET LOCAL TimeZone = 'UTC'; SET LOCAL statement_timeout = ...`
  prefixed to its first statement, as `backend.db.engine._set_transaction_locals` does;
- in ONE transaction: the caller's `(id, token_version)` row (a revoked `ver` or a deleted
  account is a 401; a write's read also takes the caller's change lock, `task_events_lock`,
  as `UserService.resolve_id(writes=True)` does), then the baseline's SQL for the route (the
  API's compiled SQL; a listing's page carries the change-feed position as a column, and an
  empty page reads it with the proof that the page is still empty, as the API does);
- writes first count the request with the API's rate-limit statement in their own short
  transaction (and, like the API, prune expired windows on about one hit in 500), with the
  `RateLimit` / `RateLimit-Policy` headers;
- the baseline's response bytes: the same JSON (built as dicts, `json.dumps` with the
  baseline's separators), `is_overdue`, the encrypted `next_cursor` and `Link`, the listing's
  `meta.changes_cursor` (both signed by `cursors.py`, shared with the baseline), `ETag`,
  `Location` on create.

What it deliberately lacks, and the API has: the ORM Session and its unit of work, any
middleware (request id, CORS, body size, trailing slash, error envelope, access log, metrics),
FastAPI's dependency tree, and pydantic models for input and output.

Configured by the same environment variables as the baseline and the API: DATABASE_URL,
JWT_SECRET, JWT_LEEWAY_SECONDS, DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT_SECONDS,
DB_POOL_RECYCLE_SECONDS, DB_STATEMENT_TIMEOUT_MS, RATE_LIMIT_ENABLED,
RATE_LIMIT_TASK_WRITES_PER_USER, RATE_LIMIT_TASK_WINDOW_SECONDS.
Served with `uvicorn scripts.bench.floor:app --loop uvloop --http httptools --no-access-log`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Body, FastAPI, Request, Response
from jose import jwt
from jose.exceptions import JOSEError
from sqlalchemy import Connection, Engine, TextClause, create_engine, text

# The SQL and the pure helpers (LIKE escaping, input normalisation) are the baseline's, and
# the cursors are signed by the module the baseline uses, so both servers run the same
# statements and print the same bytes.
from scripts.bench.baseline import (
    ACCOUNT_FOR_WRITE_SQL,
    ACCOUNT_SQL,
    CHANGING,
    COLUMN_NAMES,
    COLUMNS,
    DELETE_SQL,
    EMPTY_LIST_SQL,
    EMPTY_PAGE_ATTEMPTS,
    FIELD_NAMES,
    GET_SQL,
    HIT_SQL,
    INSERT_SQL,
    LIST_SQL,
    PRIORITIES,
    SORT_KEY,
    TOGGLE_SQL,
    TYPE_NAMES,
    _clean_up,
    _instant,
    _like,
    _tags,
)
from scripts.bench.cursors import encode_changes_cursor, encode_cursor, list_fingerprint

SECRET = os.environ["JWT_SECRET"]
LEEWAY = int(os.environ.get("JWT_LEEWAY_SECONDS", "30"))
RATE_LIMITED = os.environ.get("RATE_LIMIT_ENABLED", "true").lower() == "true"
WRITE_LIMIT = int(os.environ.get("RATE_LIMIT_TASK_WRITES_PER_USER", "120"))
WRITE_WINDOW = int(os.environ.get("RATE_LIMIT_TASK_WINDOW_SECONDS", "60"))
POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "10"))
MAX_OVERFLOW = int(os.environ.get("DB_MAX_OVERFLOW", "10"))
POOL_TIMEOUT = float(os.environ.get("DB_POOL_TIMEOUT_SECONDS", "10"))
POOL_RECYCLE = int(os.environ.get("DB_POOL_RECYCLE_SECONDS", "240"))
STATEMENT_TIMEOUT_MS = int(os.environ.get("DB_STATEMENT_TIMEOUT_MS", "5000"))
MAX_TOKEN_LENGTH = 8 * 1024
TOKEN_TTL = 30.0  # backend/token_cache.py
TOKEN_CACHE_ENTRIES = 4096
TASK_FIELDS = ("title", "description", "priority", "due_date", "tags")


def _sa(sql: str) -> str:
    """asyncpg's `$1` placeholders as SQLAlchemy's `:p1` (a `$1::type` cast as CAST, since
    `text()` would take `::` for part of the name)."""
    sql = re.sub(r"\$(\d+)::([\w\[\]]+)", r"CAST(:p\1 AS \2)", sql)
    return re.sub(r"\$(\d+)", r":p\1", sql)


# What `backend.db.engine._set_transaction_locals` sends with the first statement of a transaction.
LOCALS = "SET LOCAL TimeZone = 'UTC'; " + (
    f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}; " if STATEMENT_TIMEOUT_MS > 0 else ""
)
# `UserService.resolve_id`: only the id and the token version, first in the transaction; a
# write also takes the caller's change lock (held until the transaction ends).
ACCOUNT = text(LOCALS + _sa(ACCOUNT_SQL))
ACCOUNT_FOR_WRITE = text(LOCALS + _sa(ACCOUNT_FOR_WRITE_SQL))
HIT = text(LOCALS + _sa(HIT_SQL))
GET = text(_sa(GET_SQL))
INSERT = text(_sa(INSERT_SQL))
TOGGLE = text(_sa(TOGGLE_SQL))
DELETE = text(_sa(DELETE_SQL))
# Per filter shape: the first page with its feed position, and the empty page's statement.
_LISTS: dict[tuple[str, bool], tuple[TextClause, TextClause]] = {}
_UPDATES: dict[tuple[str, ...], TextClause] = {}


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(data, status, headers=headers, media_type="application/json")


def _error(exc: Refused) -> Response:
    body = {"error": {"code": exc.code, "message": exc.message, "details": []}}
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _json(exc.status, body, headers)


# Verified claims by token: (valid until, subject, ver). Shared by the pool's threads; every
# step tolerates another thread having changed the dict in between.
_verified: OrderedDict[str, tuple[float, str, int]] = OrderedDict()


def _claims(request: Request) -> tuple[str, int]:
    """The subject and `ver` of a valid built-in token: from the cache, or verified."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "UNAUTHORIZED", "Missing bearer token")
    entry = _verified.get(token)
    if entry is not None:
        if time.time() < entry[0]:
            with suppress(KeyError):
                _verified.move_to_end(token)
            return entry[1], entry[2]
        _verified.pop(token, None)
    subject, version, expires = _verify(token)
    _verified[token] = (min(time.time() + TOKEN_TTL, expires), subject, version)
    while len(_verified) > TOKEN_CACHE_ENTRIES:
        try:
            _verified.popitem(last=False)
        except KeyError:
            break
    return subject, version


def _verify(token: str) -> tuple[str, int, float]:
    """`backend.auth.tokens.decode_token` for an HS256 built-in token, no issuer or audience."""
    invalid = Refused(401, "UNAUTHORIZED", "Invalid or expired token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise invalid
    options = {
        "require_exp": True,
        "require_sub": True,
        "require_iss": False,
        "require_aud": False,
        "verify_aud": False,
        "verify_nbf": True,
        "verify_iat": True,
        "leeway": LEEWAY,
    }
    try:
        if jwt.get_unverified_header(token).get("alg") != "HS256":
            raise invalid
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options=options)
    except (JOSEError, TypeError, ValueError, KeyError):
        raise invalid from None
    issued, subject, version = claims.get("iat"), claims.get("sub"), claims.get("ver")
    if issued is not None and (
        isinstance(issued, bool)
        or not isinstance(issued, int | float)
        or issued > time.time() + LEEWAY
    ):
        raise invalid
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise invalid
    try:
        if "\x00" in subject:
            raise ValueError
        subject.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise invalid from None
    if (
        claims.get("task_api") is not True
        or isinstance(version, bool)
        or not isinstance(version, int)
    ):
        # Only built-in tokens are benchmarked; the API would provision other subjects.
        raise invalid
    expires = claims["exp"]
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise invalid
    return subject, version, float(expires)


def _resolve(conn: Connection, subject: str, version: int, *, write: bool = False) -> str:
    """The caller's id (401 if deleted or revoked); a `write` also takes their change lock."""
    row = conn.execute(ACCOUNT_FOR_WRITE if write else ACCOUNT, {"p1": subject}).first()
    if row is None:
        raise Refused(401, "UNAUTHORIZED", "The account for this token no longer exists")
    if row[1] != version:
        raise Refused(401, "UNAUTHORIZED", "This token was revoked")
    return str(row[0])


def _limit_write(engine: Engine, subject: str) -> dict[str, str]:
    """`RateLimits.task_write`: one count in its own transaction, before the route's."""
    if not RATE_LIMITED or WRITE_LIMIT <= 0:
        return {}
    key = "task-writes:" + hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()
    with engine.begin() as conn:
        _, hits, reset = conn.execute(
            HIT, {"p1": [key], "p2": [WRITE_WINDOW], "p3": _clean_up()}
        ).one()
    headers = {
        "RateLimit-Policy": f'"task-writes";q={WRITE_LIMIT};w={WRITE_WINDOW}',
        "RateLimit": f'"task-writes";r={max(0, WRITE_LIMIT - hits)};t={reset}',
    }
    if hits > WRITE_LIMIT:
        headers["Retry-After"] = str(reset)
        raise Refused(429, "RATE_LIMITED", "Too many requests")
    return headers


def _iso(value: datetime | None) -> str | None:
    # Timestamps arrive in UTC (SET LOCAL TimeZone), as in the API.
    return None if value is None else value.isoformat().replace("+00:00", "Z")


# Rows are tuples of COLUMNS: each field is read at its column's index, found by name
# (psycopg2 parses JSONB and hands UUIDs over as text; only instants need converting).
_AT = {name: index for index, name in enumerate(COLUMN_NAMES)}
_ID, _VERSION, _COMPLETED, _DUE = _AT["id"], _AT["version"], _AT["completed"], _AT["due_date"]
_ENCODE = tuple(
    (name, _AT[name], _iso if TYPE_NAMES[name] == "DateTime" else None) for name in FIELD_NAMES
)


def _task(row: Sequence[Any], now: datetime) -> dict[str, Any]:
    task = {name: row[i] if f is None else f(row[i]) for name, i, f in _ENCODE}
    completed, due = row[_COMPLETED], row[_DUE]
    task["is_overdue"] = not completed and due is not None and due < now
    return task


def _etag(row: Sequence[Any]) -> str:
    return f'"{row[_ID]}-{row[_VERSION]}"'


def _list_statements(status: str, search: bool) -> tuple[TextClause, TextClause]:
    statements = _LISTS.get((status, search))
    if statements is None:
        where = ""
        if status in ("pending", "completed"):
            where += f" AND completed = {'true' if status == 'completed' else 'false'}"
        if search:
            where += " AND (title ILIKE $3 ESCAPE '\\' OR description ILIKE $4 ESCAPE '\\')"
        statements = _LISTS[(status, search)] = (
            text(_sa(LIST_SQL.format(where=where))),
            text(_sa(EMPTY_LIST_SQL.format(where=where))),
        )
    return statements


def _page(
    conn: Connection, statements: tuple[TextClause, TextClause], values: dict[str, Any]
) -> tuple[Sequence[Any], int]:
    """A first page and the feed position of its snapshot (`TaskService._with_position`): a
    column of the page's rows, or, for an empty page, read with the proof that it is still
    empty; a page that filled up in between is read again."""
    page, empty = statements
    rows = conn.execute(page, values).all()
    for _ in range(EMPTY_PAGE_ATTEMPTS):
        if rows:
            return rows, rows[0][SORT_KEY + 1]
        position, appeared = conn.execute(empty, values).one()
        if not appeared:
            return rows, position
        rows = conn.execute(page, values).all()
    raise Refused(503, "SERVICE_UNAVAILABLE", CHANGING)


def _update_statement(names: tuple[str, ...]) -> TextClause:
    statement = _UPDATES.get(names)
    if statement is None:
        # The baseline's UPDATE for these fields, with named parameters.
        sets = "".join(f"{name} = :{name}, " for name in names)
        statement = _UPDATES[names] = text(
            f"UPDATE tasks SET {sets}updated_at = now(), version = version + 1 "
            f"WHERE user_id = :p1 AND id = :p2 RETURNING {COLUMNS}"
        )
    return statement


def _task_id(request: Request) -> int:
    try:
        return int(request.path_params["task_id"])
    except ValueError:
        raise Refused(422, "VALIDATION_ERROR", "Invalid task id") from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused(422, "VALIDATION_ERROR", "Invalid body")
    return body


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ["DATABASE_URL"]
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg2://" + url[len(prefix) :]
    app.state.engine = create_engine(
        url,
        pool_recycle=POOL_RECYCLE,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT,
        connect_args={"application_name": "task-api-floor"},
    )
    # The API's thread pool: well more threads than connections (backend/main.py).
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(40, 4 * (POOL_SIZE + MAX_OVERFLOW))
    try:
        yield
    finally:
        app.state.engine.dispose()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
JsonBody = Annotated[Any, Body()]


@app.get("/api/tasks")
def list_tasks(request: Request) -> Response:
    try:
        subject, version = _claims(request)
        params = request.query_params
        status, q = params.get("status", "all"), (params.get("q") or "").strip() or None
        limit = int(params.get("limit", "100"))
        values: dict[str, Any] = {"p2": limit + 1}
        if q:
            values["p3"] = values["p4"] = _like(q)
        statements = _list_statements(status, q is not None)
        with request.app.state.engine.begin() as conn:
            user_id = _resolve(conn, subject, version)
            values["p1"] = user_id
            rows, feed = _page(conn, statements, values)
    except Refused as exc:
        return _error(exc)
    now = datetime.now(UTC)
    page = rows[:limit]
    next_cursor, headers = None, {}
    if len(rows) > limit:
        fingerprint = list_fingerprint(status, q)
        last = page[-1]
        next_cursor = encode_cursor(SECRET, user_id, fingerprint, last[SORT_KEY], last[_ID], feed)
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


def _one(request: Request, statement: TextClause, write: bool) -> Response:
    try:
        subject, version = _claims(request)
        task_id = _task_id(request)
        engine = request.app.state.engine
        headers = _limit_write(engine, subject) if write else {}
        with engine.begin() as conn:
            user_id = _resolve(conn, subject, version, write=write)
            row = conn.execute(statement, {"p1": user_id, "p2": task_id}).first()
        if row is None:
            raise Refused(404, "NOT_FOUND", "Task not found")
    except Refused as exc:
        return _error(exc)
    headers["ETag"] = _etag(row)
    return _json(200, {"data": _task(row, datetime.now(UTC))}, headers)


@app.get("/api/tasks/{task_id}")
def get_task(request: Request) -> Response:
    return _one(request, GET, write=False)


@app.patch("/api/tasks/{task_id}/complete")
def toggle_task(request: Request) -> Response:
    return _one(request, TOGGLE, write=True)


@app.post("/api/tasks")
def create_task(request: Request, body: JsonBody) -> Response:
    try:
        subject, version = _claims(request)
        engine = request.app.state.engine
        # Counted before the body is judged, as the API does (an invalid write still counts).
        headers = _limit_write(engine, subject)
        data = _object(body)
        title = str(data.get("title", "")).strip()
        priority = data.get("priority", "none")
        if not 1 <= len(title) <= 200 or priority not in PRIORITIES:
            raise Refused(422, "VALIDATION_ERROR", "Invalid body")
        values = {
            "p2": title,
            "p3": data.get("description"),
            "p4": bool(data.get("completed", False)),
            "p5": priority,
            "p6": _instant(data.get("due_date")),
            "p7": _tags(data.get("tags", [])),
        }
        with engine.begin() as conn:
            values["p1"] = _resolve(conn, subject, version, write=True)
            row = conn.execute(INSERT, values).one()
    except Refused as exc:
        return _error(exc)
    except ValueError:
        return _error(Refused(422, "VALIDATION_ERROR", "Invalid body"))
    headers["Location"] = f"/api/tasks/{row[_ID]}"
    headers["ETag"] = _etag(row)
    return _json(201, {"data": _task(row, datetime.now(UTC))}, headers)


@app.patch("/api/tasks/{task_id}")
def update_task(request: Request, body: JsonBody) -> Response:
    try:
        subject, version = _claims(request)
        task_id = _task_id(request)
        engine = request.app.state.engine
        headers = _limit_write(engine, subject)
        changes: dict[str, Any] = {}
        for name, value in _object(body).items():
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
        names = tuple(name for name in TASK_FIELDS if name in changes)
        statement = _update_statement(names)
        with engine.begin() as conn:
            user_id = _resolve(conn, subject, version, write=True)
            row = conn.execute(statement, {"p1": user_id, "p2": task_id, **changes}).first()
        if row is None:
            raise Refused(404, "NOT_FOUND", "Task not found")
    except Refused as exc:
        return _error(exc)
    except ValueError:
        return _error(Refused(422, "VALIDATION_ERROR", "Invalid body"))
    headers["ETag"] = _etag(row)
    return _json(200, {"data": _task(row, datetime.now(UTC))}, headers)


@app.delete("/api/tasks/{task_id}")
def delete_task(request: Request) -> Response:
    try:
        subject, version = _claims(request)
        task_id = _task_id(request)
        engine = request.app.state.engine
        headers = _limit_write(engine, subject)
        with engine.begin() as conn:
            user_id = _resolve(conn, subject, version, write=True)
            deleted = conn.execute(DELETE, {"p1": user_id, "p2": task_id}).first()
        if deleted is None:
            raise Refused(404, "NOT_FOUND", "Task not found")
    except Refused as exc:
        return _error(exc)
    return Response(status_code=204, headers=headers)
