"""The one scope check: every statement the `Sender` sends, as compiled (`%(owner)s` is the
caller), parsed by pglast and cached by its text; one that fails raises `Unscoped` unsent
(docs/contributing, "How scoping is checked").

Each query level (CTE, subquery, UNION arm, JOIN, ...) that reads or writes a per-user table
scopes each name it reads it as by an AND-conjunct (not under OR/NOT) of its WHERE or ON: owned
(`<name>.user_id = :owner`) or one of the shapes `_scoped_by` and `_capabilities` accept (the
access predicate, a placement's space, a member's own rows, a capability by token); a SELECT
inside those is a level of its own. An INSERT sets `user_id` to the caller (`_insert_problem`);
only `changes_owner` statements may set it in an UPDATE. The same property lets `tasks` be
distributed by `user_id` (Citus).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from functools import cache, lru_cache
from typing import Any, TypeVar

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, SetOperation, SubLinkType
from pglast.parser import ParseError
from sqlalchemy.dialects import postgresql

# The bound parameter every scoped statement carries: the caller's id.
OWNER = "owner"
# The range of a statement for many callers (`scope.each_caller`): `callers.owner` is a caller.
CALLERS = "callers"
# The parameter number the caller's placeholder is parsed as (`_parseable`).
_CALLER = 1


class Unscoped(AssertionError):
    """A programming error: a statement not scoped to its caller was about to be sent."""


@cache
def scoped_tables() -> frozenset[str]:
    """Every per-user table: each table of the metadata with a `user_id` column."""
    from sqlmodel import SQLModel

    import backend.models  # noqa: F401  (registers every table on the metadata)

    return frozenset(t.name for t in SQLModel.metadata.tables.values() if "user_id" in t.c)


# The statements that may change a row's owner (`changes_owner`), by object.
_OWNER_CHANGES: weakref.WeakSet[Any] = weakref.WeakSet()


S = TypeVar("S")


def changes_owner(statement: S) -> S:
    """Mark `statement` as one that may set `user_id` (named in rules.py `OWNER_CHANGES`)."""
    _OWNER_CHANGES.add(statement)
    return statement


def check(sql: str, statement: Any) -> None:
    """Refuse (`Unscoped`) `statement` compiled as `sql` (pyformat, as sent) unless scoped."""
    found = problem(sql, statement in _OWNER_CHANGES)
    if found is not None:
        raise Unscoped(f"{found}:\n{sql}")


_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def unscoped(statement: Any, keys: tuple[str, ...] = ()) -> str | None:
    """Why `statement`, compiled as the sender does for the value names `keys`, is unscoped."""
    sql = str(statement.compile(dialect=_DIALECT, column_keys=list(keys)))
    return problem(sql, statement in _OWNER_CHANGES)


# A pyformat placeholder in compiled SQL (a literal `%` is compiled as `%%`).
_PLACEHOLDER = re.compile(r"(?<!%)%\((\w+)\)s")


def _parseable(sql: str) -> str:
    """`sql` with PostgreSQL's placeholders: the caller's `$1`, the others in order after it."""
    numbers = {OWNER: _CALLER}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    return _PLACEHOLDER.sub(number, sql).replace("%%", "%")


@lru_cache(maxsize=2048)
def problem(sql: str, owner_change: bool = False) -> str | None:
    """Why `sql` (as compiled; one or more statements) is unscoped; `owner_change`: it may set
    `user_id`."""
    try:
        statements = parse_sql(_parseable(sql))
    except ParseError as error:
        return f"not parsed ({error})"
    for raw in statements:
        many = _MANY.set(_each_caller(raw.stmt))
        try:
            found = _walk(raw.stmt, owner_change)
        finally:
            _MANY.reset(many)
        if found is not None:
            return found
    return None


# Whether the statement being walked is one for many callers (`_each_caller`).
_MANY: ContextVar[bool] = ContextVar("many_callers", default=False)


def _each_caller(statement: Any) -> bool:
    """Whether `statement` is a SELECT for many callers (`scope.each_caller`): its own FROM holds
    the statement's one `callers`, `unnest` of bound parameters only, first column `owner`."""
    if not isinstance(statement, ast.SelectStmt):
        return False
    named = [node for node in _nodes(statement) if _names_callers(node)]
    own: list[Any] = []
    _top_ranges(statement.fromClause, own)
    if len(named) != 1 or named[0] not in own:
        return False
    found = named[0]
    if not isinstance(found, ast.RangeFunction) or found.is_rowsfrom:
        return False
    functions = found.functions or ()
    if len(functions) != 1:
        return False
    call = functions[0][0]
    if not isinstance(call, ast.FuncCall) or [
        getattr(n, "sval", None) for n in call.funcname or ()
    ] not in (["unnest"], ["pg_catalog", "unnest"]):
        return False
    arguments = [_uncast(argument) for argument in call.args or ()]
    if not arguments or not all(
        isinstance(argument, ast.ParamRef) and argument.number != _CALLER for argument in arguments
    ):
        return False
    columns = [getattr(c, "sval", None) for c in getattr(found.alias, "colnames", None) or ()]
    return bool(columns) and columns[0] == OWNER


def _nodes(node: Any) -> Iterator[Any]:
    """`node` and every node under it (each item of a list too)."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from _nodes(item)
    elif isinstance(node, ast.Node):
        yield node
        for name in getattr(node, "__slots__", ()):
            yield from _nodes(getattr(node, name, None))


def _names_callers(node: Any) -> bool:
    """Whether `node` brings the name `callers` into a query (a table, alias, CTE, ...)."""
    if isinstance(node, ast.CommonTableExpr):
        return bool(node.ctename == CALLERS)
    if isinstance(node, ast.RangeVar) and node.relname == CALLERS:
        return True
    if isinstance(node, ast.RangeVar | ast.RangeSubselect | ast.RangeFunction | ast.JoinExpr):
        alias = node.alias
        return alias is not None and alias.aliasname == CALLERS
    return False


def _top_ranges(items: Any, found: list[Any]) -> None:
    """The ranges of a FROM list at its own level, through its JOINs."""
    for item in items or ():
        if isinstance(item, ast.JoinExpr):
            _top_ranges((item.larg, item.rarg), found)
        else:
            found.append(item)


# The function that runs a bulk operation's steps, each given as its statement's text.
_STEPS_FUNCTION = "task_api_steps"
_LEVELS = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)


def _walk(node: Any, owner_change: bool) -> str | None:
    """The first problem at any query level under `node`."""
    if isinstance(node, _LEVELS):
        found = _level_problem(node, owner_change)
        if found is not None:
            return found
    if (
        isinstance(node, ast.FuncCall)
        and getattr((node.funcname or [None])[-1], "sval", None) == _STEPS_FUNCTION
    ):
        arguments = [_uncast(argument) for argument in node.args or ()]
        if len(arguments) != 1 or not isinstance(arguments[0], ast.ParamRef):
            return f"{_STEPS_FUNCTION} with steps that are not bound (Scoped._steps renders them)"
    for child in _children(node):
        found = _walk(child, owner_change)
        if found is not None:
            return found
    return None


def _children(node: Any) -> Iterator[ast.Node]:
    """Every node directly below `node` (a node, or a tuple of them)."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from _children(item)
    elif isinstance(node, ast.Node):
        for name in getattr(node, "__slots__", ()):
            value = getattr(node, name, None)
            if isinstance(value, ast.Node):
                yield value
            elif isinstance(value, tuple | list):
                yield from _children(value)


def _level_problem(node: Any, owner_change: bool) -> str | None:
    """Why this query level reads or writes a per-user table unscoped, or None."""
    ranges: list[Any] = []
    conditions: list[Any] = []
    tables = scoped_tables()
    if isinstance(node, ast.InsertStmt):
        target: Any = node.relation
        conflict = node.onConflictClause
        if conflict is not None and _sets_owner(conflict.targetList) and not owner_change:
            return f"INSERT INTO {target.relname} ... DO UPDATE sets user_id"
        if target.relname in tables:
            return _insert_problem(node)
        return None
    if isinstance(node, ast.SelectStmt):
        _ranges(node.fromClause, ranges, conditions)
    elif isinstance(node, ast.UpdateStmt):
        if _sets_owner(node.targetList) and not owner_change:
            return (
                f"UPDATE {_name(node.relation)} sets user_id: only a statement named in "
                "backend/services/statements/rules.py OWNER_CHANGES may change a row's owner"
            )
        ranges.append(node.relation)
        _ranges(node.fromClause, ranges, conditions)
    elif isinstance(node, ast.DeleteStmt):
        ranges.append(node.relation)
        _ranges(node.usingClause, ranges, conditions)
    conditions.extend(_conjuncts(node.whereClause))
    single = _name(ranges[0]) if len(ranges) == 1 else None
    relations = {_name(r): str(r.relname) for r in ranges}
    owned = _owned_names(conditions, single, relations)
    owned |= _capabilities(conditions, single, relations)
    for reference in ranges:
        if reference.relname in tables and _name(reference) not in owned:
            return (
                f"{reference.relname} read or written without `{_name(reference)}.user_id = "
                ":owner` (or access) as an AND-conjunct"
            )
    return None


def _sets_owner(targets: Any) -> bool:
    return any(getattr(target, "name", None) == "user_id" for target in targets or ())


def _conjuncts(expression: Any) -> Iterator[Any]:
    """The AND-conjuncts of a WHERE/ON expression (an OR or NOT is one opaque conjunct)."""
    if isinstance(expression, ast.BoolExpr) and expression.boolop == BoolExprType.AND_EXPR:
        for argument in expression.args or ():
            yield from _conjuncts(argument)
    elif expression is not None:
        yield expression


def _uncast(node: Any) -> Any:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node


def _is_owner(node: Any) -> bool:
    """Whether `node` is the caller's placeholder, maybe cast, or (for many) `callers.owner`."""
    node = _uncast(node)
    if isinstance(node, ast.ParamRef):
        return bool(node.number == _CALLER)
    return _MANY.get() and _column(node) == (CALLERS, OWNER)


def _column(node: Any) -> tuple[str, ...] | None:
    if isinstance(node, ast.ColumnRef) and all(
        isinstance(f, ast.String) for f in node.fields or ()
    ):
        return tuple(str(f.sval) for f in node.fields or ())
    return None


def _ranges(items: Any, ranges: list[Any], conditions: list[Any]) -> None:
    """The tables a FROM/USING list reads at this level, and its JOIN ... ON conditions."""
    for item in items or ():
        if isinstance(item, ast.RangeVar):
            ranges.append(item)
        elif isinstance(item, ast.JoinExpr):
            _ranges((item.larg, item.rarg), ranges, conditions)
            conditions.extend(_conjuncts(item.quals))


def _name(reference: Any) -> str:
    return str(reference.alias.aliasname if reference.alias is not None else reference.relname)


def _selects(node: Any, table: str | None, column: str, sublink: SubLinkType) -> bool:
    """Whether `node` is a `sublink` selecting `column` alone of one table (None: per-user)."""
    if not isinstance(node, ast.SubLink) or node.subLinkType != sublink:
        return False
    ranges: list[Any] = []
    _ranges(getattr(node.subselect, "fromClause", None), ranges, [])
    targets: Any = getattr(node.subselect, "targetList", None) or ()
    selected = _column(targets[0].val) if len(targets) == 1 else None
    if len(ranges) != 1 or selected is None or selected[-1] != column:
        return False
    return ranges[0].relname in scoped_tables() if table is None else ranges[0].relname == table


# The tables scoped by `member_id` (a membership's member, a member's own reminders).
_MEMBER_TABLES = ("list_members", "task_member_reminders")


def _owned_names(conjuncts: list[Any], single: str | None, relations: dict[str, str]) -> set[str]:
    """The range names the conjuncts scope (`single`: what an unqualified column means)."""
    found = (_scoped_by(node, single, relations) for node in conjuncts)
    return {name for name in found if name is not None}


def _scoped_by(node: Any, single: str | None, relations: dict[str, str]) -> str | None:
    """The name one conjunct scopes: owned, `member_id` on `_MEMBER_TABLES`, a `_space`, the
    member arm (`ANY` of `_memberships`; the owners' array beside it scopes nothing alone), or
    an OR of those all of one name (the access predicate); in an AND, one arm is enough."""
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.OR_EXPR:
        arms = {_scoped_by(arm, single, relations) for arm in node.args or ()}
        return arms.pop() if len(arms) == 1 and None not in arms else None
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        found = (_scoped_by(arm, single, relations) for arm in node.args or ())
        return next((name for name in found if name is not None), None)
    if not isinstance(node, ast.A_Expr) or [getattr(n, "sval", None) for n in node.name or ()] != [
        "="
    ]:
        return None
    if node.kind == A_Expr_Kind.AEXPR_OP_ANY:
        fields = _column(node.lexpr)
        name = (fields[-2] if len(fields) >= 2 else single) if fields else None
        listed = "id" if relations.get(name or "") == "task_lists" else "list_id"
        if fields is None or fields[-1] != listed or not _memberships(node.rexpr):
            return None
        return name
    if node.kind != A_Expr_Kind.AEXPR_OP:
        return None
    for column, value in ((node.lexpr, node.rexpr), (node.rexpr, node.lexpr)):
        fields = _column(column)
        if fields is None or fields[-1] not in ("user_id", "member_id"):
            continue
        name = fields[-2] if len(fields) >= 2 else single
        if fields[-1] == "member_id" and relations.get(name or "") not in _MEMBER_TABLES:
            continue
        if _is_owner(value) or _feed_creator(value) or (fields[-1] == "user_id" and _space(value)):
            return name
    return None


def _memberships(node: Any) -> bool:
    """Whether `node` is `ARRAY(<a SELECT of list_id from list_members>)`."""
    return _selects(node, "list_members", "list_id", SubLinkType.ARRAY_SUBLINK)


def _space(node: Any) -> bool:
    """Whether `node` is a placement's space: `coalesce((SELECT x.user_id ...), :owner)`."""
    node = _uncast(node)
    if not isinstance(node, ast.CoalesceExpr) or len(node.args or ()) != 2:
        return False
    first, second = node.args or (None, None)
    return _is_owner(second) and _selects(first, None, "user_id", SubLinkType.EXPR_SUBLINK)


# The rows a token (its hash) is the capability for.
_TOKENS = (
    ("list_invitations", "token_hash"),
    ("calendar_feeds", "token_hash"),
    ("app_passwords", "token_hash"),
)


def _feed_creator(node: Any) -> bool:
    """Whether `node` is a calendar feed's creator, `(SELECT user_id FROM calendar_feeds ...)`:
    a feed reads as its creator (that SELECT is scoped by the feed's token)."""
    return _selects(_uncast(node), "calendar_feeds", "user_id", SubLinkType.EXPR_SUBLINK)


def _capabilities(conditions: list[Any], single: str | None, relations: dict[str, str]) -> set[str]:
    """The names scoped by a capability conjunct: a token's row by `token_hash = :<bind>`
    (`_TOKENS`), a member's lists by `user_id = (SELECT member_id FROM list_members ...)`."""
    names: set[str] = set()
    for node in conditions:
        if not isinstance(node, ast.A_Expr) or node.kind != A_Expr_Kind.AEXPR_OP:
            continue
        if [getattr(n, "sval", None) for n in node.name or ()] != ["="]:
            continue
        fields = _column(node.lexpr)
        if fields is None:
            continue
        name = fields[-2] if len(fields) >= 2 else single
        relation = relations.get(name or "")
        if (relation, fields[-1]) in _TOKENS:
            bound = isinstance(_uncast(node.rexpr), ast.ParamRef)
        elif (relation, fields[-1]) == ("task_lists", "user_id"):
            bound = _selects(node.rexpr, "list_members", "member_id", SubLinkType.EXPR_SUBLINK)
        else:
            bound = False
        if bound:
            names.add(str(name))
    return names


def _joins(statement: Any) -> bool:
    """Whether an INSERT into `list_members` inserts the caller's memberships only (it joins)."""
    names = [target.name for target in statement.cols or ()]
    source = statement.selectStmt
    if statement.relation.relname != "list_members" or "member_id" not in names:
        return False
    if not isinstance(source, ast.SelectStmt) or source.op != SetOperation.SETOP_NONE:
        return False
    at = names.index("member_id")
    if source.valuesLists:
        return all(_is_owner(row[at]) for row in source.valuesLists)
    targets = source.targetList or ()
    return at < len(targets) and _is_owner(targets[at].val)


def _insert_problem(statement: Any) -> str | None:
    """Unless the caller joins, `user_id` is `:owner`, a space or a scoped range's, in every row."""
    table = statement.relation.relname
    if _joins(statement):
        return None
    names = [target.name for target in statement.cols or ()]
    if "user_id" not in names:
        return f"INSERT INTO {table} without user_id"
    position = names.index("user_id")
    source = statement.selectStmt
    wrong = f"INSERT INTO {table} with a user_id that is not :owner"
    if not isinstance(source, ast.SelectStmt) or source.op != SetOperation.SETOP_NONE:
        return wrong
    if source.valuesLists:
        if any(not _is_owner(row[position]) for row in source.valuesLists):
            return wrong
        return None
    targets = source.targetList or ()
    if position >= len(targets):
        return wrong
    value = targets[position].val
    if _is_owner(value) or _space(value):
        return None
    fields = _column(_uncast(value))
    ranges: list[Any] = []
    _ranges(source.fromClause, ranges, [])
    scoped = {_name(r) for r in ranges if r.relname in scoped_tables()}
    if fields is not None and fields[-1] == "user_id":
        if len(fields) >= 2 and fields[-2] in scoped:
            return None
        if len(fields) == 1 and len(ranges) == 1 and scoped:
            return None
    return wrong
