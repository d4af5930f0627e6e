"""The engine (one per process) and the request's transaction."""

from __future__ import annotations

import logging
import os
import re
import select
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import psycopg2
from sqlalchemy import BindParameter, Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

from backend.config import Settings
from backend.db.deadline import (
    SLOW_CONNECT_FAILURE_SECONDS,
    Breaker,
    breaker_pool_class,
    guarded_connection_class,
)
from backend.db.embedded import start_embedded_postgres
from backend.db.notices import NONE, NoticeError, Notices, read_notices

logger = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Accept URLs as Neon's console and Heroku-style hosts print them; pin the psycopg2 driver.

    Query parameters (`sslmode`, `channel_binding`, `host` for a socket) pass through to libpq.
    """
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def libpq_url(url: str) -> str:
    """The same URL without the SQLAlchemy driver suffix (for yoyo and psycopg2)."""
    return "postgresql://" + normalize_url(url).split("://", 1)[1]


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    # Set by `serve` for its workers, so that they share the server the parent started.
    inherited = os.environ.get("TASK_API_EMBEDDED_URL")
    if inherited:
        return inherited
    return start_embedded_postgres(settings.embedded_pg_dir)


def create_db_engine(url: str, settings: Settings) -> Engine:
    """One engine per process. Settings chosen for Neon's pooler as well as a local server:

    - a checkout costs no round trip: a pooled connection is checked for a closed socket, and
      pinged only when idle longer than `DB_POOL_PING_IDLE_SECONDS` (`_check_on_checkout`);
    - recycle below Neon's 5-minute idle suspend;
    - no startup `options` and no session `SET` (PgBouncer transaction mode rejects or loses them):
      the time zone (UTC) and the statement timeout are set per transaction instead (`SET LOCAL`);
    - bounded connect and pool-wait times, so an unreachable database fails fast (503); the
      connect timeout is capped by the response timeout;
    - a bounded wait for every answer (`DB_RESPONSE_TIMEOUT_MS`), and a breaker that answers
      new requests 503 at once while the database is not answering (`backend/db/deadline.py`).
    """
    parsed = make_url(normalize_url(url))
    response_timeout_ms = settings.effective_db_response_timeout_ms
    breaker = Breaker()
    connect_args: dict[str, object] = {
        # At most the response timeout: the breaker's probe and any new connection to a stuck
        # server give up as soon as a round trip would.
        "connect_timeout": settings.effective_db_connect_timeout_seconds,
        "application_name": "task-api",
        # TCP keepalives notice a dead peer; libpq ignores them on a Unix socket.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "connection_factory": guarded_connection_class(response_timeout_ms / 1000, breaker),
    }
    engine = create_engine(
        parsed,
        poolclass=breaker_pool_class(breaker),
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args=connect_args,
    )

    @event.listens_for(engine, "do_connect")
    def _connect(
        dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: dict[str, Any]
    ) -> Any:
        breaker.check_connect()
        started = time.monotonic()
        try:
            return psycopg2.connect(*cargs, **cparams)
        except psycopg2.OperationalError as exc:
            if time.monotonic() - started >= SLOW_CONNECT_FAILURE_SECONDS:
                # Timed out: new checkouts stop waiting for a server that does not answer.
                breaker.trip(f"connection attempt failed ({' '.join(str(exc).split())[:120]})")
            raise

    _check_on_checkout(engine, settings.db_pool_ping_idle_seconds)
    if response_timeout_ms > 0:
        _learn_server_clock(engine, response_timeout_ms / 1000)
    _set_transaction_locals(engine, settings.db_statement_timeout_ms, response_timeout_ms)
    return engine


def _check_on_checkout(engine: Engine, ping_idle_seconds: float) -> None:
    """Never hand out a dead pooled connection, without a round trip on a busy pool.

    A server that ends a connection (a restart, `pg_terminate_backend`, a pooler recycling
    it, Neon suspending its compute) sends an error and closes the socket, so the socket of an
    idle connection turns readable: checked with a zero-timeout poll, a system call and no
    round trip. A healthy idle connection has nothing to read; if something is there, a ping
    tells an asynchronous notice from a dead peer. What a closed socket cannot show (a path
    that silently dropped the connection: a NAT or firewall timeout) only happens after long
    idling, so a connection idle longer than `ping_idle_seconds` is pinged as `pool_pre_ping`
    would (0: every checkout). A connection the server drops between this check and the first
    statement still fails that request (503): as it could between a ping and the statement.

    A dead one invalidates the pool, as a failed pre-ping does (after a restart, every pooled
    connection is dead), and the pool connects afresh.
    """

    @event.listens_for(engine, "connect")
    def _fresh(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info.pop(_CONNECTION_IDLE_SINCE, None)
        record.info.pop(_REQUEST, None)

    @event.listens_for(engine, "checkin")
    def _idle(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Every way back to the pool drops the request's state whole.
        record.info.pop(_REQUEST, None)
        record.info[_CONNECTION_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        record.info[_REQUEST] = RequestState()
        idle_since = record.info.pop(_CONNECTION_IDLE_SINCE, None)
        if idle_since is None:  # just connected
            return
        idle_too_long = time.monotonic() - idle_since >= ping_idle_seconds
        if not (dbapi_connection.closed or idle_too_long or _readable(dbapi_connection)):
            return
        try:
            if dbapi_connection.closed:
                raise psycopg2.InterfaceError("connection already closed")
            engine.dialect.do_ping(dbapi_connection)
        except psycopg2.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):  # type: ignore[arg-type]
                raise exc.InvalidatePoolError(str(error)) from error
            raise


def _learn_server_clock(engine: Engine, response_timeout: float) -> None:
    """Give every new connection its server's clock (the offset from ours, within half the
    round trip it took to read it) and the deadline a message that commits by itself gets
    (`finish`): the response timeout, less a margin for the offset, the COMMIT and the answer's
    way back. One round trip per new connection, none per request."""

    @event.listens_for(engine, "connect")
    def _clock(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # A failure here is the connection's (raised as is: a 503); it is then discarded.
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            before = time.time()
            cursor.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
            after = time.time()
            (server,) = cursor.fetchone()
        dbapi_connection.autocommit = False
        record.info[_CONNECTION_CLOCK_OFFSET] = float(server) - (before + after) / 2
        record.info[_CONNECTION_IN_TIME] = (
            response_timeout - min(1.0, response_timeout / 4) - (after - before)
        )


def _readable(dbapi_connection: Any) -> bool:
    """Whether the server sent anything (or closed) since the connection went idle."""
    try:
        fd = dbapi_connection.fileno()
    except psycopg2.Error:
        return True
    poller = select.poll()  # not select.select: file descriptors above 1023
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


# The connection's own facts, kept from request to request: when it went back to the pool,
# its server's clock offset from ours, and how long a message that commits may take.
_CONNECTION_IDLE_SINCE = "task_api_connection_idle_since"
_CONNECTION_CLOCK_OFFSET = "task_api_connection_clock_offset"
_CONNECTION_IN_TIME = "task_api_connection_commit_in_time"
# All a pooled connection keeps between requests.
CONNECTION_KEYS = frozenset((_CONNECTION_IDLE_SINCE, _CONNECTION_CLOCK_OFFSET, _CONNECTION_IN_TIME))


class Stage(Enum):
    """Where a request's transaction is."""

    # psycopg2's own transactions (sign-up, the worker): the `SET LOCAL`s go with each one's
    # first statement.
    TRANSACTION = "transaction"
    # Autocommit, every statement its own transaction, each with the `SET LOCAL`s.
    READ = "read"
    # A transaction we began (`BEGIN` in the first message) and will end: a COMMIT of ours
    # is coming, with what was deferred to it.
    WRITE = "write"
    # A statement ended the write (`finish`): only reads may follow, each as READ's.
    COMMITTED = "committed"


@dataclass
class RequestState:
    """One request's state on its connection, under one `conn.info` key (`_REQUEST`): made
    fresh at checkout, dropped whole at checkin and on a new connection, so nothing of a
    request reaches the next one."""

    stage: Stage = Stage.TRANSACTION
    # What goes in the same message as the next statement, ahead of it (the caller's entry,
    # a key's check), and what to call with that message's notices once it is answered.
    ahead: tuple[str, dict[str, Any]] | None = None
    then: Callable[[Notices], None] | None = None
    # A transaction began and its first statement has not carried the `SET LOCAL`s yet.
    locals_pending: bool = False
    # Statements to run in the COMMIT's message (WRITE only), rendered.
    at_commit: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # The route writes more after its write: no statement may end the transaction.
    held: bool = False
    # `finish`'s message is on its way: answered means committed.
    committing: bool = False
    # What the last message answered sent back as notices of ours.
    notices: Notices = NONE
    # How a further transaction of this request enters (`begin_again`), and whether one did:
    # then an earlier one committed the request's count.
    again: tuple[str, dict[str, Any], Callable[[Notices], None]] | None = None
    resumed: bool = False

    @property
    def locals_on_every_statement(self) -> bool:
        return self.stage in (Stage.READ, Stage.COMMITTED)


def request_state(conn: Connection) -> RequestState:
    """The request's state on `conn` (a fresh one if none: a connection checked out before
    this engine's listeners, or whose state was dropped)."""
    state: RequestState | None = conn.info.get(_REQUEST)
    if state is None:
        state = conn.info[_REQUEST] = RequestState()
    return state


_REQUEST = "task_api_request"


def transaction_locals(timeout_ms: int, idle_timeout_ms: int = 0) -> str:
    """The `SET LOCAL`s every transaction starts with (`_set_transaction_locals`)."""
    # Notices carry answers (a write's count, a last statement's rows): never filtered out.
    prefix = "SET LOCAL TimeZone = 'UTC'; SET LOCAL client_min_messages = notice; "
    if timeout_ms > 0:
        prefix += f"SET LOCAL statement_timeout = {int(timeout_ms)}; "
    if idle_timeout_ms > 0:
        prefix += f"SET LOCAL idle_in_transaction_session_timeout = {int(idle_timeout_ms)}; "
    return prefix


def send_with_next_statement(
    conn: Connection,
    sql: str,
    values: dict[str, Any],
    then: Callable[[Notices], None] | None = None,
) -> None:
    """Send `sql` (pyformat placeholders for `values`) in the same message as the next
    statement run on `conn`, ahead of it: PostgreSQL runs both, psycopg2 returns the last one's
    result, and it costs no round trip of its own. Replaces the transaction's `SET LOCAL`s,
    so `sql` carries them itself when it needs them. `then(notices)` runs once the message
    has been answered, with what `sql` sent back as notices (it may raise: a refusal)."""
    state = request_state(conn)
    state.ahead = (sql, values)
    state.locals_pending = False
    if then is not None:
        state.then = then


# A pyformat placeholder in compiled SQL (a literal `%` is compiled as `%%`).
_PLACEHOLDER = re.compile(r"(?<!%)%\((\w+)\)s")


def render(
    conn: Connection, statement: Any, values: Mapping[str, Any], prefix: str
) -> tuple[str, dict[str, Any]]:
    """`statement` compiled as `execute` would send it (pyformat SQL and driver-ready values,
    bind processors applied), its parameters renamed `<prefix><name>`, so that several
    statements can share one message and one parameter dict. Compiled once per statement
    object and set of value names (`_compiled`), then dict lookups: the hot statements are
    built once (module constants, or cached per shape: `task_statements.updating`)."""
    rendered = _compiled(conn.dialect, statement, tuple(sorted(values)))
    params: dict[str, Any] = {}
    # A value given by the bind's key or its compiled name, else the one the bind holds
    # (`Compiled.construct_params`' rule).
    for name, bind, process in rendered.binds:
        if bind.key in values:
            value = values[bind.key]
        elif name in values:
            value = values[name]
        elif bind.required:
            raise ValueError(f"a value is required for bind parameter {bind.key!r}")
        else:
            value = bind.effective_value
        params[prefix + name] = process(value) if process is not None else value
    # `pieces` alternates SQL text and parameter names (the split's captured group).
    sql = "".join(
        piece if index % 2 == 0 else f"%({prefix}{piece})s"
        for index, piece in enumerate(rendered.pieces)
    )
    return sql, params


@dataclass(frozen=True)
class _Rendered:
    """A statement compiled for `render`: its SQL split at its parameters, and each
    parameter's name, bind and bind processor (what `execute` applies to a value before
    psycopg2 sees it). Nothing here refers to the statement (the cache holds it weakly)."""

    pieces: list[str]
    binds: tuple[tuple[str, BindParameter[Any], Callable[[Any], Any] | None], ...]


def _compiled(dialect: Dialect, statement: Any, column_keys: tuple[str, ...]) -> _Rendered:
    # The value names are part of the key: an INSERT or UPDATE sets a column for each name
    # that is one (as `execute` compiles it).
    by_keys = _RENDERED.get(statement)
    if by_keys is None:
        by_keys = _RENDERED[statement] = {}
    rendered = by_keys.get(column_keys)
    if rendered is not None:
        return rendered
    compiled: SQLCompiler = statement.compile(dialect=dialect, column_keys=list(column_keys))
    sql = str(compiled)
    if compiled.positiontup or compiled.escaped_bind_names or "POSTCOMPILE" in sql:
        raise ValueError("only plain named parameters can be rendered (no IN lists)")
    binds = tuple(
        (name, bind, bind.type.dialect_impl(dialect).bind_processor(dialect))
        for bind, name in compiled.bind_names.items()
    )
    rendered = by_keys[column_keys] = _Rendered(_PLACEHOLDER.split(sql), binds)
    return rendered


# `render`'s compiled statements, by statement object (weakly: a statement built for one
# request goes with it) and value names.
_RENDERED: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], _Rendered]] = (
    weakref.WeakKeyDictionary()
)


def inline(conn: Connection, sql: str, params: Mapping[str, Any]) -> str:
    """`sql` (pyformat, `params`) as one statement's text with its values quoted in, as
    psycopg2 quotes them into every message: for SQL that a statement hands to the server as a
    value (`task_api_steps`)."""
    with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        text_: bytes = cursor.mogrify(sql, dict(params))
    return text_.decode()


def send_ahead(conn: Connection, statement: Any, values: Mapping[str, Any]) -> None:
    """Send `statement` (whose rows nobody reads: it matters by its effect or its error) in
    the same message as the next statement run on `conn`, ahead of it and after anything
    queued before (the caller's entry). Only inside a transaction the caller began: in
    autocommit a queued statement would replace the per-statement `SET LOCAL`s."""
    state = request_state(conn)
    if state.locals_on_every_statement:
        raise RuntimeError("send_ahead needs a transaction (a write's unit of work)")
    sql, params = state.ahead or ("", {})
    extra, extra_params = render(conn, statement, values, f"a{len(params)}_")
    state.ahead = (f"{sql}{extra}; ", {**params, **extra_params})


def begin_deferring(conn: Connection) -> None:
    """From now on, `defer_to_commit` queues statements on `conn` for its COMMIT's message
    (the unit of work sends that COMMIT itself, `deferred_message`): the request writes."""
    state = request_state(conn)
    state.stage = Stage.WRITE
    state.at_commit = []


def defer_to_commit(conn: Connection, statement: Any, values: Mapping[str, Any]) -> bool:
    """Queue `statement` (whose result nobody reads) to run in the same message as the
    transaction's COMMIT, ahead of it: it costs no round trip of its own, and if it fails the
    COMMIT never runs. False (nothing queued) when `conn` has no such COMMIT coming."""
    state = request_state(conn)
    if state.stage is not Stage.WRITE:
        return False
    state.at_commit.append(render(conn, statement, values, f"c{len(state.at_commit)}_"))
    return True


def hold_commit(conn: Connection) -> None:
    """The route adds statements after its write (an Idempotency-Key's record, built from the
    response): no statement may `finish` the transaction."""
    request_state(conn).held = True


def can_finish(conn: Connection) -> bool:
    """Whether a statement may end the transaction (`finish`): a COMMIT of ours is coming and
    nothing is held for after the route's write (`hold_commit`)."""
    state = request_state(conn)
    return state.stage is Stage.WRITE and not state.held


def finish(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run `sql` (pyformat, `params`), whose last statement hands its rows to
    `task_api_return` (migration 0016), as the transaction's end: one message with what was
    deferred to the COMMIT and the COMMIT. The rows come back in a notice (psycopg2 answers
    with the COMMIT's empty result). Only when `can_finish`. Afterwards the transaction is
    over: further statements run in autocommit, each with the `SET LOCAL`s."""
    if not can_finish(conn):
        raise RuntimeError("this transaction cannot be finished by a statement")
    deferred, deferred_params = deferred_message(conn)
    offset = conn.info.get(_CONNECTION_CLOCK_OFFSET)
    in_time = conn.info.get(_CONNECTION_IN_TIME)
    deadline = ""
    if offset is not None and in_time is not None:
        # Not committed if the server runs this after we gave up on it (R7).
        deadline = f"SELECT task_api_in_time({time.time() + offset + in_time:.6f}); "
    # Answered means committed: `_answered` marks it before anything reads the notices (a
    # refusal raised then must not roll back or count again what is already committed).
    state = request_state(conn)
    state.committing = True
    try:
        conn.exec_driver_sql(f"{sql}; {deferred}{deadline}COMMIT", {**params, **deferred_params})
    finally:
        state.committing = False
    rows = state.notices.rows
    if rows is None:
        raise NoticeError("task_api_return sent no rows")  # its own notice: never missing
    return rows


def enter_again_with(
    conn: Connection, sql: str, values: dict[str, Any], then: Callable[[Notices], None]
) -> None:
    """How a further transaction of this request enters (`begin_again`): `sql` (with `BEGIN`
    and the `SET LOCAL`s) checks the account and takes the change lock, counting nothing."""
    request_state(conn).again = (sql, values, then)


def can_begin_again(conn: Connection) -> bool:
    """Whether a statement committed the request's transaction (`finish`) and the request
    may start another one (`begin_again`)."""
    state = request_state(conn)
    return state.stage is Stage.COMMITTED and state.again is not None


def begin_again(conn: Connection) -> None:
    """Start another transaction of this request, after `finish` committed the first: its
    `BEGIN` and entry go with the next statement (no round trip of its own), and it ends as
    the first did, by a statement that `finish`es it or the unit of work's COMMIT. What the
    first committed (the write's count) stands whatever this one does."""
    state = request_state(conn)
    if state.again is None:
        raise RuntimeError("this request cannot begin another transaction")
    sql, values, then = state.again
    send_with_next_statement(conn, sql, values, then)
    state.stage = Stage.WRITE
    state.at_commit = []
    state.resumed = True


def committed_before(conn: Connection) -> bool:
    """Whether an earlier transaction of this request committed (`begin_again`): its count
    stands, so a failure now is not counted again."""
    return request_state(conn).resumed


def notices(conn: Connection) -> Notices:
    """What the last message answered on `conn` sent back as notices of ours."""
    return request_state(conn).notices


def finished(conn: Connection) -> bool:
    """Whether a statement `finish`ed the transaction (it is committed)."""
    return request_state(conn).stage is Stage.COMMITTED


def deferred_message(conn: Connection) -> tuple[str, dict[str, Any]]:
    """The statements `defer_to_commit` queued, as one message's text and parameters (empty
    when none), taken off the queue."""
    state = request_state(conn)
    queued, state.at_commit = state.at_commit, []
    params: dict[str, Any] = {}
    for _, values in queued:
        params.update(values)
    return "".join(f"{sql}; " for sql, _ in queued), params


def take_unsent(conn: Connection) -> tuple[str, dict[str, Any]] | None:
    """What `send_with_next_statement` queued and no statement has carried yet."""
    state = request_state(conn)
    unsent, state.ahead, state.then = state.ahead, None, None
    return unsent


def autocommit(conn: Connection, *, every_statement_locals: bool) -> None:
    """Put `conn` in autocommit: psycopg2 sends no `BEGIN` of its own, so a statement is a
    transaction of its own (and each one carries the `SET LOCAL`s with
    `every_statement_locals`), or the caller sends `BEGIN` itself, in a message with other
    statements. psycopg2's flag, not SQLAlchemy's AUTOCOMMIT isolation level, whose reset
    costs a round trip and sets a session variable (wrong behind a transaction pooler).
    `end_autocommit` undoes it before the connection goes back to the pool."""
    conn.connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
    if every_statement_locals:
        request_state(conn).stage = Stage.READ


def end_autocommit(conn: Connection) -> None:
    """Back to psycopg2's transactions, for the pool's next borrower. A connection still
    inside a transaction it was sent (a failure between `BEGIN` and its end that could not
    roll back) is discarded instead: nothing of this request may reach the next one."""
    if conn.invalidated:
        return  # discarded already
    dbapi = conn.connection.dbapi_connection
    if dbapi is None or dbapi.closed:
        return
    if dbapi.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        conn.invalidate()
        return
    dbapi.autocommit = False


def _is_read(statement: str, context: Any) -> bool:
    """Whether a statement only reads: a SELECT construct (its CTEs included), or SQL text
    that starts with SELECT."""
    element = getattr(getattr(context, "compiled", None), "statement", None)
    if element is not None and getattr(element, "is_select", False):
        return True
    return bool(_READ.match(statement))


def _set_transaction_locals(engine: Engine, timeout_ms: int, idle_timeout_ms: int = 0) -> None:
    """`SET LOCAL` the time zone to UTC, (unless 0) `statement_timeout`, and (unless 0)
    `idle_in_transaction_session_timeout` in every transaction, sent with its first statement.

    The idle timeout is the response timeout: a COMMIT sent just before the client gave up on a
    stuck server is never applied once the server resumes, since by then the transaction has
    been idle longer than that and the server ends the session first (backend/db/deadline.py).

    UTC: psycopg2 returns timestamps in the transaction's zone, and responses speak UTC; with
    the zone set here they arrive in UTC and pydantic prints them with a `Z` natively, where
    converting each one in Python cost a tenth of a 100-task listing (specs/benchmark.md).

    A startup `options=-c statement_timeout=...` is refused by PgBouncer and Neon's pooler, and a
    session-level SET would stick to whichever client the pooler lends that server connection
    to next. SET LOCAL ends with its transaction, so it is right behind any pooler. Prefixed to
    the transaction's first statement (psycopg2 runs them in one round trip and returns the
    last one's result) rather than executed on its own, which would cost a round trip each.
    The same hook sends what `send_with_next_statement` queued (specs/statements.md).
    """
    prefix = transaction_locals(timeout_ms, idle_timeout_ms)

    # Armed at BEGIN, consumed by the first statement. (No commit/rollback hook to disarm: a
    # transaction that ran no statement leaves it armed, and the next BEGIN arms it anyway; and
    # reading `conn.info` while rolling back a connection the server dropped would raise.)
    @event.listens_for(engine, "begin")
    def _arm(conn: Connection) -> None:
        state = request_state(conn)
        if state.ahead is None:
            state.locals_pending = True

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _prefix(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        state = request_state(conn)
        if state.stage is Stage.COMMITTED and not _is_read(statement, context):
            # A statement committed the transaction as its last (`finish`): a write after it
            # would commit on its own, not with the request's. A route that writes twice says
            # so first (`UnitOfWork.hold_commit`).
            raise RuntimeError("a write after the statement that committed the request")
        first, state.ahead = state.ahead, None
        if first is not None:
            head = cursor.mogrify(*first).decode()
            # psycopg2 reads `%` as a placeholder's start whenever it is given parameters.
            if parameters or not getattr(context, "no_parameters", False):
                head = head.replace("%", "%%")
            statement = head + statement
        elif state.locals_pending or state.locals_on_every_statement:
            state.locals_pending = False
            statement = prefix + statement
        return statement, parameters

    @event.listens_for(engine, "after_cursor_execute")
    def _answered(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        # SQLAlchemy's psycopg2 dialect logs and clears the notices after this hook: what a
        # message answered in notices of ours is kept for the caller (`notices`).
        state = request_state(conn)
        raw = cursor.connection.notices
        said = state.notices = read_notices(raw) if raw else NONE
        if state.committing:
            # `finish`'s message was answered: its COMMIT ran.
            state.committing = False
            state.stage = Stage.COMMITTED
        then = None
        if state.ahead is None:
            then, state.then = state.then, None
        if then is not None:
            then(said)


_READ = re.compile(r"\s*SELECT\b", re.IGNORECASE)
