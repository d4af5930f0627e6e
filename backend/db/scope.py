"""The one place that scopes statements to the caller.

`owned` adds `<table>.user_id = :owner` to a statement (the caller's own rows); `access` is
the one access predicate of shared lists: the row is in the caller's space, or its list is one
the caller is a member of with a role that is enough (`list_id = ANY(ARRAY(<the caller's
memberships>))`, read once per statement: both arms are index lookups). `Scoped` sends every
statement of a scoped service with `owner` bound to its caller (last: nothing rebinds it); the
sender refuses an unscoped one (backend/db/scope_check.py). A row the caller may not reach is
therefore indistinguishable from one that does not exist.
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
    """The `column` (`list_id`, or the list owner's `user_id`) of the caller's memberships with
    one of `roles`, as an array read once per statement (an index-only scan of
    `ix_list_members_member_id_list_id`)."""
    from backend.models import ListMember

    m = ListMember.__table__.c  # type: ignore[attr-defined]
    # The roles are written into the SQL (our own constants): one plan for every caller.
    named: list[Any] = [literal_column(f"'{role}'") for role in roles]
    ids = select(m[column]).where(m.member_id == bindparam(OWNER), m.role.in_(named))
    type_ = BigInteger if column == "list_id" else Text
    return func.array(ids.scalar_subquery(), type_=ARRAY(type_))


# Whether the caller is a member of any list, evaluated by the planner (migration 0046): for a
# member of nothing, what it gates is planned as false (never costed), for a member as true.
MEMBER_PLANNED = func.task_api_member_planned(bindparam(OWNER, type_=Text), type_=Boolean)


def shared(table: Any, roles: tuple[str, ...]) -> ColumnElement[bool]:
    """The member arm of `access` alone: the row's list is one the caller is a member of with
    one of `roles`. The owners' ids beside it let the plan use an owner's `(user_id, list_id,
    ...)` indexes (they admit no row the lists would not). Gated on the caller being a member
    at all, so a member of nothing does not pay for planning it."""
    listed = table.c.id if _named(table) == "task_lists" else table.c.list_id
    return and_(
        MEMBER_PLANNED,
        listed == any_(_memberships(roles, "list_id")),
        table.c.user_id == any_(_memberships(roles, "user_id")),
    )


def if_member(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """`value` for a caller who is a member of some list, else NULL, decided while planning
    (`shared`'s gate): a subquery only a member's rows need is not planned for anyone else."""
    gated: ColumnElement[Any] = case((MEMBER_PLANNED, value))
    return gated


def members_only(statement: Any, name: str) -> Any:
    """`statement` (a SELECT only a member's rows can answer) behind `shared`'s gate, one query
    level above it: for a member of nothing the gate folds to false on the level's one
    relation (`name`), which PostgreSQL excludes before planning it (a gate inside would still
    plan its sort and limit over a false scan); for a member, a plain pass-through."""
    inner = statement.subquery(name)
    return (
        select(*(column(c.name, c.type) for c in inner.c)).select_from(inner).where(MEMBER_PLANNED)
    )


def caller_role(table: Any) -> ColumnElement[str]:
    """The caller's role in the list of a row of `table`: `owner` in its own space, else its
    membership's (NULL: none), read beside the row (why a write matched nothing: 403 or 404)."""
    from backend.models import ListMember

    mine = ListMember.__table__.alias("mine")  # type: ignore[attr-defined]
    listed = table.c.id if _named(table) == "task_lists" else table.c.list_id
    member = select(mine.c.role).where(
        mine.c.list_id == listed, mine.c.member_id == bindparam(OWNER)
    )
    role: ColumnElement[str] = case(
        (table.c.user_id == bindparam(OWNER), literal("owner")), else_=member.scalar_subquery()
    )
    return role


def access(table: Any, roles: tuple[str, ...]) -> ColumnElement[bool]:
    """The one access predicate: the row of `table` is in the caller's space, or in a list the
    caller is a member of with one of `roles` (`Role.at_least()`)."""
    return or_(table.c.user_id == bindparam(OWNER), shared(table, roles))


def space_locked(table: Any) -> ColumnElement[bool]:
    """A write's condition that takes the change lock of the row's space before the row's lock:
    the order the owner's own write takes them in, so the two cannot deadlock."""
    locked: ColumnElement[bool] = func.task_api_lock_space(table.c.user_id)
    return locked


def spaces_locked(space: Any) -> Any:
    """The statement that takes a write's change locks, the caller's and those of `space` (the
    owners' ids of the rows the write names), waiting for neither while holding the other
    (`task_api_lock_spaces`); sent ahead of the write instead of the caller's lock at entry
    (specs/events.md, "Lock order across spaces")."""
    spaces = (
        func.array_append(space, bindparam(OWNER))
        if isinstance(space.type, sqltypes.ARRAY)
        else postgresql.array([bindparam(OWNER), space])
    )
    return select(func.task_api_lock_spaces(spaces))


@dataclass(frozen=True)
class EachCaller:
    """A statement built for one caller, for many at once (`each_caller`): `callers`, their
    range (`owner`, the values, `n`: each caller's place in the arrays), and `page`, the
    statement LATERAL to it, to select from `callers.join(page, true())`."""

    callers: Any
    page: Any

    def joined(self) -> Any:
        return self.callers.join(self.page, true())


def each_caller(statement: Any, values: Mapping[str, Any], name: str = "each") -> EachCaller:
    """`statement`, built for one caller (`:owner`), for many in one statement (the live
    streams' reader): the range `callers` is `unnest` of bound arrays (`callers_owner`, and
    `callers_<name>` per name of `values`, its SQL type) `WITH ORDINALITY` (`n`); `statement`
    is LATERAL to it, `:owner` and those values read from the caller's row. The scope check
    accepts `callers.owner` as the caller in this shape only: every caller is a bound value."""
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
            # A gate for the planner (`shared`): for a caller known only as the statement runs
            # it decides nothing, and would cost a call per caller. True keeps the member arm,
            # whose memberships' arrays decide, as for a member (it only ever removes access).
            return true()
        return None

    page: Any = visitors.replacement_traverse(statement, {}, replace)
    return EachCaller(callers, page.lateral(name))


def _table_of(selectable: Any) -> Table | None:
    while isinstance(selectable, Alias):
        selectable = selectable.element
    return selectable if isinstance(selectable, Table) else None


def _named(table: Any) -> str | None:
    found = _table_of(table)
    return None if found is None else str(found.name)


@dataclass(frozen=True)
class Bound:
    """A statement built once for its shape, with the values this use binds (every `Scoped`
    method takes one): the same object each request, so its compiled form is looked up."""

    statement: Any
    values: Mapping[str, Any]


class Scoped:
    """A service over one caller's rows, sending through the unit of work's `Sender` (which
    checks every statement scoped), each bound to the caller (`owner`): `_read` and `_write`
    (the task service's own modes: backend/services/task_sending.py)."""

    def __init__(self, send: Sender, user_id: str) -> None:
        self._send = send
        self.user_id = user_id

    def _bind(self, statement: Any, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`statement` and its values with `owner`, the caller (last: no value rebinds it)."""
        if isinstance(statement, Bound):
            statement, values = statement.statement, {**statement.values, **values}
        return statement, {**values, OWNER: self.user_id}

    def _read(self, statement: Any, **values: Any) -> Rows:
        """Send a statement that only reads (an unscoped one is refused before it is sent)."""
        return self._send.read(*self._bind(statement, values))

    def _write(self, statement: Any, *, last: bool = False, **values: Any) -> Rows:
        """Send a write and return its rows. `last`: nothing follows it, so where the unit of
        work allows it commits the request in its own message (one round trip); after that
        only reads may follow."""
        # `_bind`, inline: a write's path is counted (tests/test_walk.py, PATCH <= 50).
        if isinstance(statement, Bound):
            statement, values = statement.statement, {**statement.values, **values}
        return self._send.write(statement, {**values, OWNER: self.user_id}, last=last)

    def _hold_commit(self) -> None:
        """Something this service adds after the route's write must commit with it: the
        write may not commit the request itself."""
        self._send.hold()

    def _ahead(self, statement: Any, **values: Any) -> None:
        """Send `statement`, whose rows nobody reads (it matters by its effect), in the same
        message as the next statement, ahead of it (the same transaction)."""
        self._send.ahead(*self._bind(statement, values))

    def _lock_spaces(self, statement: Any, *, first: bool = True, **values: Any) -> None:
        """The write's change locks are `statement`'s to take, ahead of the write in its message,
        instead of the caller's at entry. Not `first`: only where the write is the first."""
        self._send.locks_spaces(*self._bind(statement, values), first=first)

    def _at_commit(self, statement: Any, **values: Any) -> None:
        """Send `statement`, whose result nobody reads, in the message that commits the
        request's transaction; where no such message comes, now."""
        statement, values = self._bind(statement, values)
        if not self._send.at_commit(statement, values):
            self._send.write(statement, values)
