"""The one place that scopes statements to the caller.

`owned` adds `<table>.user_id = :owner` to a statement (the caller's own rows); `access` is
the one access predicate of shared lists: the row is in the caller's space (`user_id =
:owner`), or its list is one the caller is a member of with a role that is enough (`list_id =
ANY(ARRAY(<the caller's memberships with those roles>))`, an array read once per statement,
so both arms are index lookups). `Scoped` sends every statement of a scoped service with
`owner` bound to the service's caller, and refuses (`Unscoped`) a statement that touches a
per-user table (every table of the metadata with a `user_id` column) without one of those
predicates, or inserts a row whose `user_id` is not `:owner`. Three narrower shapes of shared
lists count too, each for one table only: an invitation by its token's hash (`_capability`),
a membership inserted for the caller itself (`_joins`), and a member's lists read through its
membership of the caller's list (`_members_lists`); tests/scoping.py accepts the same. A row
the caller may not reach is therefore indistinguishable from one that does not exist.
tests/scoping.py also checks every statement a test run sends on a caller's connection.
"""

from __future__ import annotations

import operator
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import (
    BigInteger,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import operators, sqltypes, visitors
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

from backend.db.sender import Rows, Sender

# The bound parameter every scoped statement carries: the caller's id.
OWNER = "owner"


class _Filterable(Protocol):
    def where(self, *whereclause: Any) -> Self: ...


Stmt = TypeVar("Stmt", bound=_Filterable)


def owned(statement: Stmt, user_id: ColumnElement[Any]) -> Stmt:
    """`statement` restricted to the caller's rows (`user_id` is the table's owner column)."""
    return statement.where(user_id == bindparam(OWNER))


# `list_members`' column of the member (its `user_id` is the list owner's, as every row of a
# shared list's): a caller's own memberships are read by it, and its own reminders on a
# shared list's task (`task_member_reminders`, migration 0034).
MEMBER = "member_id"
MEMBERSHIPS = "list_members"
MEMBER_REMINDERS = "task_member_reminders"
_MEMBER_TABLES = (MEMBERSHIPS, MEMBER_REMINDERS)


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


def shared(table: Any, roles: tuple[str, ...]) -> ColumnElement[bool]:
    """The member arm of `access` alone: the row's list is one the caller is a member of with
    one of `roles`. The list decides; the owners' ids beside it let the plan use the same
    `(user_id, list_id, ...)` indexes an owner's reads use (a list's rows are in its owner's
    space: the two arrays never admit a row the lists alone would not)."""
    listed = table.c.id if _named(table) == "task_lists" else table.c.list_id
    return and_(
        listed == any_(_memberships(roles, "list_id")),
        table.c.user_id == any_(_memberships(roles, "user_id")),
    )


def caller_role(table: Any) -> ColumnElement[str]:
    """The caller's role in the list of a row of `table`: `owner` in its own space, else its
    membership's (NULL: none). Read beside the row, where a write that matched nothing asks
    why (403 or 404) and where a list is handed out with the caller's `role`."""
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
    """The one access predicate: the row of `table` (tasks, lists, comments, memberships,
    invitations) is in the caller's space, or in a list the caller is a member of with one of
    `roles` (`Role.at_least()`)."""
    return or_(table.c.user_id == bindparam(OWNER), shared(table, roles))


def space_locked(table: Any) -> ColumnElement[bool]:
    """A write's condition that takes the change lock of the row's space (its `user_id`)
    before the row is locked (migration 0033): a member writing in an owner's space takes the
    two locks in the order the owner's own write does, so the two cannot deadlock."""
    locked: ColumnElement[bool] = func.task_api_lock_space(table.c.user_id)
    return locked


def spaces_locked(space: Any) -> Any:
    """The statement that takes a write's change locks, the caller's and those of `space`
    (the owner's id, or an array of owners' ids, of the rows the write names, read with the
    access predicate: NULL, or the caller's own, where it is no member), waiting for neither
    while it holds the other (`task_api_lock_spaces`, migration 0036). Sent ahead of the
    write by `Scoped._lock_spaces`, instead of the caller's lock at entry: a member's write
    that took the caller's at entry and the owner's in its statement could deadlock with the
    owner's write, as a member, in one of the caller's lists (specs/events.md, "Lock order
    across spaces")."""
    spaces = (
        func.array_append(space, bindparam(OWNER))
        if isinstance(space.type, sqltypes.ARRAY)
        else postgresql.array([bindparam(OWNER), space])
    )
    return select(func.task_api_lock_spaces(spaces))


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
    """The table a conjunct scopes to the caller, or None: `<table>.user_id = :owner` (a
    membership's or a member's reminders' `member_id = :owner` too), the member arm `shared`
    (its `list_id` compared with the caller's memberships' list ids), or `access` (an OR whose
    arms are those, all of one table). Within an AND, one conjunct that scopes is enough."""
    if isinstance(conjunct, BooleanClauseList) and conjunct.operator is operators.or_:
        tables = {_owner_of(arm) for arm in conjunct.clauses}
        return tables.pop() if len(tables) == 1 and None not in tables else None
    if isinstance(conjunct, BooleanClauseList) and conjunct.operator is operators.and_:
        return next((t for t in map(_owner_of, conjunct.clauses) if t is not None), None)
    if not isinstance(conjunct, BinaryExpression) or conjunct.operator is not operator.eq:
        return None
    name = getattr(conjunct.left, "name", None)
    table = getattr(conjunct.left, "table", None)
    if _is_owner(conjunct.right) or (name == "user_id" and is_space(conjunct.right)):
        if name == "user_id" or (name == MEMBER and _named(table) in _MEMBER_TABLES):
            return table
        return None
    if _capability(name, table, conjunct.right) or _members_lists(name, table, conjunct.right):
        return table
    listed = "id" if _named(table) == "task_lists" else "list_id"
    return table if name == listed and _member_arm(conjunct.right) else None


# An invitation is reached by its token: `list_invitations.token_hash = :<bind>` (the SHA-256 of
# a token the caller holds) scopes it as `user_id = :owner` would; nothing else of
# `list_invitations` does (an id alone is refused).
INVITATIONS = "list_invitations"
TOKEN_HASH = "token_hash"  # noqa: S105  (a column's name)


def _capability(name: Any, table: Any, right: Any) -> bool:
    """Whether the conjunct is `list_invitations.token_hash = :<bind>`: the invitation whose
    token the caller holds (`POST /api/invitations/accept`)."""
    return name == TOKEN_HASH and _named(table) == INVITATIONS and isinstance(right, BindParameter)


def _members_lists(name: Any, table: Any, right: Any) -> bool:
    """Whether the conjunct is `task_lists.user_id = (SELECT member_id FROM list_members
    WHERE ...)`: the lists of a member of the caller's list, whose ownership it is about to
    take (a transfer reads how many it has, where its last one is and whether one has the
    name: `MemberService.transfer`). The subquery is a query level of its own, checked scoped
    like any other (its `list_members` by `user_id = :owner`)."""
    if name != "user_id" or _named(table) != "task_lists":
        return False
    inner = getattr(right, "element", None)
    if not isinstance(inner, Select) or len(inner.selected_columns) != 1:
        return False
    froms = inner.get_final_froms()
    selected = getattr(next(iter(inner.selected_columns)), "name", None)
    return len(froms) == 1 and _named(froms[0]) == MEMBERSHIPS and selected == MEMBER


def is_space(element: Any) -> bool:
    """Whether `element` is a space a placement writes in (backend/services/task_tree.py
    `_space`): `coalesce((SELECT x.user_id FROM <a per-user table> x WHERE ...), :owner)`. The
    SELECT is a query level of its own, checked scoped like any other, so the owner id it
    yields is one the caller may reach."""
    clauses = list(element.clauses) if getattr(element, "name", None) == "coalesce" else []
    if len(clauses) != 2 or not _is_owner(clauses[1]):
        return False
    inner = getattr(clauses[0], "element", None)
    if not isinstance(inner, Select) or len(inner.selected_columns) != 1:
        return False
    chosen = next(iter(inner.selected_columns))
    table = _table_of(getattr(chosen, "table", None))
    return (
        getattr(chosen, "name", None) == "user_id"
        and table is not None
        and table.name in scoped_tables()
    )


def _named(table: Any) -> str | None:
    found = _table_of(table)
    return None if found is None else str(found.name)


def _member_arm(right: Any) -> bool:
    """Whether `right` is `ANY(ARRAY(<a SELECT from list_members>))`: the member arm, whose
    SELECT is checked scoped (by `member_id = :owner`) as any other."""
    array = getattr(right, "element", None)
    if array is None or getattr(array, "name", None) != "array":
        return False
    clauses = list(array.clauses)
    inner = getattr(clauses[0], "element", None) if len(clauses) == 1 else None
    if not isinstance(inner, Select) or len(inner.selected_columns) != 1:
        return False
    froms = inner.get_final_froms()
    selected = getattr(next(iter(inner.selected_columns)), "name", None)
    return len(froms) == 1 and _named(froms[0]) == MEMBERSHIPS and selected == "list_id"


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
            if isinstance(element, Alias):
                # The walk goes on into the alias to its table: that is the alias's use, not
                # one of the table's own (an alias is scoped by its own name).
                uses[table] = uses.get(table, 0) - 1
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
            if not _inserts_owner(insert) and not _joins(insert):
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
        if _is_owner(chosen) or is_space(chosen):
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


def _joins(statement: Insert) -> bool:
    """Whether `statement` inserts memberships of the caller only: `list_members` rows whose
    `member_id` is `:owner` in every row (a SELECT's column, or each VALUES row's). Such a row
    is in its list owner's space (`user_id` is the owner's, not the caller's): the caller
    joins a list, which only an invitation it holds allows (`InvitationService.accept` takes
    the row's list from the invitation it deletes by its token's hash)."""
    if statement.table.name != MEMBERSHIPS:
        return False
    sql = str(statement.compile(dialect=_DIALECT))
    head = next((m for m in _INSERT_COLUMNS.finditer(sql) if _depth(sql[: m.start()]) == 0), None)
    names = [] if head is None else [n.strip().strip('"') for n in head.group(1).split(",")]
    if head is None or MEMBER not in names:
        return False
    at = names.index(MEMBER)
    if statement.select is not None:
        return _is_owner(list(statement.select.selected_columns)[at])
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


# `_write(..., then=)`: statements that write from the write's rows (`w`) in its statement.
_WRITE_THEN = "w AS ({sql}), {thens}r AS (SELECT * FROM w)"


@dataclass(frozen=True)
class Then:
    """A statement that writes after a write: as a CTE reading the write's rows (`w`), for a
    write that commits in its own message, or `alone` (reading the stored rows), queued for
    the COMMIT."""

    from_write: Bound
    alone: Bound


class Scoped:
    """A service over one caller's rows, sending through the unit of work's `Sender`: every
    statement is checked scoped (`_check`) and bound to the caller (`owner`). Two ways to
    send: `_read` and `_write`."""

    def __init__(self, send: Sender, user_id: str) -> None:
        self._send = send
        self.user_id = user_id

    def _bind(self, statement: Any, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`statement` checked scoped (refused before it is sent), its values with `owner`."""
        if isinstance(statement, Bound):
            statement, values = statement.statement, {**statement.values, **values}
        if statement not in _SCOPED:
            _check(statement)
        return statement, {OWNER: self.user_id, **values}

    def _read(self, statement: Any, **values: Any) -> Rows:
        """Send a statement that only reads; an unscoped one is refused before it is sent."""
        return self._send.read(*self._bind(statement, values))

    def _write(
        self,
        statement: Any,
        *,
        last: bool = False,
        then: Then | tuple[Then, ...] | None = None,
        **values: Any,
    ) -> Rows:
        """Send a write and return its rows. `last`: nothing follows it, so where the unit of
        work allows it commits the request in its own message (one round trip); after that
        only reads may follow. `then`: a statement that writes after it (a recurring task's
        next occurrence), from its rows in the same statement when it commits here, else
        with the COMMIT (several: in their order)."""
        # `_bind`, inline: a write's path is counted (tests/test_walk.py, PATCH <= 50).
        if isinstance(statement, Bound):
            statement, values = statement.statement, {**statement.values, **values}
        if statement not in _SCOPED:
            _check(statement)
        values = {OWNER: self.user_id, **values}
        if then is None:
            return self._send.write(statement, values, last=last)
        thens = (then,) if isinstance(then, Then) else then
        if last and self._send.can_finish:
            parts: dict[str, Any] = {}
            then_values: dict[str, Any] = {}
            for index, each in enumerate(thens):
                parts[f"t{index}"], bound = self._bind(each.from_write, {})
                then_values.update(bound)
            ctes = "".join(f"t{index} AS ({{t{index}}}), " for index in range(len(thens)))
            around = (_WRITE_THEN.replace("{thens}", ctes), parts, then_values)
            return self._send.write(statement, values, last=True, around=around)
        rows = self._send.write(statement, values)
        for each in thens:
            self._at_commit(each.alone)
        return rows

    def _hold_commit(self) -> None:
        """Something this service adds after the route's write must commit with it: the
        write may not commit the request itself."""
        self._send.hold()

    def _ahead(self, statement: Any, **values: Any) -> None:
        """Send `statement`, whose rows nobody reads (it matters by its effect), in the same
        message as the next statement, ahead of it (the same transaction)."""
        self._send.ahead(*self._bind(statement, values))

    def _lock_spaces(self, statement: Any, *, first: bool = True, **values: Any) -> None:
        """The write's change locks are `statement`'s to take (`task_api_lock_spaces`, migration
        0036), ahead of the write in its message, instead of the caller's at entry. Not
        `first`: only where the write is the request's first (else its locks are taken)."""
        self._send.locks_spaces(*self._bind(statement, values), first=first)

    def _at_commit(self, statement: Any, **values: Any) -> None:
        """Send `statement`, whose result nobody reads, in the message that commits the
        request's transaction; where no such message comes, now."""
        statement, values = self._bind(statement, values)
        if not self._send.at_commit(statement, values):
            self._send.write(statement, values)


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
