"""The one place that scopes statements to the caller.

`owned` adds `<table>.user_id = :owner` to a statement; `Scoped._run` runs every statement of
a scoped service with `owner` bound to the service's caller, and refuses (`Unscoped`) a
statement that touches a per-user table (every table of the metadata with a `user_id` column)
without `<table>.user_id = :owner`, or inserts a row whose `user_id` is not `:owner`. A row
that belongs to someone else is therefore indistinguishable from one that does not exist.
tests/scoping.py also checks every statement a test run sends on a caller's connection.
"""

from __future__ import annotations

import operator
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import Connection, CursorResult, DateTime, Enum, Table, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnElement,
    Grouping,
    TextClause,
)
from sqlalchemy.sql.selectable import Alias, Join, Select

from backend.db.engine import (
    begin_again,
    can_begin_again,
    can_finish,
    defer_to_commit,
    finish,
    hold_commit,
    inline,
    notices,
    render,
    send_ahead,
)

# The bound parameter every scoped statement carries: the caller's id.
OWNER = "owner"


class _Filterable(Protocol):
    def where(self, *whereclause: Any) -> Self: ...


Stmt = TypeVar("Stmt", bound=_Filterable)


def owned(statement: Stmt, user_id: ColumnElement[Any]) -> Stmt:
    """`statement` restricted to the caller's rows (`user_id` is the table's owner column)."""
    return statement.where(user_id == bindparam(OWNER))


class Unscoped(AssertionError):
    """A programming error: a scoped service tried to run a statement not scoped to its caller."""


@cache
def scoped_tables() -> frozenset[str]:
    """Every per-user table: each table of the metadata with a `user_id` column."""
    from sqlmodel import SQLModel

    import backend.models  # noqa: F401  (registers every table on the metadata)

    return frozenset(t.name for t in SQLModel.metadata.tables.values() if "user_id" in t.c)


def _table_of(selectable: Any) -> Table | None:
    while isinstance(selectable, Alias):
        selectable = selectable.element
    return selectable if isinstance(selectable, Table) else None


def _is_owner(element: Any) -> bool:
    return isinstance(element, BindParameter) and element.key == OWNER


def _conjuncts(criterion: Any) -> Any:
    """The AND-conjuncts of a WHERE/ON criterion: an OR or NOT is one opaque conjunct, so an
    owner predicate under it does not count."""
    while isinstance(criterion, Grouping):
        criterion = criterion.element
    if isinstance(criterion, BooleanClauseList) and criterion.operator is operators.and_:
        for clause in criterion.clauses:
            yield from _conjuncts(clause)
    elif criterion is not None:
        yield criterion


def _owner_of(conjunct: Any) -> Any:
    """The table a `<table>.user_id = :owner` conjunct scopes, or None."""
    if (
        isinstance(conjunct, BinaryExpression)
        and conjunct.operator is operator.eq
        and getattr(conjunct.left, "name", None) == "user_id"
        and _is_owner(conjunct.right)
    ):
        return conjunct.left.table
    return None


def unscoped(statement: Any) -> str | None:
    """Why `statement` is not scoped to the caller, or None when it is (the check reads the
    statement object, not its SQL). A per-user table it reads or writes anywhere (CTEs,
    data-modifying ones included, subqueries, joins, an INSERT's SELECT) needs
    `<table>.user_id = :owner` as an AND-conjunct of a WHERE or JOIN ... ON; every INSERT into
    one must insert `:owner` (or, from a SELECT, a scoped table's `user_id`)."""
    if isinstance(statement, TextClause):
        binds = statement.get_children()
        return None if any(_is_owner(b) for b in binds) else "text statement without :owner"
    uses: dict[Any, int] = {}
    owned_by: set[Any] = set()
    inserts: list[Insert] = []
    for element in visitors.iterate(statement):
        table = _table_of(element)
        if table is not None and table.name in scoped_tables():
            uses[element] = uses.get(element, 0) + 1
        if isinstance(element, Insert):
            inserts.append(element)
        # A SELECT's, UPDATE's or DELETE's WHERE (its criteria AND-ed), a join's ON.
        criterion = element.onclause if isinstance(element, Join) else None
        if isinstance(element, (Select, Update, Delete)):
            criterion = element.whereclause
        for conjunct in _conjuncts(criterion):
            owner = _owner_of(conjunct)
            if owner is not None:
                owned_by.add(owner)
    for insert in inserts:
        if insert.table.name in scoped_tables():
            # The insert's target is written, not read: it is checked by what it inserts.
            uses[insert.table] = uses.get(insert.table, 1) - 1
            if not _inserts_owner(insert):
                return f"INSERT INTO {insert.table.name} with a user_id that is not :owner"
    touched = {element for element, count in uses.items() if count > 0}
    missing = sorted(str(t.name) for t in touched - owned_by)
    return f"{', '.join(missing)} without user_id = :owner" if missing else None


def _inserts_owner(statement: Insert) -> bool:
    """Whether every row `statement` inserts has `user_id` = `:owner` (or, from a SELECT, a
    scoped table's `user_id`). Read from the INSERT as compiled (its column list and VALUES),
    which SQLAlchemy's public API offers where the statement object does not."""
    sql = str(statement.compile(dialect=_DIALECT))
    # The statement's own INSERT: the one outside parentheses (a CTE's is inside its own).
    head = next((m for m in _INSERT_COLUMNS.finditer(sql) if _depth(sql[: m.start()]) == 0), None)
    if head is None:
        return False
    names = [name.strip().strip('"') for name in head.group(1).split(",")]
    if "user_id" not in names:
        return False
    at = names.index("user_id")
    if statement.select is not None:
        chosen = list(statement.select.selected_columns)[at]
        if _is_owner(chosen):
            return True
        # A scoped table's own `user_id` (the SELECT's WHERE must pin that table to :owner).
        table = _table_of(getattr(chosen, "table", None))
        return (
            getattr(chosen, "name", None) == "user_id"
            and table is not None
            and table.name in scoped_tables()
        )
    rows = _value_rows(sql[head.end() :])
    return bool(rows) and all(
        len(row) == len(names) and _OWNER_SQL.fullmatch(row[at]) for row in rows
    )


def _depth(sql: str) -> int:
    """How many parentheses are open at the end of `sql` (outside quotes)."""
    depth, quoted = 0, False
    for char in sql:
        if char == "'":
            quoted = not quoted
        elif not quoted:
            depth += (char == "(") - (char == ")")
    return depth


def _value_rows(sql: str) -> list[list[str]]:
    """The rows of `VALUES (...), (...)` at the start of `sql`, each a list of its items'
    SQL (split at the commas outside parentheses and quotes); [] when `sql` is not that."""
    if not sql.startswith("VALUES ("):
        return []
    rows: list[list[str]] = []
    row: list[str] = []
    depth, quoted, start = 0, False, 0
    for index, char in enumerate(sql):
        if quoted:
            quoted = char != "'"
        elif char == "'":
            quoted = True
        elif char == "(":
            depth += 1
            if depth == 1:
                start, row = index + 1, []
        elif char == ")":
            depth -= 1
            if depth == 0:
                row.append(sql[start:index].strip())
                rows.append(row)
                following = sql[index + 1 :]
                if not following.startswith(", ("):
                    return rows
        elif char == "," and depth == 1:
            row.append(sql[start:index].strip())
            start = index + 1
    return []


# How an INSERT is read (`_inserts_owner`): compiled as the engine sends it.
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_INSERT_COLUMNS = re.compile(r'INSERT INTO "?\w+"? \(([^)]*)\) ')
# `:owner`, maybe cast to its column type.
_OWNER_SQL = re.compile(rf"%\({OWNER}\)s(::[A-Z ]+)?")


@dataclass(frozen=True)
class Bound:
    """A statement built once for its shape, with the values this use binds to it: every
    `Scoped` method takes one where it takes a statement. The statement object stays the
    same from request to request, so its scope check and its compiled form are looked up,
    not redone (`_check`, `engine.render`)."""

    statement: Any
    values: Mapping[str, Any]


def _unbound(statement: Any, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if isinstance(statement, Bound):
        return statement.statement, {**statement.values, **values}
    return statement, values


@dataclass(frozen=True)
class Step:
    """One statement of `Scoped._run_steps`: it writes the task `task_id` (and maybe others)
    and RETURNs its rows; the step's row is the one whose `id` is `task_id`. When it writes
    nothing, `reason` (a scoped SELECT of one text value, or NULL; evaluated then only) says
    why, for the caller to turn into an error: None is a missing task."""

    statement: Any
    values: Mapping[str, Any]
    task_id: int
    reason: Any = None


# Why a step wrote nothing when its task is missing (`task_api_steps`' reason for NULL).
_STEP_MISSING = "missing"


class StepRefused(Exception):
    """A step wrote nothing: `reason` as its step said (None: the task is missing)."""

    def __init__(self, index: int, reason: str | None) -> None:
        super().__init__(reason or _STEP_MISSING)
        self.index = index
        self.reason = reason


# One step of `task_api_steps` (migration 0020): the step's row as JSON, and when it wrote
# nothing (no row), why (NULL: the task is missing).
_STEP = (
    "WITH r AS ({statement}), j AS (SELECT to_jsonb(r) AS row FROM r WHERE r.id = %({id})s) "
    "SELECT (SELECT row FROM j), CASE WHEN NOT EXISTS (SELECT FROM j) THEN {reason} END"
)
_STEPS = "SELECT task_api_steps(%(steps)s)"
_STEP_REFUSED = "TS400"
# Hands a statement's rows (JSON) back in a notice, for a message that ends with COMMIT.
_RETURN = "SELECT task_api_return({rows})"


# `_run_last_or_stored`: the written row, or the stored one when the write matched none (both
# CTEs see the snapshot from before the write), marked with which it is.
_WRITTEN = "task_api_written"
_WRITTEN_OR_STORED = (
    "WITH w AS ({write}), s AS ({stored}) SELECT task_api_return(jsonb_agg(r)) "
    "FROM (SELECT to_jsonb(w) || '{{\"task_api_written\": true}}' FROM w UNION ALL "
    "SELECT to_jsonb(s) || '{{\"task_api_written\": false}}' FROM s "
    "WHERE NOT EXISTS (SELECT FROM w)) AS x(r)"
)


def decoded(columns: Any, row: Mapping[str, Any]) -> SimpleNamespace:
    """A row that PostgreSQL sent as JSON (`to_jsonb`), typed as the driver types it: an
    instant from its ISO 8601 text, an enum member from its value; JSON, arrays, numbers and
    text as they are."""
    types = {column.key: column.type for column in columns}
    values: dict[str, Any] = {}
    for name, value in row.items():
        type_ = types.get(name)
        if value is not None and isinstance(type_, DateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(type_, Enum) and type_.enum_class is not None:
            value = type_.enum_class(value)
        values[name] = value
    return SimpleNamespace(**values)


class Scoped:
    """A service over one caller's rows, on the unit of work's private connection."""

    def __init__(self, connection: Connection, user_id: str) -> None:
        self._conn = connection
        self.user_id = user_id

    def _run(self, statement: Any, **values: Any) -> CursorResult[Any]:
        """Every statement runs here, with `owner` bound to the caller; an unscoped one is
        refused before it reaches the database."""
        statement, values = _unbound(statement, values)
        _check(statement)
        return self._conn.execute(statement, {OWNER: self.user_id, **values})

    def _run_last(self, statement: Any, **values: Any) -> list[Any]:
        """Run `statement` as `_run` would and return its rows (attributes typed as the
        driver types them). Where the unit of work allows (a write with nothing to add after
        this statement), as the transaction's last statement, in one message with its COMMIT:
        a write in one round trip. After that only reads may follow (telling a 404 from a
        412), each in a transaction of its own."""
        statement, values = _unbound(statement, values)
        _check(statement)
        values = {OWNER: self.user_id, **values}
        if not can_finish(self._conn):
            return [
                SimpleNamespace(**row._mapping) for row in self._conn.execute(statement, values)
            ]
        sql, params = render(self._conn, statement, values, "l_")
        returned = f"WITH r AS ({sql}) {_RETURN.format(rows='jsonb_agg(to_jsonb(r))')} FROM r"
        rows = finish(self._conn, returned, params)
        return [decoded(statement.exported_columns, row) for row in rows]

    def _run_last_or_stored(
        self, write: Any, stored: Any, **values: Any
    ) -> tuple[Any, bool] | None:
        """`write` (one row's UPDATE ... RETURNING) as the transaction's last statement, as
        `_run_last` runs it, with `stored` (a SELECT of the same row, as it was before the
        write) in the same statement: (the written row, True), or when `write` matched no row,
        (the stored row or None, False). The message commits either way, so no lock outlives
        it. None when the transaction cannot end here (`can_finish`): nothing was sent."""
        write, values = _unbound(write, values)
        stored, values = _unbound(stored, values)
        _check(write)
        _check(stored)
        if not can_finish(self._conn):
            return None
        values = {OWNER: self.user_id, **values}
        write_sql, params = render(self._conn, write, values, "l_")
        stored_sql, stored_params = render(self._conn, stored, values, "s_")
        rows = finish(
            self._conn,
            _WRITTEN_OR_STORED.format(write=write_sql, stored=stored_sql),
            {**params, **stored_params},
        )
        if not rows:
            return None, False
        row = dict(rows[0])
        written = bool(row.pop(_WRITTEN))
        return decoded(write.exported_columns, row), written

    def _can_begin_again(self) -> bool:
        return can_begin_again(self._conn)

    def _begin_again(self) -> None:
        """A further transaction of this request, after a statement committed the first one
        (`_run_last`): entered with the next statement, as the first was (`begin_again`)."""
        begin_again(self._conn)

    def _hold_commit(self) -> None:
        """Something this service adds after the route's write must commit with it: the
        write may not be the transaction's last statement (`_run_last` runs it as `_run`)."""
        hold_commit(self._conn)

    def _run_steps(self, steps: Sequence[Step], *, last: bool = False) -> list[dict[str, Any]]:
        """Run `steps` in order as one message (one round trip, however many): each row a
        step returns, as JSON, in order. A step that matches no row undoes the steps before
        it and refuses the rest (`StepRefused`; the request then fails as any refused write
        does). `last`: nothing follows the steps, so where the unit of work allows, the same
        message commits them (`_run_last`). Each step travels as its statement's text, run
        by `task_api_steps` in a subtransaction: a refusal is no error in the server's log."""
        texts: list[str] = []
        for index, step in enumerate(steps):
            statement, values = _unbound(step.statement, dict(step.values))
            _check(statement)
            values = {OWNER: self.user_id, **values}
            sql, params = render(self._conn, statement, values, f"s{index}_")
            reason = "NULL"
            if step.reason is not None:
                _check(step.reason)
                reason, reason_values = render(self._conn, step.reason, values, f"w{index}_")
                reason = f"({reason})"
                params.update(reason_values)
            params[f"p{index}"] = step.task_id
            texts.append(
                inline(
                    self._conn, _STEP.format(statement=sql, id=f"p{index}", reason=reason), params
                )
            )
        if last and can_finish(self._conn):
            rows = finish(
                self._conn, _RETURN.format(rows=_STEPS.removeprefix("SELECT ")), {"steps": texts}
            )
        else:
            rows = self._conn.exec_driver_sql(_STEPS, {"steps": texts}).scalar_one()
        refusal = notices(self._conn).refusal
        if refusal is not None and refusal.code == _STEP_REFUSED:
            missing = refusal.reason in (None, _STEP_MISSING)
            raise StepRefused(refusal.index or 0, None if missing else refusal.reason)
        if rows is None:  # refused before the steps ran: the entry's refusal is raised already
            raise RuntimeError("the steps ran in a refused request")
        result: list[dict[str, Any]] = rows
        return result

    def _run_ahead(self, statement: Any, **values: Any) -> None:
        """Run `statement`, whose rows nobody reads (it matters by its effect or its error),
        in the same message as the next `_run`, ahead of it (no round trip of its own). Only
        in a write's transaction."""
        statement, values = _unbound(statement, values)
        _check(statement)
        send_ahead(self._conn, statement, {OWNER: self.user_id, **values})

    def _run_at_commit(self, statement: Any, **values: Any) -> None:
        """Run `statement`, whose result nobody reads, as `_run` would, but in the message
        that commits the request's transaction (no round trip of its own); where no such
        message comes (a connection outside a signed-in caller's write), now."""
        statement, values = _unbound(statement, values)
        _check(statement)
        values = {OWNER: self.user_id, **values}
        if not defer_to_commit(self._conn, statement, values):
            self._conn.execute(statement, values)


# The statements found scoped (by object: the hot ones are built once), so a statement run
# again costs a lookup, not a tree walk.
_SCOPED: weakref.WeakSet[Any] = weakref.WeakSet()


def _check(statement: Any) -> None:
    if statement in _SCOPED:
        return
    problem = unscoped(statement)
    if problem is not None:
        raise Unscoped(problem)
    _SCOPED.add(statement)
