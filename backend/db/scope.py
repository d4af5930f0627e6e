"""The one place that scopes statements to the caller: `owned` (the caller's rows), `access`
(the predicate of shared lists: the caller's space, or a list it is a member of with a role
that is enough) and `Scoped`, which binds `owner` last; the sender refuses an unscoped
statement (scope_check.py), so a row the caller may not reach reads as a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import sqltypes, visitors
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import Alias

# The bound parameter every scoped statement carries, the caller's id (the check's too).
from backend.db.scope_check import CALLERS
from backend.db.scope_check import OWNER as OWNER
from backend.db.sender import Rows, Sender


class _Filterable(Protocol):
    def where(self, *whereclause: Any) -> Self: ...


Stmt = TypeVar("Stmt", bound=_Filterable)


def owned(statement: Stmt, user_id: ColumnElement[Any]) -> Stmt:
    """`statement` restricted to the caller's rows (`user_id` is the table's owner column)."""
    return statement.where(user_id == bindparam(OWNER))


@cache
def _memberships(roles: tuple[str, ...], column: str) -> Any:
    """The `column` of the caller's memberships with one of `roles`, as an array read once per
    statement (an index-only scan)."""
    from backend.models import ListMember

    m = ListMember.__table__.c  # type: ignore[attr-defined]
    # The roles are written into the SQL (our own constants): one plan for every caller.
    named: list[Any] = [literal_column(f"'{role}'") for role in roles]
    ids = select(m[column]).where(m.member_id == bindparam(OWNER), m.role.in_(named))
    type_ = BigInteger if column == "list_id" else Text
    return func.array(ids.scalar_subquery(), type_=ARRAY(type_))


# Whether the caller is a member of any list, decided by the planner: false is never costed.
MEMBER_PLANNED = func.task_api_member_planned(bindparam(OWNER, type_=Text), type_=Boolean)


def shared(table: Any, roles: tuple[str, ...]) -> ColumnElement[bool]:
    """The member arm of `access` alone; the owners' ids beside it let the plan use an owner's
    `(user_id, list_id, ...)` indexes; gated so a member of nothing does not plan it."""
    listed = table.c.id if _named(table) == "task_lists" else table.c.list_id
    return and_(
        MEMBER_PLANNED,
        listed == any_(_memberships(roles, "list_id")),
        table.c.user_id == any_(_memberships(roles, "user_id")),
    )


def if_member(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """`value` for a caller who is a member of some list, else NULL, decided while planning
    (`shared`'s gate): a subquery only a member's rows need is not planned for anyone else."""
    return case((MEMBER_PLANNED, value))


def members_only(statement: Any, name: str) -> Any:
    """`statement` (only a member's rows answer it) behind `shared`'s gate one level above it:
    PostgreSQL then excludes the level unplanned (a gate inside would still plan its sort)."""
    inner = statement.subquery(name)
    return (
        select(*(column(c.name, c.type) for c in inner.c)).select_from(inner).where(MEMBER_PLANNED)
    )


def caller_role(table: Any) -> ColumnElement[str]:
    """The caller's role in a row's list (NULL: none), read beside the row: 403 or 404."""
    from backend.models import ListMember

    mine = ListMember.__table__.alias("mine")  # type: ignore[attr-defined]
    listed = table.c.id if _named(table) == "task_lists" else table.c.list_id
    member = select(mine.c.role).where(
        mine.c.list_id == listed, mine.c.member_id == bindparam(OWNER)
    )
    return case(
        (table.c.user_id == bindparam(OWNER), literal("owner")), else_=member.scalar_subquery()
    )


def access(table: Any, roles: tuple[str, ...]) -> ColumnElement[bool]:
    """The one access predicate: the caller's space, or a list it is a member of with `roles`."""
    return or_(table.c.user_id == bindparam(OWNER), shared(table, roles))


def space_locked(table: Any) -> ColumnElement[bool]:
    """A write's condition that takes the change lock of the row's space before the row's lock:
    the order the owner's own write takes them in, so the two cannot deadlock."""
    return func.task_api_lock_space(table.c.user_id)


def spaces_locked(space: Any) -> Any:
    """The statement taking the change locks of the caller and `space` together, never one while
    waiting for the other (specs/events.md, "Lock order across spaces")."""
    spaces = (
        func.array_append(space, bindparam(OWNER))
        if isinstance(space.type, sqltypes.ARRAY)
        else postgresql.array([bindparam(OWNER), space])
    )
    return select(func.task_api_lock_spaces(spaces))


@dataclass(frozen=True)
class EachCaller:
    """`each_caller`'s: the range `callers` (`owner`, the values, `n`) and `page` LATERAL to it."""

    callers: Any
    page: Any

    def joined(self) -> Any:
        return self.callers.join(self.page, true())


def each_caller(statement: Any, values: Mapping[str, Any], name: str = "each") -> EachCaller:
    """`statement`, built for one caller, for many (the live streams' reader): `callers` is
    `unnest` of bound arrays (`callers_owner`, `callers_<name>` per `values`) WITH ORDINALITY,
    `:owner` and the values read from its row (the only shape the scope check takes it in)."""
    arrays: list[Any] = [cast(bindparam(f"{CALLERS}_{OWNER}"), ARRAY(Text))]
    columns: list[Any] = [column(OWNER, Text)]
    for key, type_ in values.items():
        arrays.append(cast(bindparam(f"{CALLERS}_{key}"), ARRAY(type_)))
        columns.append(column(key, type_))
    callers = (
        func.unnest(*arrays)
        .table_valued(*columns, with_ordinality="n")
        .render_derived(name=CALLERS)
    )
    # Read from the caller's row: a column by its text, so no FROM is added for it.
    read = {key: literal_column(f"{CALLERS}.{key}", type_) for key, type_ in values.items()}
    read[OWNER] = literal_column(f"{CALLERS}.{OWNER}", Text)

    def replace(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in read:
            return read[element.key]
        if element is MEMBER_PLANNED:
            # Callers are known only as it runs: the memberships' arrays decide, as for a member.
            return true()
        return None

    page: Any = visitors.replacement_traverse(statement, {}, replace)
    return EachCaller(callers, page.lateral(name))


def _named(table: Any) -> str | None:
    while isinstance(table, Alias):
        table = table.element
    return str(table.name) if isinstance(table, Table) else None


@dataclass(frozen=True)
class Bound:
    """A statement built once (its compiled form looked up), with the values this use binds."""

    statement: Any
    values: Mapping[str, Any]


class Scoped:
    """A service over one caller's rows, sending through the unit of work's `Sender`."""

    def __init__(self, send: Sender, user_id: str) -> None:
        self._send = send
        self.user_id = user_id

    def _bind(self, statement: Any, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`statement` and its values with `owner`, the caller (last: no value rebinds it)."""
        if isinstance(statement, Bound):
            statement, values = statement.statement, {**statement.values, **values}
        return statement, {**values, OWNER: self.user_id}

    def _read(self, statement: Any, *, last: bool = False, **values: Any) -> Rows:
        """Send a statement that only reads (an unscoped one is refused before it is sent); `last`:
        the request's first message commits the caller's entry with it (no transaction held)."""
        return self._send.read(*self._bind(statement, values), last=last)

    def _write(self, statement: Any, *, last: bool = False, **values: Any) -> Rows:
        """Send a write; `last`: nothing follows, so it may commit the request in its message."""
        # `_bind`, inline: a write's path is counted (tests/test_walk.py, PATCH <= 50).
        if isinstance(statement, Bound):
            statement, values = statement.statement, {**statement.values, **values}
        return self._send.write(statement, {**values, OWNER: self.user_id}, last=last)

    def _next_transaction(self) -> None:
        """Where a statement committed the request, the next begins a further transaction (its
        entry uncounted); else nothing."""
        if self._send.can_begin_again:
            self._send.begin_again()

    def _hold_commit(self) -> None:
        """What this service adds after the route's write commits with it."""
        self._send.hold()

    def _ahead(self, statement: Any, **values: Any) -> None:
        """Send `statement` (rows unread) in the next statement's message, ahead of it."""
        self._send.ahead(*self._bind(statement, values))

    def _lock_spaces(self, statement: Any, *, first: bool = True, **values: Any) -> None:
        """`statement` takes the write's change locks ahead of it, not the caller's at entry."""
        self._send.locks_spaces(*self._bind(statement, values), first=first)

    def _at_commit(self, statement: Any, **values: Any) -> None:
        """Send `statement` (rows unread) with the request's COMMIT, or now if none comes."""
        statement, values = self._bind(statement, values)
        if not self._send.at_commit(statement, values):
            self._send.write(statement, values)
