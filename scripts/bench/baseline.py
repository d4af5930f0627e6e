"""The raw baseline: the practical limit of Python on this machine for the same work, with
the same messages to the database.

A minimal ASGI app (Starlette + psycopg 3's async connection, no ORM, no validation library)
that does what the API does for the benchmarked routes, and nothing more:

- verifies the same HS256 token with the same library and checks (exp/sub required, iat not
  in the future, the built-in `task_api` + `ver` claims);
- sends the database exactly the API's messages (specs/statements.md, "The path of a
  request"; `backend.db.sender.Sender._send`): a read is ONE simple-query message, the
  `SET LOCAL`s + `SELECT task_api_enter(...)` (the account check, revocation included) + the
  route's statement, in autocommit. A write that nothing follows (create, PATCH of fields
  outside the schedule, delete) is ONE message too, with no `BEGIN` or `COMMIT`: PostgreSQL
  runs it as one implicit transaction. It holds the `SET LOCAL`s, the entry (the write count
  against the caller's limit and the caller's change lock; a write by a task's id takes that
  lock and the task's space's after the entry instead, migration 0041), the deadline check
  `task_api_in_time(...)` (in the server's clock: its offset is measured once per new
  connection, one round trip, as the API's engine does) and the write. A toggle is one too
  (the API's toggle of a task with no series to go on: the write, or the stored row when it
  would complete a series, in one statement, marked `task_api_written`). The message's last
  statement answers with the request's outcome as columns beside its rows: `WITH r AS
  (<statement>) SELECT o.*, r.* FROM task_api_outcome_read() AS o LEFT JOIN (SELECT true AS
  task_api_row, * FROM r) AS r ON true` (migrations 0027, 0035: hits, reset, refused,
  reason, replay, a route's own count; a lone row with `task_api_row` NULL when the
  statement returned none). The count becomes the `RateLimit` headers (429 over the limit:
  the entry refused the write, which wrote nothing, and its count committed), a refused
  account a 401; no notice carries anything and none is read. A failed write rolls back (if
  a transaction is still open) and counts again in one message; one given up on by the
  deadline check is a 503. An empty first page reads its feed position with a second
  message, as the API does.
  `tests/scripts/test_bench_round_trips.py` counts both servers' messages through the
  counting proxy and compares their text;
- runs the same SQL as the API (shared lists' too: every statement's access predicate, a task
  of a list shared with the caller reached by its membership; a listing's two arms, the
  caller's own tasks and its shared lists'; a write's space lock, migration 0033; the feed
  position of both; a task's reminders as the caller reads them, migration 0034) and returns
  the same JSON bodies, including every task's subtask counts (columns the database keeps,
  migration 0024),
  `is_overdue`, an encrypted `next_cursor` and, on a listing, the change-feed position read in
  the page's own statement, encrypted as `meta.changes_cursor` (`cursors.py`).

What it leaves out, because the benchmark never asks for it: schedules and recurrence (a PATCH
of `due_date` or a rule is refused: the API reads the stored task first, two round trips, and
a toggle of a recurring task would add its next occurrence), lists, subtrees and moves (the
`move` and `delete-list` scenarios run against the API alone: the baseline would have to copy
the placement statements of backend/services/statements/task_tree.py), If-Match and Idempotency-Key.

Why psycopg 3 and not asyncpg (the baseline's driver until issue 23): several statements
with parameters in one message need the simple-query protocol with the values bound on the
client, as psycopg2 does for the API; asyncpg has no pipeline and its simple-query path
returns no rows, so it cannot send the API's messages. psycopg 3's `AsyncClientCursor` sends
the message text the API sends. The pool is a few lines here: it sends nothing when a
connection is taken or given back (the API's pool sends nothing either; asyncpg's pool reset
each connection with a query on release, a round trip).

Configured by the API's own environment variables: DATABASE_URL, JWT_SECRET,
JWT_LEEWAY_SECONDS, DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_STATEMENT_TIMEOUT_MS,
DB_RESPONSE_TIMEOUT_MS, RATE_LIMIT_ENABLED, RATE_LIMIT_TASK_WRITES_PER_USER,
RATE_LIMIT_TASK_WINDOW_SECONDS. Served with `uvicorn scripts.bench.baseline:app --loop uvloop
--http httptools`.
"""

from __future__ import annotations

import asyncio
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

import psycopg
from jose import jwt
from jose.exceptions import JOSEError
from psycopg import AsyncClientCursor, AsyncConnection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from backend.models.task import due_value, is_overdue
from backend.models.task_event import CHANGE_TYPES, DAV_TYPES, FEED_TYPES
from backend.models.task_fields import FIELDS as TASK_FIELDS
from backend.models.task_table import Task
from backend.services.statements.access import Action, roles
from scripts.bench.cursors import encode_changes_cursor, encode_cursor, list_fingerprint

SECRET = os.environ["JWT_SECRET"]
LEEWAY = int(os.environ.get("JWT_LEEWAY_SECONDS", "30"))
RATE_LIMITED = os.environ.get("RATE_LIMIT_ENABLED", "true").lower() == "true"
WRITE_LIMIT = int(os.environ.get("RATE_LIMIT_TASK_WRITES_PER_USER", "120"))
WRITE_WINDOW = int(os.environ.get("RATE_LIMIT_TASK_WINDOW_SECONDS", "60"))
POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "20")) + int(os.environ.get("DB_MAX_OVERFLOW", "0"))
STATEMENT_TIMEOUT_MS = int(os.environ.get("DB_STATEMENT_TIMEOUT_MS", "5000"))
# `Settings.effective_db_response_timeout_ms`: the statement timeout plus 2 s unless set.
_RESPONSE = os.environ.get("DB_RESPONSE_TIMEOUT_MS")
RESPONSE_TIMEOUT_MS = (
    int(_RESPONSE) if _RESPONSE else (STATEMENT_TIMEOUT_MS + 2000 if STATEMENT_TIMEOUT_MS else 0)
)

# `backend.db.sender.transaction_locals`: every message's transaction starts with them.
LOCALS = "SET LOCAL TimeZone = 'UTC'; "
if STATEMENT_TIMEOUT_MS > 0:
    LOCALS += f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}; "
if RESPONSE_TIMEOUT_MS > 0:
    LOCALS += f"SET LOCAL idle_in_transaction_session_timeout = {RESPONSE_TIMEOUT_MS}; "
# The caller's entry (migrations 0014, 0027, `UnitOfWork._enter_as`): a built-in token's
# subject and version; a write, its count (key, window, limit, clean-up) and its change lock.
# What it learns (the count, a refusal) it keeps in transaction-local settings.
ENTRY_NAMES = ("e_subject", "e_version", "e_write", "e_key", "e_window", "e_limit", "e_clean")
ENTER = (
    "SELECT task_api_enter(%(e_subject)s, %(e_version)s, true, NULL, NULL, %(e_write)s, "
    "%(e_key)s, %(e_window)s, %(e_limit)s, %(e_clean)s); "
)
# A write by a task's id: both change locks, waiting for neither while it holds the other
# (`UnitOfWork`, migration 0041).
LOCK_TASK_SPACES = "SELECT task_api_lock_task_spaces(%(e_subject)s, %(e_task)s); "
# The message's last statement (`Sender._send`, `_WITH_OUTCOME`): the request's outcome read
# as columns (`task_api_outcome_read`, migrations 0027, 0035, 0110: hits, reset, refused, reason,
# replay, a route's own count, which none of the baseline's routes has, and a refused CalDAV
# write's reads), then
# `task_api_row` (NULL on the outcome's lone row when the statement returned none), then the
# statement's columns. `{ctes}`: CTEs whose last, `r`, is the statement.
WITH_OUTCOME = (
    "WITH {ctes} SELECT o.*, r.* FROM task_api_outcome_read() AS o "
    "LEFT JOIN (SELECT true AS task_api_row, * FROM r) AS r ON true"
)
OUTCOME_COLUMNS = 8
# A toggle (`scope._WRITTEN_OR_STORED`): the written row, or the stored one when the write
# matched none (both CTEs see the snapshot from before the write), marked with which it is.
WRITTEN_OR_STORED = (
    "w AS ({sql}), s AS ({stored}), r AS (SELECT w.*, true AS task_api_written FROM w "
    "UNION ALL SELECT s.*, false FROM s WHERE NOT EXISTS (SELECT FROM w))"
)
# The entry's refusal of the account (`outcome.refused`, its reason), as the API says it.
REFUSED_ACCOUNT = "TA401"
ACCOUNT_REASONS = {
    "gone": "The account for this token no longer exists",
    "revoked": "This token was revoked",
}
# After a failed write (`UnitOfWork._refused`): the rollback took the count with it.
RECOUNT = "SELECT key, hits, reset_seconds FROM task_api_hit(%s::text[], %s::integer[], false)"
# A write given up on before it could commit (`task_api_in_time`, migration 0016): a 503.
TOO_LATE = "TA504"
# The server's clock, read once per new connection (`engine._learn_server_clock`).
CLOCK_SQL = "SELECT extract(epoch FROM clock_timestamp())::float8"

# Every column of `tasks`, in table order, the subtask counts among them (kept by the database,
# migration 0024); a task is encoded from them by name, the fields of the declaration
# (`backend/models/task_fields.py`) in its order, as `TaskPublic` prints them.
COLUMN_NAMES = tuple(column.name for column in Task.__table__.columns)  # type: ignore[attr-defined]
COLUMNS = ", ".join(COLUMN_NAMES)
# A task's reminders as the caller reads them (migration 0034): the task's own for its owner, a
# member's own row (or none) for a member.
# Whether the caller is a member of any list, evaluated while the statement is planned
# (migration 0044, `scope.shared`): a member of nothing plans no member arm (issue 49).
MEMBER_PLANNED = "task_api_member_planned(%(user)s)"


def _if_member(value: str) -> str:
    """`backend.db.scope.if_member`: a member's-only value, NULL for a member of nothing."""
    return f"CASE WHEN {MEMBER_PLANNED} THEN {value} END"


# A member's own reminders on a task of another space (none: `[]`).
MEMBERS_REMINDERS = _if_member(
    "coalesce((SELECT task_member_reminders.reminders FROM task_member_reminders WHERE "
    "task_member_reminders.user_id = tasks.user_id AND task_member_reminders.task_id = tasks.id "
    "AND task_member_reminders.member_id = %(user)s), '[]'::jsonb)"
)
OWN_REMINDERS = (
    f"CASE WHEN tasks.user_id = %(user)s THEN tasks.reminders ELSE {MEMBERS_REMINDERS} END"
)
# `backend.services.tasks.task_statements.TASK_VIEW`: the columns, but a completed task has no open
# subtask (also in the RETURNING of the statement that completes it), and the reminders are the
# caller's.
VIEW = COLUMNS.replace(
    "open_subtask_count",
    "CASE WHEN tasks.completed = true THEN 0 ELSE tasks.open_subtask_count END "
    "AS open_subtask_count",
).replace(", reminders,", f", {OWN_REMINDERS} AS reminders,")
# A write's `RETURNING` in the caller's own space (`task_statements.written_view`): the
# reminders written, the task's own.
WRITTEN_VIEW = VIEW.replace(
    f"{OWN_REMINDERS} AS reminders",
    "CASE WHEN tasks.user_id = %(user)s THEN tasks.reminders ELSE tasks.reminders END AS reminders",
)
# Per field: its column's conversion to JSON (None: as the driver reads it).
TYPE_NAMES = {column.name: type(column.type).__name__ for column in Task.__table__.columns}  # type: ignore[attr-defined]
FIELD_NAMES = tuple(field.name for field in TASK_FIELDS)
# The access predicate of shared lists (`backend.db.scope.access`): the row is the caller's, or
# in a list the caller is a member of with a role enough for the action (the member arm alone,
# `shared`: the list ids and the owners' ids of the caller's memberships, each an array read
# once per statement). Roles and event types are the API's declarations, written into the SQL.
READ_ROLES = roles(Action.LIST_READ)
WRITE_ROLES = roles(Action.TASK_WRITE)


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _shared(table: str, member_roles: tuple[str, ...]) -> str:
    memberships = (
        "array((SELECT list_members.{column} FROM list_members WHERE list_members.member_id = "
        f"%(user)s AND list_members.role IN ({_sql_list(member_roles)})))"
    )
    return (
        f"{MEMBER_PLANNED} AND {table}.list_id = ANY ({memberships.format(column='list_id')}) "
        f"AND {table}.user_id = ANY ({memberships.format(column='user_id')})"
    )


def _access(member_roles: tuple[str, ...]) -> str:
    return f"(tasks.user_id = %(user)s OR {_shared('tasks', member_roles)})"


# A write's condition (`scope.space_locked`, migration 0033): the change lock of the row's space
# before the row's lock.
SPACE_LOCKED = "task_api_lock_space(tasks.user_id)"
# `history.changes.latest_position`: the caller's latest change, of its own space (task
# changes and the access it gained or lost) or of a list shared with it (its tasks' changes,
# the id as an expression so the memberships' index finds them), or how far pruning went if that
# is further, or 0. No horizon: a listing sends no hold ahead (issue 49).
# A task's child's event (`changes.CHILD_EVENT`): the only kind with both a task and a row,
# but DAV's own bookkeeping (`DAV_TYPES`, migration 0066).
_CHILD_EVENT = (
    "task_events.task_id IS NOT NULL AND task_events.object IS NOT NULL AND "
    f"(task_events.type NOT IN ({_sql_list(DAV_TYPES)}))"
)
FEED_POSITION = (
    "greatest((SELECT max(task_events.id) FROM task_events WHERE task_events.user_id = %(user)s "
    f"AND (task_events.type IN ({_sql_list(FEED_TYPES)}) OR {_CHILD_EVENT})), "
    + _if_member(
        "(SELECT max(task_events.id + 0) FROM task_events WHERE "
        f"{_shared('task_events', READ_ROLES)} AND "
        f"(task_events.type IN ({_sql_list(CHANGE_TYPES)}) OR {_CHILD_EVENT}))"
    )
    + ", "
    "(SELECT task_events_pruned.through_id FROM task_events_pruned "
    "WHERE task_events_pruned.user_id = %(user)s), 0)"
)
# A listing's two arms (`task_statements.listing`): the caller's own tasks, and the tasks of the
# lists shared with it (in other spaces), each its first page by its own index; then the page
# of both. `{where}`: the filters, in each arm.
_ARM = (
    "(SELECT {columns}, tasks.created_at AS sort_key FROM tasks WHERE {arm}{{where}} "
    "ORDER BY tasks.created_at DESC, tasks.id DESC LIMIT %(limit)s)"
)
_OWN_ARM_COLUMNS = ", ".join(f"tasks.{name} AS {name}" for name in COLUMN_NAMES).replace(
    "tasks.open_subtask_count AS open_subtask_count",
    "CASE WHEN tasks.completed = true THEN 0 ELSE tasks.open_subtask_count END "
    "AS open_subtask_count",
)
# Each arm knows whose rows it reads (issue 49): the own arm's reminders are the task's, the
# member arm's the member's own row (or none).
_MEMBER_ARM_COLUMNS = _OWN_ARM_COLUMNS.replace(
    "tasks.reminders AS reminders", f"{MEMBERS_REMINDERS} AS reminders"
)
# The member arm sits in a level of its own behind the gate (`scope.members_only`): for a
# member of nothing PostgreSQL excludes it before planning it.
_MEMBER_ARM = _ARM.format(
    columns=_MEMBER_ARM_COLUMNS,
    arm=f"{_shared('tasks', READ_ROLES)} AND tasks.user_id != %(user)s",
)
_ARMS = (
    _ARM.format(columns=_OWN_ARM_COLUMNS, arm="tasks.user_id = %(user)s")
    + " UNION ALL "
    + f"SELECT {', '.join((*COLUMN_NAMES, 'sort_key'))} FROM {_MEMBER_ARM} AS shared_page "
    + f"WHERE {MEMBER_PLANNED}"
)
_PAGE_COLUMNS = ", ".join(f"page.{name}" for name in (*COLUMN_NAMES, "sort_key"))
# A page: the task's columns and its sort key; a first page (`TaskService.list_page(
# feed_position=True)`) also the feed position, a column of the page's own statement, so both
# come from one snapshot. The two arms for every caller (issue 60): a member of nothing's
# member arm is planned as an empty result.
_PAGE = (
    f"SELECT {_PAGE_COLUMNS}<position> FROM ({_ARMS}) AS page "
    "ORDER BY page.sort_key DESC, page.id DESC LIMIT %(limit)s"
)
_POSITION = f", {FEED_POSITION} AS feed_position"
# The page, the first page; `{where}`: the filters.
PAGE_SQL = _PAGE.replace("<position>", "")
LIST_SQL = _PAGE.replace("<position>", _POSITION)
# An empty first page carries no position: it is read with the proof that the page is still
# empty, in one statement (`TaskService._with_position`), a message of its own.
EMPTY_LIST_SQL = f"SELECT {FEED_POSITION}, EXISTS ({PAGE_SQL})"
# Re-reads of an empty page that filled up meanwhile, before giving up (503), as the API.
EMPTY_PAGE_ATTEMPTS = 5
CHANGING = "The task list kept changing while it was read; retry"
GET_SQL = f"SELECT {VIEW} FROM tasks WHERE tasks.id = %(task_id)s AND {_access(READ_ROLES)}"
# The API's insert writes the schedule too: for a task without one, these values (a due
# day, `YYYY-MM-DD`, is its start on the task's clock, UTC here, and `all_day`); created
# completed, it was completed now().
INSERT_SQL = (
    "INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, "
    "due_date, all_day, tags, assignees, recurrence, time_zone, reminders, series_id, "
    "series_start, next_due_date) VALUES (%(user)s, %(title)s, %(description)s, "
    "%(completed)s, CASE WHEN %(completed)s THEN now() END, %(priority)s, "
    "%(due_date)s, %(all_day)s, %(tags)s, "
    "'{}'::TEXT[], NULL, 'UTC', '[]'::JSONB, NULL::UUID, NULL, NULL) "
    f"RETURNING {WRITTEN_VIEW}"
)
# Which task a write reaches: by id, an editor's or more, in its space's lock.
WRITABLE = f"{_access(WRITE_ROLES)} AND {SPACE_LOCKED}"
# A toggle writes unless it completes a series (`COMPLETES_SERIES` in the API), whose next
# occurrence the API adds in a second message; the baseline's tasks never recur.
TOGGLE_SQL = (
    "UPDATE tasks SET completed = NOT completed, completed_at = CASE WHEN NOT completed "
    "THEN coalesce(completed_at, now()) END, updated_at = now(), version = version + 1 "
    "WHERE tasks.id = %(task_id)s AND NOT (completed = false AND recurrence IS NOT NULL AND "
    "next_due_date IS NOT NULL AND series_start IS NOT NULL AND due_date IS NOT NULL) "
    f"AND {WRITABLE} RETURNING {VIEW}"
)
# The stored task, when the toggle wrote none (reached as the write would reach it).
STORED_SQL = f"SELECT {VIEW} FROM tasks WHERE tasks.id = %(task_id)s AND {WRITABLE}"
# A delete puts the task in the trash in its statement (services/history/trash.py `trashing`):
# the DELETE is a CTE ahead of the INSERT the message answers with.
DELETED_SQL = (
    f"gone AS (DELETE FROM tasks WHERE tasks.id = %(task_id)s AND {WRITABLE} "
    "RETURNING id, parent_id), "
)
_ROOTS = "(gone.parent_id IS NULL OR (gone.parent_id NOT IN (SELECT gone.id FROM gone)))"
DELETE_SQL = (
    "INSERT INTO task_trash (id, user_id, list_id, title, deleted_by, snapshot) "
    "SELECT tasks.id, tasks.user_id, tasks.list_id, tasks.title, %(user)s AS deleted_by, "
    "snapshots.snapshot FROM tasks JOIN gone ON gone.id = tasks.id "
    "JOIN task_trash_snapshots((SELECT array_agg(anon_1.id) AS array_agg_1 FROM "
    "(SELECT gone.id AS id FROM gone WHERE gone.parent_id IS NULL OR "
    "(gone.parent_id NOT IN (SELECT gone.id FROM gone))) AS anon_1)) AS snapshots "
    f"ON tasks.id = snapshots.root_id WHERE {_access(WRITE_ROLES)} AND {_ROOTS} "
    "RETURNING task_trash.id, task_trash.title"
)
# The fields a PATCH may send here, in the declaration's order (the API's SET order): none of
# the schedule (the API reads the stored task first, a second round trip) or the place.
PATCHED = ("title", "description", "priority", "tags")
PRIORITIES = ("none", "low", "medium", "high")
CLEAN_UP_ONE_IN = 500  # backend/services/rate_limits.py


def _clean_up() -> bool:
    """Whether this hit also deletes expired windows, as the API's does (one in 500)."""
    return random.randrange(CLEAN_UP_ONE_IN) == 0  # noqa: S311 (not security-relevant)


class Refused(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(text, status, headers=headers, media_type="application/json")


def _error(exc: Refused) -> Response:
    body = {"error": {"code": exc.code, "message": exc.message, "details": []}}
    headers = dict(exc.headers or {})
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return _json(exc.status, body, headers or None)


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


class Conn:
    """A pooled connection in autocommit (a message that writes is one implicit transaction),
    and its server's clock."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        # The server's clock minus ours, and how long after sending a message that commits
        # itself it may still commit (None: no deadline, as with no response timeout).
        self.offset = 0.0
        self.in_time: float | None = None

    async def learn_clock(self) -> None:
        """Once per new connection, as the API's engine does on connect: the offset of the
        server's clock (within half the round trip it took) and the deadline's allowance,
        the response timeout less a margin for the offset, the commit and the answer."""
        timeout = RESPONSE_TIMEOUT_MS / 1000
        before = time.time()
        cursor = await self.conn.execute(CLOCK_SQL)
        after = time.time()
        row = await cursor.fetchone()
        if row is None:  # pragma: no cover - a SELECT of one value
            raise RuntimeError("the server sent no clock")
        self.offset = float(row[0]) - (before + after) / 2
        self.in_time = timeout - min(1.0, timeout / 4) - (after - before)

    def deadline(self) -> str:
        """The check that keeps a message that commits itself from committing after the client
        gave up (`Sender._deadline`), in the server's clock; "" with no response timeout."""
        if self.in_time is None:
            return ""
        return f"SELECT task_api_in_time({time.time() + self.offset + self.in_time:.6f}); "

    async def last(self, sql: str, params: Any) -> list[Any]:
        """Send `sql` (several statements) as one message; the last statement's rows."""
        async with self.conn.cursor() as cur:
            await cur.execute(sql, params)
            while cur.nextset():
                pass
            return await cur.fetchall()


class Pool:
    """At most `size` connections, opened on demand; nothing is sent on checkout or return. A
    connection left inside a transaction (a failure that could not roll back) is closed."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self._slots: asyncio.LifoQueue[Conn | None] = asyncio.LifoQueue()
        for _ in range(size):
            self._slots.put_nowait(None)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        conn = await self._slots.get()
        try:
            if conn is None or conn.conn.closed:
                raw = await AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    prepare_threshold=None,
                    cursor_factory=AsyncClientCursor,
                    application_name="task-api-baseline",
                )
                conn = Conn(raw)
                if RESPONSE_TIMEOUT_MS > 0:
                    await conn.learn_clock()
            yield conn
        finally:
            if conn is not None and (
                conn.conn.closed
                or conn.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            ):
                await conn.conn.close()
                conn = None
            self._slots.put_nowait(conn)

    async def close(self) -> None:
        while not self._slots.empty():
            conn = self._slots.get_nowait()
            if conn is not None:
                await conn.conn.close()


def _write_key(subject: str) -> str:
    return "task-writes:" + hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


def _limit_headers(hits: int, reset: int) -> dict[str, str]:
    headers = {
        "RateLimit-Policy": f'"task-writes";q={WRITE_LIMIT};w={WRITE_WINDOW}',
        "RateLimit": f'"task-writes";r={max(0, WRITE_LIMIT - hits)};t={reset}',
    }
    if hits > WRITE_LIMIT:
        headers["Retry-After"] = str(reset)
    return headers


class Entry:
    """The caller's entry for one request, sent ahead of its first statement."""

    def __init__(self, subject: str, version: int, write: bool, task_id: int | None = None) -> None:
        self.subject = subject
        self.write = write
        self.counted = write and RATE_LIMITED and WRITE_LIMIT > 0
        count = (
            (_write_key(subject), WRITE_WINDOW, WRITE_LIMIT, _clean_up())
            if self.counted
            else (None, None, None, False)
        )
        # A write by a task's id takes its change locks after the entry, the caller's and the
        # task's space's together (migration 0041), so the entry takes none.
        self.params: tuple[Any, ...] = (subject, version, write and task_id is None, *count)
        self.locks = "" if task_id is None else LOCK_TASK_SPACES
        self.task_id = task_id
        self.headers: dict[str, str] = {}

    async def run(
        self,
        conn: Conn,
        statement: str,
        params: dict[str, Any],
        stored: str | None = None,
        ahead: str = "",
    ) -> list[tuple[Any, ...]]:
        """The request's first statement, in the message that carries the entry
        (`Sender._send`): the locals, the entry, and the statement wrapped to answer with the
        outcome. A read is this one message, in autocommit. A write (nothing follows the
        baseline's) commits in it, with no `BEGIN` or `COMMIT` (one implicit transaction),
        after the deadline check; its rows are the statement's, and with no row (a 404) the
        count alone has committed, as in the API. With `stored` (a toggle), the row that reads
        comes back when the write wrote none, marked by a last column (`task_api_written`).
        `ahead`: the statement's own CTEs (a delete's), listed before it at the top level.
        The outcome is settled before the rows are read (`UnitOfWork._settle`)."""
        # A read's statement planned apart from the wrapper, as the API's (`sender._compiled`).
        ctes = f"{ahead}r AS {'' if self.write else 'MATERIALIZED '}({statement})"
        if stored is not None:
            ctes = WRITTEN_OR_STORED.format(sql=statement, stored=stored)
        head = LOCALS + ENTER + self.locks + (conn.deadline() if self.write else "")
        values = {**dict(zip(ENTRY_NAMES, self.params, strict=True)), **params}
        if self.locks:
            values["e_task"] = self.task_id
        try:
            answer = await conn.last(head + WITH_OUTCOME.format(ctes=ctes), values)
        except psycopg.Error as error:
            if self.write:
                await self.refused(conn, error)
            raise
        # The outcome's lone row, or the statement's rows, each with the outcome before it.
        self.settle(answer[0][:OUTCOME_COLUMNS])
        return [row[OUTCOME_COLUMNS + 1 :] for row in answer if row[OUTCOME_COLUMNS]]

    def settle(self, outcome: tuple[Any, ...]) -> None:
        """What the entry said (`UnitOfWork._settle`): the count as headers (429 over the
        limit: the write was skipped, its count committed), a refused account (401, with a
        write's headers too)."""
        hits, reset, refused, reason, _replay, _route_hits, _route_reset, _read = outcome
        if self.counted and hits is not None and reset is not None:
            self.headers = _limit_headers(hits, reset)
            if hits > WRITE_LIMIT:
                raise Refused(429, "RATE_LIMITED", "Too many requests", self.headers)
        if refused == REFUSED_ACCOUNT:  # a write's count stands, and says so
            reason = ACCOUNT_REASONS.get(reason or "", "Invalid token")
            raise Refused(401, "UNAUTHORIZED", reason, self.headers or None)

    async def refused(self, conn: Conn, error: psycopg.Error) -> None:
        """After a failed write (`UnitOfWork._refused`): roll back if a transaction is still
        open (a failed message's implicit one is not) and count again, in one message; a
        write given up on before it committed is a 503."""
        in_transaction = conn.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        parts = ["ROLLBACK"] if in_transaction else []
        if self.counted:
            parts.append(RECOUNT)
        if parts:
            params = ([_write_key(self.subject)], [WRITE_WINDOW]) if self.counted else None
            rows = await conn.last("; ".join(parts), params)
            if self.counted and rows:
                _, hits, reset = rows[0]
                self.headers = _limit_headers(hits, reset)
        if "Retry-After" in self.headers:
            raise Refused(429, "RATE_LIMITED", "Too many requests", self.headers)
        if getattr(error, "sqlstate", None) == TOO_LATE:
            message = "The database did not answer in time"
            raise Refused(503, "SERVICE_UNAVAILABLE", message, self.headers or None)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


_CONVERT = {"DateTime": _iso, "UUID": _str}
_AT = {name: index for index, name in enumerate(COLUMN_NAMES)}
_ENCODE = tuple((name, _AT[name], _CONVERT.get(TYPE_NAMES.get(name, ""))) for name in FIELD_NAMES)
_ID, _VERSION, _COMPLETED, _DUE = _AT["id"], _AT["version"], _AT["completed"], _AT["due_date"]
_SUBTASKS, _OPEN = _AT["subtask_count"], _AT["open_subtask_count"]
_ALL_DAY, _ZONE = _AT["all_day"], _AT["time_zone"]
# A listing row's sort key follows the view, then the feed position.
SORT_KEY = len(COLUMN_NAMES)


def _task(row: tuple[Any, ...], now: datetime) -> dict[str, Any]:
    task = {name: row[i] if f is None else f(row[i]) for name, i, f in _ENCODE}
    completed, due = row[_COMPLETED], row[_DUE]
    if row[_ALL_DAY] and due is not None:
        # A task due on a day shows the day, overdue once it has ended (the API's `due_value`
        # and `is_overdue`).
        day = due_value(due, True, row[_ZONE])
        task["due_date"] = day.isoformat() if day is not None else None
        task["is_overdue"] = is_overdue(completed, day, now, row[_ZONE])
        return task
    task["is_overdue"] = not completed and due is not None and due < now
    return task


def _etag(row: tuple[Any, ...]) -> str:
    """`backend.api.conditional.task_etag`: the counts too, for a task with subtasks."""
    if not row[_SUBTASKS]:
        return f'"{row[_ID]}-{row[_VERSION]}"'
    return f'"{row[_ID]}-{row[_VERSION]}-{row[_SUBTASKS]}-{row[_OPEN]}"'


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def _page(
    conn: Conn, entry: Entry, where: str, values: dict[str, Any]
) -> tuple[list[Any], int]:
    """A first page and the feed position of its snapshot (`TaskService._with_position`): a
    column of the page's rows, or, for an empty page, read with the proof that it is still
    empty (a message of its own); a page that filled up in between is read again."""
    rows = await entry.run(conn, LIST_SQL.format(where=where), values)
    for _ in range(EMPTY_PAGE_ATTEMPTS):
        if rows:
            return rows, rows[0][SORT_KEY + 1]
        empty = await conn.last(LOCALS + EMPTY_LIST_SQL.format(where=where), values)
        position, appeared = empty[0]
        if not appeared:
            return rows, position
        rows = await conn.last(LOCALS + LIST_SQL.format(where=where), values)
    raise Refused(503, "SERVICE_UNAVAILABLE", CHANGING)


async def list_tasks(request: Request) -> Response:
    try:
        subject, version = _claims(request)
        params = request.query_params
        status, q = params.get("status", "all"), (params.get("q") or "").strip() or None
        limit = int(params.get("limit", "100"))
        where = ""
        values: dict[str, Any] = {"user": subject, "limit": limit + 1}
        if status in ("pending", "completed"):
            where += f" AND completed = {'true' if status == 'completed' else 'false'}"
        if q:
            where += " AND (title ILIKE %(q)s ESCAPE '\\' OR description ILIKE %(q)s ESCAPE '\\')"
            values["q"] = _like(q)
        entry = Entry(subject, version, write=False)
        async with request.app.state.pool.connection() as conn:
            rows, feed = await _page(conn, entry, where, values)
    except Refused as exc:
        return _error(exc)
    user_id = subject
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


def _task_id(request: Request) -> int:
    try:
        return int(request.path_params["task_id"])
    except ValueError:
        raise Refused(422, "VALIDATION_ERROR", "Invalid task id") from None


async def get_task(request: Request) -> Response:
    """GET one: a read, one message."""
    try:
        subject, version = _claims(request)
        values = {"task_id": _task_id(request), "user": subject}
        entry = Entry(subject, version, write=False)
        async with request.app.state.pool.connection() as conn:
            rows = await entry.run(conn, GET_SQL, values)
        if not rows:
            raise Refused(404, "NOT_FOUND", "Task not found")
    except Refused as exc:
        return _error(exc)
    return _answer(200, rows[0], entry.headers)


async def toggle_task(request: Request) -> Response:
    """PATCH /complete: one message that commits, as the API's toggle of a task that does not
    recur (a series' completion, which the baseline's tasks never are, is refused)."""
    try:
        subject, version = _claims(request)
        values = {"task_id": _task_id(request), "user": subject}
        entry = Entry(subject, version, write=True, task_id=values["task_id"])
        async with request.app.state.pool.connection() as conn:
            rows = await entry.run(conn, TOGGLE_SQL, values, stored=STORED_SQL)
        if not rows:
            raise Refused(404, "NOT_FOUND", "Task not found", entry.headers)
        if not rows[0][-1]:  # `task_api_written`: false, the stored row
            raise Refused(409, "CONFLICT", "The baseline completes no series", entry.headers)
    except Refused as exc:
        return _error(exc)
    return _answer(200, rows[0], entry.headers)


def _answer(
    status: int, row: tuple[Any, ...], headers: dict[str, str], extra: dict[str, str] | None = None
) -> Response:
    headers = {**headers, **(extra or {}), "ETag": _etag(row)}
    return _json(status, {"data": _task(row, datetime.now(UTC))}, headers)


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), dtime(0), tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("offset required")
    return parsed.astimezone(UTC)


def _is_day(value: Any) -> bool:
    """A due day (`YYYY-MM-DD`, as `_instant` reads one) rather than an instant: `all_day`."""
    return value is not None and len(value) == 10


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
        values = {
            "user": subject,
            "title": title,
            "description": body.get("description"),
            "completed": bool(body.get("completed", False)),
            "priority": priority,
            "due_date": _instant(body.get("due_date")),
            "all_day": _is_day(body.get("due_date")),
            "tags": _tags(body.get("tags", [])),
        }
        entry = Entry(subject, version, write=True)
        async with request.app.state.pool.connection() as conn:
            rows = await entry.run(conn, INSERT_SQL, values)
    except Refused as exc:
        return _error(exc)
    except ValueError:
        return _error(Refused(422, "VALIDATION_ERROR", "Invalid body"))
    row = rows[0]
    return _answer(201, row, entry.headers, {"Location": f"/api/tasks/{row[_ID]}"})


async def update_task(request: Request) -> Response:
    """PATCH of fields outside the schedule and the place: one message that commits."""
    try:
        subject, version = _claims(request)
        task_id = _task_id(request)
        body = await _body(request)
        if not body.keys() <= set(PATCHED):
            raise Refused(422, "VALIDATION_ERROR", "Invalid body")
        changes: dict[str, Any] = {}
        for name in PATCHED:
            if name not in body:
                continue
            value = body[name]
            if name == "title":
                changes[name] = str(value).strip()
            elif name == "tags":
                changes[name] = _tags(value)
            elif name == "priority" and value not in PRIORITIES:
                raise Refused(422, "VALIDATION_ERROR", "Invalid body")
            else:
                changes[name] = value
        sets = "".join(f"{name} = %({name})s, " for name in changes)
        sql = (
            f"UPDATE tasks SET {sets}updated_at = now(), version = version + 1 "
            f"WHERE tasks.id = %(task_id)s AND {WRITABLE} RETURNING {VIEW}"
        )
        entry = Entry(subject, version, write=True, task_id=task_id)
        values = {"task_id": task_id, "user": subject, **changes}
        async with request.app.state.pool.connection() as conn:
            rows = await entry.run(conn, sql, values)
        if not rows:
            raise Refused(404, "NOT_FOUND", "Task not found", entry.headers)
    except Refused as exc:
        return _error(exc)
    except (ValueError, TypeError):
        return _error(Refused(422, "VALIDATION_ERROR", "Invalid body"))
    return _answer(200, rows[0], entry.headers)


async def delete_task(request: Request) -> Response:
    try:
        subject, version = _claims(request)
        task_id = _task_id(request)
        entry = Entry(subject, version, write=True, task_id=task_id)
        async with request.app.state.pool.connection() as conn:
            rows = await entry.run(
                conn, DELETE_SQL, {"task_id": task_id, "user": subject}, ahead=DELETED_SQL
            )
        if not rows:
            raise Refused(404, "NOT_FOUND", "Task not found", entry.headers)
    except Refused as exc:
        return _error(exc)
    return Response(status_code=204, headers=entry.headers)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    url = os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")
    app.state.pool = Pool(url, POOL_SIZE)
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
