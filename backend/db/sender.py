"""The one object that composes and sends a request's messages (specs/statements.md).

A `Sender` belongs to one unit of work and its connection. Each call sends one message with
one `execute`: the transaction-local settings, the caller's entry once, what rides ahead of
the statement, the statement, and for the message that carries the entry, the request's
outcome read as columns of its last statement (`task_api_outcome`, migration 0027). Rows
come back through one decoder (`_decode`) whatever the message held.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import psycopg2.extensions
from sqlalchemy import ARRAY, BindParameter, Connection, Row, Text, bindparam, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.sql.compiler import SQLCompiler

from backend.db.engine import CONNECTION_CLOCK_OFFSET, CONNECTION_IN_TIME


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
    # A statement committed the write (`finish`): only reads may follow, each as READ's.
    COMMITTED = "committed"


@dataclass(frozen=True)
class Outcome:
    """What the server told the request (`task_api_outcome`): the write count (hits, seconds
    to the window's reset), a refusal (`TA429`, `TA401` + gone/revoked, `TA208` a replay with
    the recorded answer, `TA422`), all None when nothing was said."""

    hits: int | None = None
    reset: int | None = None
    refused: str | None = None
    reason: str | None = None
    replay: dict[str, Any] | None = None


_OUTCOME = tuple(f"task_api_{name}" for name in ("hits", "reset", "refused", "reason", "replay"))
# The statement wrapped to answer with the outcome and its rows; a row of the statement is
# told from the outcome's lone row (no rows) by `task_api_row`.
_WITH_OUTCOME = (
    "WITH {ctes} SELECT o.*, r.* FROM task_api_outcome() AS o "
    "LEFT JOIN (SELECT true AS task_api_row, * FROM r) AS r ON true"
)
_OUTCOME_ONLY = "SELECT * FROM task_api_outcome()"
# A bulk request's statements, run by `task_api_steps` (migration 0027).
_STEPS = select(func.task_api_steps(bindparam("steps", type_=ARRAY(Text))).label("steps"))


def transaction_locals(timeout_ms: int, idle_timeout_ms: int = 0) -> str:
    """The settings every transaction starts with: UTC (psycopg2 returns instants in the
    transaction's zone, and responses speak UTC), the statement timeout, and the idle timeout
    that keeps a COMMIT sent just before the client gave up from running once a frozen server
    resumes (backend/db/deadline.py). `SET LOCAL`: a session `SET` would outlive the
    transaction behind a transaction pooler (Neon's), a startup option is refused by it."""
    prefix = "SET LOCAL TimeZone = 'UTC'; "
    if timeout_ms > 0:
        prefix += f"SET LOCAL statement_timeout = {int(timeout_ms)}; "
    if idle_timeout_ms > 0:
        prefix += f"SET LOCAL idle_in_transaction_session_timeout = {int(idle_timeout_ms)}; "
    return prefix


class Sender:
    """Sends one request's messages on its connection (`read`, `write`), and knows where its
    transaction is (`stage`)."""

    def __init__(self, conn: Connection, locals_: str) -> None:
        self.conn = conn
        self._locals = locals_
        self.stage = Stage.TRANSACTION
        # The caller's entry, sent with the next statement; how a further transaction of
        # the request enters (`begin_again`); what to call with the outcome.
        self._entry: tuple[str, dict[str, Any]] | None = None
        self._again: tuple[str, dict[str, Any]] | None = None
        self._settle: Callable[[Outcome], None] = _ignore
        # A `BEGIN` of ours was sent: a COMMIT (with `_at_commit`) ends the transaction.
        self.began = False
        self._ahead: list[tuple[str, dict[str, Any]]] = []
        self._at_commit: list[tuple[str, dict[str, Any]]] = []
        # The route adds to the transaction after its write: no statement may end it.
        self.held = False
        # A further transaction began after one committed the request's count.
        self.resumed = False

    def enter(
        self,
        entry: tuple[str, dict[str, Any]],
        again: dict[str, Any],
        *,
        write: bool,
        settle: Callable[[Outcome], None],
    ) -> None:
        """A signed-in caller's request: autocommit (psycopg2 sends no `BEGIN` of its own),
        the entry (`entry`: its SQL and values) to go with the first statement, and `again`,
        its values for a further transaction (`begin_again`, counting nothing)."""
        self.conn.connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        self.stage = Stage.WRITE if write else Stage.READ
        self._entry = entry
        self._again = (entry[0], again)
        self._settle = settle

    @property
    def can_finish(self) -> bool:
        """Whether a write may commit the request in its own message: a write's first message
        (no `BEGIN` sent) with nothing held for after it."""
        return self.stage is Stage.WRITE and not self.began and not self.held

    @property
    def entered(self) -> bool:
        """Whether the entry has been sent (or the request has none)."""
        return self._entry is None

    def read(self, statement: Any, values: Mapping[str, Any]) -> Rows:
        """Send a statement that only reads (a write sent here is a programming error)."""
        if getattr(statement, "is_dml", False):
            raise RuntimeError("a write sent as a read")
        return self._send(statement, values, finish=False)

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
        return self._send(statement, values, finish=last and self.can_finish, around=around)

    def steps(self, texts: list[str], *, last: bool) -> Any:
        """`task_api_steps` over `texts` (a bulk request's statements), as `write` sends it:
        its value (migration 0027)."""
        return self.write(_STEPS, {"steps": texts}, last=last).scalar_one()

    def ahead(self, statement: Any, values: Mapping[str, Any]) -> None:
        """Send `statement` (whose rows nobody reads) with the next statement, ahead of it:
        only in a write's transaction (an Idempotency-Key's check)."""
        if self.stage is not Stage.WRITE:
            raise RuntimeError("a statement ahead needs a write's transaction")
        self._ahead.append(render(self.conn, statement, values, f"a{len(self._ahead)}_"))

    def at_commit(self, statement: Any, values: Mapping[str, Any]) -> bool:
        """Queue `statement` (whose result nobody reads) for the COMMIT's message; False
        (nothing queued) when no COMMIT of ours is coming."""
        if self.stage is not Stage.WRITE:
            return False
        self._at_commit.append(render(self.conn, statement, values, f"c{len(self._at_commit)}_"))
        return True

    def hold(self) -> None:
        """The route writes again after its write: no statement may end the transaction."""
        self.held = True

    @property
    def can_begin_again(self) -> bool:
        return self.stage is Stage.COMMITTED and self._again is not None

    def begin_again(self) -> None:
        """Start another transaction of this request after a statement committed the first:
        its entry (uncounted: the first's count stands) goes with the next statement."""
        if self._again is None:
            raise RuntimeError("this request cannot begin another transaction")
        self._entry = self._again
        self.stage = Stage.WRITE
        self.began = False
        self._at_commit = []
        self.resumed = True

    def commit(self) -> None:
        """End a transaction of ours: what was queued for it, and COMMIT, in one message."""
        queued, self._at_commit = self._at_commit, []
        params: dict[str, Any] = {}
        for _, values in queued:
            params.update(values)
        self.conn.exec_driver_sql("".join(f"{sql}; " for sql, _ in queued) + "COMMIT", params)
        self.began = False

    def send_entry(self) -> bool:
        """Send the entry on its own if no statement carried it (the account is checked and a
        write counted all the same); False when it had been sent."""
        if self._entry is None:
            return False
        sql, params = self._entry
        self._entry = None
        rows = self.conn.exec_driver_sql(self._locals + sql + _OUTCOME_ONLY, params).one()
        self._settle(Outcome(*rows))
        return True

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
    ) -> Rows:
        sql, params = render(self.conn, statement, values, "")
        ctes = f"r AS ({sql})"
        if getattr(statement, "is_dml", False):
            own, main = _own_ctes(sql)
            if not statement.exported_columns:  # a write that returns nothing
                ctes = f"{own}w AS ({main}), r AS (SELECT WHERE false)"
            elif own:  # a data-modifying WITH must stay at the top level
                ctes = f"{own}r AS ({main})"
        if around is not None:
            template, parts, part_values = around
            rendered = {}
            for name, part in parts.items():
                rendered[name], part_params = render(self.conn, part, part_values, f"{name}_")
                params.update(part_params)
            ctes = template.format(sql=sql, **rendered)
        head = ""
        if self.stage is Stage.TRANSACTION:
            if not self.in_transaction():
                head = self._locals
        elif self.stage is not Stage.WRITE:
            head = self._locals
        elif not self.began:
            head = self._locals if finish else "BEGIN; " + self._locals
            self.began = not finish
        entry, self._entry = self._entry, None
        if entry is not None:
            head += entry[0]
            params.update(entry[1])
        for ahead, ahead_params in self._ahead:
            head += ahead + "; "
            params.update(ahead_params)
        if finish:
            head += self._deadline()
        answered = entry is not None or bool(self._ahead) or finish or around is not None
        self._ahead = []
        message = head + (_WITH_OUTCOME.format(ctes=ctes) if answered else sql)
        if not params:  # psycopg2 reads `%%` as `%` only when given parameters
            message = message.replace("%%", "%")
        result = self.conn.exec_driver_sql(message, params)
        if finish:
            self.stage = Stage.COMMITTED
        rows: list[Any] = list(result.all()) if result.returns_rows else []
        columns = list(result.keys()) if result.returns_rows else []
        if answered:
            skip = len(_OUTCOME)
            outcome = Outcome(*rows[0][:skip]) if rows else Outcome()
            columns = columns[skip + 1 :]
            rows = [row[skip + 1 :] for row in rows if row[skip]]
            self._settle(outcome)
        return _decode(self.conn.dialect, statement, columns, rows)

    def _deadline(self) -> str:
        """The check that keeps a message run after the client gave up from committing (R7):
        `task_api_in_time` refuses past the response timeout, less a margin, in the server's
        clock (its offset from ours measured when the connection was made)."""
        info = self.conn.info
        offset, in_time = info.get(CONNECTION_CLOCK_OFFSET), info.get(CONNECTION_IN_TIME)
        if offset is None or in_time is None:
            return ""
        return f"SELECT task_api_in_time({time.time() + offset + in_time:.6f}); "


def _own_ctes(sql: str) -> tuple[str, str]:
    """A write's SQL split into its own CTEs (`name AS (...), `, to list before others) and
    its statement; ("", sql) without them. Compiled SQL: quotes hold only our literals."""
    if not sql.startswith("WITH ") or sql.startswith("WITH RECURSIVE"):
        return "", sql
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
            if depth == 0 and not sql.startswith(", ", index + 1):
                return sql[5 : index + 1] + ", ", sql[index + 1 :].lstrip()
    raise ValueError("unbalanced WITH clause")


def _ignore(_outcome: Outcome) -> None:
    return None


def _decode(dialect: Dialect, statement: Any, columns: list[str], rows: list[Any]) -> Rows:
    """Rows as `execute` would give them: each column through its type's result processor
    (an enum member from its value; instants, JSON and arrays as psycopg2 returns them)."""
    processors = _processors(dialect, statement)
    if any(processors):
        # Columns past the statement's own (a marker a template adds) pass as they are.
        processors += (None,) * (len(columns) - len(processors))
        rows = [
            tuple(v if p is None or v is None else p(v) for p, v in zip(processors, row))  # noqa: B905
            for row in rows
        ]
    return Rows(IteratorResult(SimpleResultMetaData(columns), iter(rows)).all())  # type: ignore[arg-type]


def _processors(dialect: Dialect, statement: Any) -> tuple[Callable[[Any], Any] | None, ...]:
    found = _PROCESSORS.get(statement)
    if found is None:
        columns = getattr(statement, "exported_columns", None) or ()
        found = _PROCESSORS[statement] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
    return found


_PROCESSORS: weakref.WeakKeyDictionary[Any, tuple[Callable[[Any], Any] | None, ...]] = (
    weakref.WeakKeyDictionary()
)

# A pyformat placeholder in compiled SQL (a literal `%` is compiled as `%%`).
_PLACEHOLDER = re.compile(r"(?<!%)%\((\w+)\)s")


def render(
    conn: Connection, statement: Any, values: Mapping[str, Any], prefix: str
) -> tuple[str, dict[str, Any]]:
    """`statement` compiled as `execute` would send it (pyformat SQL and driver-ready values,
    bind processors applied), its parameters renamed `<prefix><name>`, so that several
    statements can share one message and one parameter dict. Compiled once per statement
    object and set of value names (`_compiled`): the hot statements are built once."""
    rendered = _compiled(conn.dialect, statement, tuple(sorted(values)))
    params: dict[str, Any] = {}
    # A value given by the bind's key or its compiled name, else the one the bind holds.
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
    if not prefix:
        return rendered.sql, params
    sql = "".join(
        piece if index % 2 == 0 else f"%({prefix}{piece})s"
        for index, piece in enumerate(rendered.pieces)
    )
    return sql, params


@dataclass(frozen=True)
class _Rendered:
    """A statement compiled for `render`: its SQL, split at its parameters, and each
    parameter's name, bind and bind processor. Nothing here refers to the statement (the
    cache holds it weakly)."""

    sql: str
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
    rendered = by_keys[column_keys] = _Rendered(sql, _PLACEHOLDER.split(sql), binds)
    return rendered


_RENDERED: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], _Rendered]] = (
    weakref.WeakKeyDictionary()
)


def inline(conn: Connection, sql: str, params: Mapping[str, Any]) -> str:
    """`sql` (pyformat, `params`) as one statement's text with its values quoted in, as
    psycopg2 quotes them into every message: for SQL handed to the server as a value
    (`task_api_steps`)."""
    with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        text_: bytes = cursor.mogrify(sql, dict(params))
    return text_.decode()


def end_autocommit(conn: Connection) -> None:
    """Back to psycopg2's transactions, for the pool's next borrower. A connection still
    inside a transaction it was sent (a failure between `BEGIN` and its end that could not
    roll back) is discarded instead: nothing of this request may reach the next one."""
    if conn.invalidated:
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is None or dbapi.closed:
        return
    if dbapi.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        conn.invalidate()
        return
    dbapi.autocommit = False
