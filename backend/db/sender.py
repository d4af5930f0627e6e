"""The one object that composes and sends a request's messages (specs/statements.md).

A `Sender` belongs to one unit of work and its connection. Each call sends one message with
one `execute`: the transaction-local settings, the caller's entry once, what rides ahead of
the statement, the statement, and for the message that carries the entry, the request's
outcome read as columns of its last statement (`task_api_outcome_read`, migrations 0027, 0110). Rows
come back through one decoder (the end of `Sender._send`) whatever the message held. Every
statement is compiled here (`_compile`, once per statement object and value names) and
scope-checked as compiled (backend/db/scope_check.py): an unscoped one is never sent.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import psycopg2.extensions
from sqlalchemy import ARRAY, BindParameter, Connection, Row, Text, bindparam, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.sql.compiler import SQLCompiler

from backend.db.engine import CONNECTION_CLOCK_OFFSET, CONNECTION_IN_TIME
from backend.db.scope_check import check


class Rows(list[Row[Any]]):
    """A message's rows, each a `Row` (by attribute, by name, by position), with the reads of
    a SQLAlchemy result that services use."""

    def all(self) -> list[Row[Any]]:
        return list(self)

    def first(self) -> Row[Any] | None:
        return self[0] if self else None

    def one(self) -> Row[Any]:
        if len(self) != 1:
            raise RuntimeError(f"one row expected, {len(self)} returned")
        return self[0]

    def one_or_none(self) -> Row[Any] | None:
        if len(self) > 1:
            raise RuntimeError(f"at most one row expected, {len(self)} returned")
        return self.first()

    def scalar(self) -> Any:
        return self[0][0] if self else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self]


class Stage(Enum):
    """Where the request's transaction is."""

    # psycopg2's own transactions (sign-up, sign-in, the seed): the settings go with each
    # transaction's first statement.
    TRANSACTION = "transaction"
    # A signed-in caller's read: autocommit, every statement its own transaction.
    READ = "read"
    # A signed-in caller's write: one message that commits itself, or a `BEGIN` of ours and a
    # COMMIT to come (`began`).
    WRITE = "write"
    # A write committed the request in its own message: only reads may follow, as READ's.
    COMMITTED = "committed"


@dataclass(frozen=True)
class Outcome:
    """What the server told the request (`task_api_outcome_read`): the write count (hits, seconds
    to the window's reset), a refusal (`TA429`, `TA401` + gone/revoked, `TA208` a replay with
    the recorded answer, `TA422`), the route's own count (`Sender.count`, migration 0035),
    rows a refused message read for what the request does next (`read`, migration 0110), all
    None when nothing was said."""

    hits: int | None = None
    reset: int | None = None
    refused: str | None = None
    reason: str | None = None
    replay: dict[str, Any] | None = None
    route_hits: int | None = None
    route_reset: int | None = None
    read: list[Any] | None = None


# The outcome's columns, in `task_api_outcome_read`'s order (`Outcome`'s; migration 0110).
_OUTCOME = tuple(f"task_api_{field.name}" for field in fields(Outcome))
# The statement wrapped to answer with the outcome and its rows; a row of the statement is
# told from the outcome's lone row (no rows) by `task_api_row`.
_WITH_OUTCOME = (
    "WITH {ctes} SELECT o.*, r.* FROM task_api_outcome_read() AS o "
    "LEFT JOIN (SELECT true AS task_api_row, *{beside} FROM r) AS r ON true"
)
_OUTCOME_ONLY = "SELECT * FROM task_api_outcome_read()"
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
# A bulk request's statements, run by `task_api_steps` (migration 0027).
_STEPS = select(func.task_api_steps(bindparam("steps", type_=ARRAY(Text))).label("steps"))


def transaction_locals(timeout_ms: int, idle_timeout_ms: int = 0) -> str:
    """The settings every transaction starts with: UTC (psycopg2 returns instants in the
    transaction's zone, and responses speak UTC), the statement timeout, and the idle timeout
    that keeps a COMMIT sent just before the client gave up from running once a frozen server
    resumes (backend/db/engine.py). `SET LOCAL`: a session `SET` would outlive the
    transaction behind a transaction pooler (Neon's), a startup option is refused by it."""
    prefix = "SET LOCAL TimeZone = 'UTC'; "
    if timeout_ms > 0:
        prefix += f"SET LOCAL statement_timeout = {int(timeout_ms)}; "
    if idle_timeout_ms > 0:
        prefix += f"SET LOCAL idle_in_transaction_session_timeout = {int(idle_timeout_ms)}; "
    return prefix


@dataclass(frozen=True)
class Entry:
    """A signed-in caller's entry (`task_api_enter`): its SQL and values, sent with the
    request's first statement; its values for a further transaction (`begin_again`, counting
    nothing); whether the request writes; what to call with the outcome; what its values
    change to enter without the caller's change lock, for a write that takes its locks itself
    (`locks_spaces`: over the first transaction's values or a further one's, uncounted)."""

    sql: str
    values: dict[str, Any]
    again: dict[str, Any]
    write: bool
    settle: Callable[[Outcome], None]
    unlocked: dict[str, Any] | None = None


class Sender:
    """Sends one request's messages on its connection (`read`, `write`), and knows where its
    transaction is (`stage`)."""

    def __init__(
        self,
        conn: Connection,
        locals_: str,
        entry: Entry | None = None,
    ) -> None:
        """`entry`: a signed-in caller's request (else psycopg2's own transactions, the
        settings with each one's first statement)."""
        self.conn = conn
        self._locals = locals_
        self.stage = Stage.TRANSACTION
        # The caller's entry, sent with the next statement; how a further transaction of
        # the request enters (`begin_again`); what to call with the outcome.
        self.entry: tuple[str, dict[str, Any]] | None = None
        self.again: tuple[str, dict[str, Any]] | None = None
        self._settle: Callable[[Outcome], None] = _ignore
        self._unlocked: dict[str, Any] | None = None
        # A `BEGIN` of ours was sent: a COMMIT (with `_at_commit`) ends the transaction.
        self.began = False
        self._ahead: list[tuple[str, dict[str, Any]]] = []
        self._at_commit: list[tuple[str, dict[str, Any]]] = []
        # The route adds to the transaction after its write: no statement may end it.
        self.held = False
        # A column over the next write's rows (`beside`): its SQL and values.
        self._beside: tuple[str, dict[str, Any]] | None = None
        # A further transaction began after one committed the request's count.
        self.resumed = False
        # The message that carried the entry (and the counts riding with it) committed: a
        # failure after it has no count to put back (`UnitOfWork._refused`).
        self.counted = False
        if entry is not None:
            # Autocommit: psycopg2 sends no `BEGIN` of its own.
            conn.connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            self.stage = Stage.WRITE if entry.write else Stage.READ
            self.entry = (entry.sql, entry.values)
            self.again = (entry.sql, entry.again)
            self._settle = entry.settle
            self._unlocked = entry.unlocked

    @property
    def can_finish(self) -> bool:
        """Whether a write may commit the request in its own message: a write's first message
        (no `BEGIN` sent) with nothing held for after it."""
        return self.stage is Stage.WRITE and not self.began and not self.held

    def read(self, statement: Any, values: Mapping[str, Any], *, last: bool = False) -> Rows:
        """Send a statement that only reads (a write sent here is a programming error); `last`,
        as `write`'s: it commits the request (a write's entry) in its message where it may."""
        if getattr(statement, "is_dml", False):
            raise RuntimeError("a write sent as a read")
        finish = last and self.stage is Stage.WRITE and not self.began and not self.held
        return self._send(statement, values, finish=finish)

    def write(
        self,
        statement: Any,
        values: Mapping[str, Any],
        *,
        last: bool = False,
        around: tuple[str, dict[str, str], Mapping[str, Any]] | None = None,
    ) -> Rows:
        """Send a write. `last`: nothing follows it, so where it may (`can_finish`) it commits
        the request in its own message, with no `BEGIN` or `COMMIT`: PostgreSQL runs the
        message as one implicit transaction. `around`: a template whose CTEs hold the write
        (`{sql}`) and the statements `parts` (rendered with their values) beside it, its last
        CTE `r`, the rows."""
        if self.stage is Stage.COMMITTED:
            if getattr(statement, "is_dml", False) or around is not None:
                raise RuntimeError("a write after the statement that committed the request")
            return self._send(statement, values, finish=False)  # a SELECT: a read
        finish = (
            last and self.stage is Stage.WRITE and not self.began and not self.held
        )  # can_finish
        beside = None
        if self._beside is not None and (around or getattr(statement, "is_dml", False)):
            beside, self._beside = self._beside, None
        return self._send(statement, values, finish=finish, around=around, beside=beside)

    def beside(self, statement: Any, values: Mapping[str, Any], name: str) -> None:
        """Answer `statement` (a scalar SELECT over a row `r` of the write) as the column `name`
        of each row the next write returns, in its message (a column the caller reads)."""
        sql, params = render(self.conn, statement, values, "b_")
        self._beside = (f", ({sql}) AS {name}", params)

    def steps(self, texts: list[str], *, last: bool) -> Any:
        """`task_api_steps` over `texts` (a bulk request's statements), as `write` sends it:
        its value (migration 0027)."""
        return self.write(_STEPS, {"steps": texts}, last=last).scalar_one()

    def ahead(self, statement: Any, values: Mapping[str, Any]) -> None:
        """Send `statement` (whose rows nobody reads) with the next statement, ahead of it, in
        the same transaction: a write's (an Idempotency-Key's check) or a read's message, one
        implicit transaction (the change feed's hold, whose locks last until the message
        ends)."""
        if self.stage not in (Stage.WRITE, Stage.READ):
            raise RuntimeError("a statement ahead needs a request's transaction")
        self._ahead.append(render(self.conn, statement, values, f"a{len(self._ahead)}_"))

    def locks_spaces(self, statement: Any, values: Mapping[str, Any], *, first: bool) -> None:
        """The write takes its change locks itself: the entry takes none (not the caller's),
        and `statement`, which takes them, goes ahead of the next statement (migration 0036:
        a write in two spaces waits for neither lock while it holds the other). Not `first`:
        where the entry has gone or takes its locks itself (one of many creates in a unit of
        work, a write by a task's id), this does nothing."""
        if self.entry is None or self._unlocked is None or self.stage is not Stage.WRITE:
            if not first:
                return
            raise RuntimeError("a write's locks go ahead of its first statement")
        # What rides with the entry stays (a route's own count, `count`).
        self.entry = (self.entry[0], {**self.entry[1], **self._unlocked})
        self.ahead(statement, values)

    def at_commit(self, statement: Any, values: Mapping[str, Any]) -> bool:
        """Queue `statement` (whose result nobody reads) for the COMMIT's message; False
        (nothing queued) when no COMMIT of ours is coming."""
        if self.stage is not Stage.WRITE:
            return False
        self._at_commit.append(render(self.conn, statement, values, f"c{len(self._at_commit)}_"))
        return True

    def count(self, sql: str, values: Mapping[str, Any]) -> None:
        """Send `sql` (a route's own rate-limit count, `task_api_count`) with the caller's
        entry, after it, in the request's first message: it stands whatever the route then
        does, as the write count does (a rolled-back one is counted again,
        `UnitOfWork._refused`; a further transaction's entry, `begin_again`, counts nothing)."""
        if self.entry is None:
            raise RuntimeError("a count rides with the caller's entry: before the first statement")
        sql_, params = self.entry
        self.entry = (sql_ + sql, {**params, **values})

    def hold(self) -> None:
        """The route writes again after its write: no statement may end the transaction."""
        self.held = True

    @property
    def can_begin_again(self) -> bool:
        return self.stage is Stage.COMMITTED and self.again is not None

    def begin_again(self) -> None:
        """Start another transaction of this request after a statement committed the first:
        its entry (uncounted: the first's count stands) goes with the next statement."""
        if self.again is None:
            raise RuntimeError("this request cannot begin another transaction")
        self.entry = self.again
        self.stage = Stage.WRITE
        self.began = False
        self._at_commit = []
        self.resumed = True

    def commit(self) -> None:
        """End a transaction of ours: what was queued for it, and COMMIT, in one message."""
        queued, self._at_commit = self._at_commit, []
        params = {name: value for _, values in queued for name, value in values.items()}
        self.conn.exec_driver_sql("".join(f"{sql}; " for sql, _ in queued) + "COMMIT", params)
        self.began = False

    def send_entry(self) -> None:
        """Send the entry on its own, no statement having carried it: the account is checked
        and a write counted all the same."""
        if self.entry is not None:
            sql, params = self.entry
            self.entry = None
            rows = self.conn.exec_driver_sql(self._locals + sql + _OUTCOME_ONLY, params).one()
            self.counted = not self.in_transaction()
            self._settle(Outcome(*rows))

    def in_transaction(self) -> bool:
        dbapi = self.conn.connection.dbapi_connection
        idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
        return dbapi is not None and dbapi.info.transaction_status != idle

    def _send(
        self,
        statement: Any,
        values: Mapping[str, Any],
        *,
        finish: bool,
        around: tuple[str, dict[str, Any], Mapping[str, Any]] | None = None,
        beside: tuple[str, dict[str, Any]] | None = None,
    ) -> Rows:
        compiled, params = _compiled(self.conn.dialect, statement, values)
        if beside is not None:
            params.update(beside[1])
        sql, ctes = compiled.sql, compiled.ctes
        if around is not None:
            template, parts, part_values = around
            texts = {}
            for name, part in parts.items():
                texts[name], part_params = render(self.conn, part, part_values, f"{name}_")
                params.update(part_params)
            ctes = template.format(sql=sql, **texts)
        head = ""
        if self.stage is Stage.TRANSACTION:
            if not self.in_transaction():
                head = self._locals
        elif self.stage is not Stage.WRITE:
            head = self._locals
        elif not self.began:
            head = self._locals if finish else "BEGIN; " + self._locals
            self.began = not finish
        entry, self.entry = self.entry, None
        if entry is not None:
            head += entry[0]
            params.update(entry[1])
        for ahead, ahead_params in self._ahead:
            head += ahead + "; "
            params.update(ahead_params)
        info = self.conn.info
        if finish and CONNECTION_IN_TIME in info:
            # Not committed if the server runs it after the client gave up (R7): the response
            # timeout less a margin, in the server's clock (`engine._learn_server_clock`).
            deadline = time.time() + info[CONNECTION_CLOCK_OFFSET] + info[CONNECTION_IN_TIME]
            head += f"SELECT task_api_in_time({deadline:.6f}); "
        answered = entry is not None or bool(self._ahead) or finish or around is not None
        self._ahead = []
        extra = "" if beside is None else beside[0]
        message = head + (_WITH_OUTCOME.format(ctes=ctes, beside=extra) if answered else sql)
        if not params:  # psycopg2 reads `%%` as `%` only when given parameters
            message = message.replace("%%", "%")
        result = self.conn.exec_driver_sql(message, params)
        if finish:
            self.stage = Stage.COMMITTED
        if entry is not None:  # autocommitted with its statement (`in_transaction`, inline)
            dbapi = self.conn.connection.dbapi_connection
            self.counted = dbapi is not None and dbapi.info.transaction_status == _IDLE
        if not result.returns_rows:
            return Rows()
        rows: list[Any] = list(result.all())
        columns = list(result.keys())
        if answered:
            skip = len(_OUTCOME)
            said = rows[0][:skip] if rows else ()
            if any(value is not None for value in said):
                self._settle(Outcome(*said))
            columns = columns[skip + 1 :]
            rows = [row[skip + 1 :] for row in rows if row[skip]]
        # One decoder: each column through its type's result processor, as `execute` would
        # (an enum member from its value); columns past the statement's own pass as they are.
        processors = compiled.processors
        if processors:
            if len(processors) < len(columns):
                processors += (None,) * (len(columns) - len(processors))
            rows = [
                tuple(v if p is None or v is None else p(v) for p, v in zip(processors, row))  # noqa: B905
                for row in rows
            ]
        return Rows(IteratorResult(SimpleResultMetaData(columns), iter(rows)).all())  # type: ignore[arg-type]


def read_for_callers(
    conn: Connection,
    locals_: str,
    statement: Any,
    values: Mapping[str, Any],
    *,
    ahead: tuple[Any, Mapping[str, Any]] | None = None,
) -> Rows:
    """One message on a connection of no request, autocommitted (the live streams' reader,
    issue 64): the transaction's settings, `ahead` (rows nobody reads: the feed's hold), then
    `statement`, one implicit transaction. Each is compiled and scope-checked as a request's
    (`_compiled`); a statement for many callers binds every caller (`scope.each_caller`).
    Its rows decoded as `_send` decodes a request's."""
    head, params = locals_, dict[str, Any]()
    if ahead is not None:
        sql, params = render(conn, ahead[0], ahead[1], "a_")
        head += sql + "; "
    compiled, own = _compiled(conn.dialect, statement, values)
    params.update(own)
    result = conn.exec_driver_sql(head + compiled.sql, params)
    rows: list[Any] = list(result.all())
    processors = compiled.processors
    if processors:
        rows = [
            tuple(v if p is None or v is None else p(v) for p, v in zip(processors, row))  # noqa: B905
            for row in rows
        ]
    return Rows(IteratorResult(SimpleResultMetaData(list(result.keys())), iter(rows)).all())  # type: ignore[arg-type]


def _ignore(_outcome: Outcome) -> None:
    return None


# A pyformat placeholder in compiled SQL (a literal `%` is compiled as `%%`).
_PLACEHOLDER = re.compile(r"(?<!%)%\((\w+)\)s")


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled once for a set of value names: its SQL (split at its parameters
    too), each parameter's name, bind and bind processor (what `execute` applies to a value
    before psycopg2 sees it), its columns' result processors (None: no column needs one),
    and its CTEs for `_WITH_OUTCOME`. Nothing here refers to the statement (the cache holds
    it weakly)."""

    sql: str
    pieces: list[str]
    binds: tuple[tuple[str, BindParameter[Any], Callable[[Any], Any] | None], ...]
    processors: tuple[Callable[[Any], Any] | None, ...] | None
    ctes: str


def _compiled(
    dialect: Dialect, statement: Any, values: Mapping[str, Any], prefix: str = ""
) -> tuple[_Compiled, dict[str, Any]]:
    """`statement` compiled (once per statement object and value names: an INSERT or UPDATE
    sets a column for each name that is one, as `execute` compiles it), and its driver-ready
    values named `<prefix><name>`: by the bind's key or its compiled name, else the one the
    bind holds (`Compiled.construct_params`' rule)."""
    keys = tuple(sorted(values))
    by_keys = _COMPILED.get(statement)
    if by_keys is None:
        by_keys = _COMPILED[statement] = {}
    found = by_keys.get(keys)
    if found is None:
        found = by_keys[keys] = _compile(dialect, statement, keys)
    params: dict[str, Any] = {}
    for name, bind, process in found.binds:
        if bind.key in values:
            value = values[bind.key]
        elif name in values:
            value = values[name]
        elif bind.required:
            raise ValueError(f"a value is required for bind parameter {bind.key!r}")
        else:
            value = bind.effective_value
        params[prefix + name] = process(value) if process is not None else value
    return found, params


def _compile(dialect: Dialect, statement: Any, keys: tuple[str, ...]) -> _Compiled:
    """`statement` compiled for the value names `keys`, and scope-checked as compiled: an
    unscoped one raises `Unscoped` here, before anything is sent (backend/db/scope_check.py)."""
    compiled: SQLCompiler = statement.compile(dialect=dialect, column_keys=list(keys))
    sql = str(compiled)
    if compiled.positiontup or compiled.escaped_bind_names or "POSTCOMPILE" in sql:
        raise ValueError("only plain named parameters can be rendered (no IN lists)")
    check(sql, statement)
    binds = tuple(
        (name, bind, bind.type.dialect_impl(dialect).bind_processor(dialect))
        for bind, name in compiled.bind_names.items()
    )
    processors = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in getattr(statement, "exported_columns", None) or ()
    )
    # A write, or a read whose WITH writes (an undo's UPDATE beside its restore).
    writes = getattr(statement, "is_dml", False) or any(
        getattr(cte.element, "is_dml", False) for cte in compiled.ctes or ()
    )
    # A read is planned apart from the wrapper (`MATERIALIZED`: not pulled up under its outer
    # join), which plans a GET 0.03 ms and a listing 0.1 ms faster, in half the memory, for
    # one copy of its rows (issue 73, specs/benchmark.md). A write's CTE is materialized anyway.
    ctes = f"r AS ({sql})" if writes else f"r AS MATERIALIZED ({sql})"
    if writes:
        own, main = own_ctes(sql)
        if not statement.exported_columns:  # a write that returns nothing
            ctes = f"{own}w AS ({main}), r AS (SELECT WHERE false)"
        elif own:  # a data-modifying WITH must stay at the top level
            ctes = f"{own}r AS ({main})"
    pieces = _PLACEHOLDER.split(sql)
    return _Compiled(sql, pieces, binds, processors if any(processors) else None, ctes)


_COMPILED: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], _Compiled]] = (
    weakref.WeakKeyDictionary()
)


def render(
    conn: Connection, statement: Any, values: Mapping[str, Any], prefix: str
) -> tuple[str, dict[str, Any]]:
    """`statement` as `execute` would send it (pyformat SQL and driver-ready values), its
    parameters renamed `<prefix><name>`, so that several statements can share one message and
    one parameter dict. Compiled once per statement object and set of value names: the hot
    statements are built once."""
    compiled, params = _compiled(conn.dialect, statement, values, prefix)
    sql = "".join(
        piece if index % 2 == 0 else f"%({prefix}{piece})s"
        for index, piece in enumerate(compiled.pieces)
    )
    return sql, params


def own_ctes(sql: str) -> tuple[str, str]:
    """A write's SQL split into its own CTEs (`name AS (...), `, to list before others, after
    a `WITH`: `RECURSIVE` first where they are, which then applies to the whole list) and its
    statement; ("", sql) without them. Compiled SQL: quotes hold only our literals."""
    if not sql.startswith("WITH "):
        return "", sql
    keyword = "RECURSIVE " if sql.startswith("WITH RECURSIVE ") else ""
    depth, quoted = 0, False
    for index, char in enumerate(sql):
        if char == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            # Past a CTE's body, or a recursive one's column list (`name(a, b) AS (...)`).
            if depth == 0 and not sql.startswith((", ", " AS "), index + 1):
                return keyword + sql[5 + len(keyword) : index + 1] + ", ", sql[index + 1 :].lstrip()
    raise ValueError("unbalanced WITH clause")


def inline(conn: Connection, sql: str, params: Mapping[str, Any]) -> str:
    """`sql` (pyformat, `params`) as one statement's text with its values quoted in, as
    psycopg2 quotes them into every message: for SQL handed to the server as a value
    (`task_api_steps`)."""
    with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        text_: bytes = cursor.mogrify(sql, dict(params))
    return text_.decode()
