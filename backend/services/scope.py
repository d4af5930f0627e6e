"""The one place that scopes statements to the caller.

`owned` adds `<table>.user_id = :owner` to a statement; `Scoped._run` runs every statement of
a scoped service with `owner` bound to the service's caller. A row that belongs to someone
else is therefore indistinguishable from one that does not exist. tests/scoping.py checks
every statement a test run sends on a caller's connection.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import Connection, CursorResult, bindparam
from sqlalchemy.sql.elements import ColumnElement

# The bound parameter every scoped statement carries: the caller's id.
OWNER = "owner"


class _Filterable(Protocol):
    def where(self, *whereclause: Any) -> Self: ...


Stmt = TypeVar("Stmt", bound=_Filterable)


def owned(statement: Stmt, user_id: ColumnElement[Any]) -> Stmt:
    """`statement` restricted to the caller's rows (`user_id` is the table's owner column)."""
    return statement.where(user_id == bindparam(OWNER))


class Scoped:
    """A service over one caller's rows, on the unit of work's private connection."""

    def __init__(self, connection: Connection, user_id: str) -> None:
        self._conn = connection
        self.user_id = user_id

    def _run(self, statement: Any, **values: Any) -> CursorResult[Any]:
        """Every statement runs here, with `owner` bound to the caller."""
        return self._conn.execute(statement, {OWNER: self.user_id, **values})
