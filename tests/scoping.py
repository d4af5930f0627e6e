"""Every statement the app sends on behalf of a caller is scoped to that caller.

A SQLAlchemy cursor event sees every statement any engine in the test process sends. On a
connection serving a caller (the unit of work tags it with the `CALLER_KEY` execution
option), a statement that reads or writes a per-user table (every table of the metadata
with a `user_id` column) must carry the caller's `user_id` as a bound predicate
(`tasks.user_id = %(p)s` with `p` = the caller) once for each time it names the table,
and an INSERT must set `user_id` to the caller. `tests/conftest.py` fails the test during
which any other statement was sent. The same property is what lets `tasks` be
distributed by `user_id` (Citus): no request ever needs a second shard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (registers every table on the metadata)
from backend.services.unit_of_work import CALLER_KEY

# Derived, not listed: a new table with a `user_id` column is checked without editing this file.
SCOPED_TABLES = tuple(
    sorted(table.name for table in SQLModel.metadata.tables.values() if "user_id" in table.c)
)
_LOCALS = re.compile(r"^(?:\s*SET LOCAL [^;]*;)*\s*", re.IGNORECASE)
_INSERT = re.compile(
    r"^INSERT INTO (\w+)\s*\(([^)]*)\)\s*VALUES\s*\((.*?)\)(?:\s+(?:ON CONFLICT|RETURNING)|$)",
    re.IGNORECASE | re.DOTALL,
)

# How many statements were checked, and the unscoped ones since the last `take()`.
checked = 0
violations: list[str] = []


def _references(sql: str, table: str) -> dict[str, int]:
    """How many times the statement reads or writes `table` (FROM, JOIN, UPDATE, DELETE), by
    the name it is read as: the table's, or an alias (`FROM tasks AS child`)."""
    found: dict[str, int] = {}
    pattern = rf"\b(?:FROM|JOIN|UPDATE)\s+{table}\b(?:\s+AS\s+(\w+))?"
    for alias in re.findall(pattern, sql, re.IGNORECASE):
        name = alias or table
        found[name] = found.get(name, 0) + 1
    return found


def _scoped_predicates(sql: str, name: str, params: Mapping[str, Any], caller: str) -> int:
    bound = re.findall(rf"\b{name}\.user_id\s*=\s*%\((\w+)\)s", sql)
    return sum(1 for parameter in bound if params.get(parameter) == caller)


def problem(statement: str, params: Any, caller: str) -> str | None:
    """Why `statement` is not scoped to `caller`, or None when it is (or touches neither
    table)."""
    sql = _LOCALS.sub("", statement)
    params = params if isinstance(params, Mapping) else {}
    insert = _INSERT.match(sql)
    if insert is not None:
        table, columns, values = insert.groups()
        if table not in SCOPED_TABLES:
            return None
        names = [c.strip() for c in columns.split(",")]
        if "user_id" not in names:
            return f"INSERT INTO {table} without user_id"
        value = [v.strip() for v in values.split(",")][names.index("user_id")]
        bound = re.match(r"%\((\w+)\)s", value)
        if bound is None or params.get(bound.group(1)) != caller:
            return f"INSERT INTO {table} with a user_id that is not the caller's"
        return None
    for table in SCOPED_TABLES:
        for name, uses in _references(sql, table).items():
            if _scoped_predicates(sql, name, params, caller) < uses:
                return f"{table} read or written without `{name}.user_id = <caller>`"
    return None


def _check(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
    global checked
    caller = conn.get_execution_options().get(CALLER_KEY)
    if caller is None:
        return
    checked += 1
    found = problem(statement, params, caller)
    if found is not None:
        violations.append(f"{found}:\n{statement}")


def install() -> None:
    event.listen(Engine, "before_cursor_execute", _check)


def take() -> list[str]:
    found = list(violations)
    violations.clear()
    return found
