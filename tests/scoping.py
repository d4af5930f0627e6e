"""Every statement the app sends on behalf of a caller is scoped to that caller.

A SQLAlchemy cursor event sees every statement any engine in the test process sends. On a
connection serving a caller (the unit of work tags it with the `CALLER_KEY` execution
option), the statement is rendered with its parameters (`cursor.mogrify`) and parsed by
PostgreSQL's own parser (pglast, libpg_query); every statement of the message is checked.
Every query level (the statement, each CTE including data-modifying ones, subqueries, UNION
arms, the SELECT of an `INSERT ... SELECT`, `UPDATE ... FROM`, `DELETE ... USING`, JOINs)
that reads or writes a per-user table (every table of the metadata with a `user_id` column)
must carry `<name>.user_id = '<caller>'` among the AND-conjuncts of its own WHERE or JOIN ...
ON for each name it reads the table as; a predicate under OR or NOT does not count. An INSERT
into a per-user table must set `user_id` to the caller in every VALUES row, or select the
caller (or a scoped reference's `user_id`) at that position. The steps of a bulk operation
travel as the text elements of `task_api_steps(ARRAY[...])`: each is parsed and checked too.
`tests/conftest.py` fails the test during which any other statement was sent. The same property
is what lets `tasks` be distributed by `user_id` (Citus): no request ever needs a second shard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, SetOperation, SubLinkType
from pglast.parser import ParseError
from sqlalchemy import Engine, event
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (registers every table on the metadata)
from backend.services.registry import CALLER_KEY

# Derived, not listed: a new table with a `user_id` column is checked without editing this file.
SCOPED_TABLES = tuple(
    sorted(table.name for table in SQLModel.metadata.tables.values() if "user_id" in table.c)
)
# The function that runs a bulk operation's steps, each given as its statement's text.
_STEPS_FUNCTION = "task_api_steps"
_LEVELS = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)

# How many statements were checked, and the unscoped ones since the last `take()`.
checked = 0
violations: list[str] = []


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


def _conjuncts(expression: Any) -> Iterator[Any]:
    """The AND-conjuncts of a WHERE/ON expression (an OR or NOT is one opaque conjunct)."""
    if isinstance(expression, ast.BoolExpr) and expression.boolop == BoolExprType.AND_EXPR:
        for argument in expression.args or ():
            yield from _conjuncts(argument)
    elif expression is not None:
        yield expression


def _string(node: Any) -> str | None:
    """The value of a string constant, possibly cast (`'alice-id'::VARCHAR`)."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return str(node.val.sval)
    return None


def _column(node: Any) -> tuple[str, ...] | None:
    if isinstance(node, ast.ColumnRef) and all(
        isinstance(f, ast.String) for f in node.fields or ()
    ):
        return tuple(str(f.sval) for f in node.fields or ())
    return None


def _owned_names(
    conjuncts: list[Any], caller: str, single: str | None, relations: dict[str, str]
) -> set[str]:
    """The names the conjuncts scope to `caller` (`single`: the level's only range name, which
    an unqualified column means): `<name>.user_id = '<caller>'` (`list_members` and
    `task_member_reminders` also by their `member_id`, no other table: backend/db/scope.py
    `_MEMBER_TABLES`), the member arm `<name>.list_id = ANY(ARRAY(<a SELECT from
    list_members>))` (that SELECT is a level of its own, checked scoped), or an OR of those,
    all of one name (the access predicate, backend/db/scope.py `access`); `relations`: each
    range name's table (`task_lists`' member arm compares `id`)."""
    names: set[str] = set()
    for node in conjuncts:
        name = _scoped_by(node, caller, single, relations)
        if name is not None:
            names.add(name)
    return names


# The tables scoped by `member_id` (a membership's member, a member's own reminders).
_MEMBER_TABLES = ("list_members", "task_member_reminders")


def _scoped_by(node: Any, caller: str, single: str | None, relations: dict[str, str]) -> str | None:
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.OR_EXPR:
        arms = {_scoped_by(arm, caller, single, relations) for arm in node.args or ()}
        return arms.pop() if len(arms) == 1 and None not in arms else None
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        found = (_scoped_by(arm, caller, single, relations) for arm in node.args or ())
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
        if _string(value) == caller or (fields[-1] == "user_id" and _space(value, caller)):
            return name
    return None


def _space(node: Any, caller: str) -> bool:
    """Whether `node` is a placement's space (backend/services/task_tree.py `_space`):
    `COALESCE((SELECT x.user_id FROM <a per-user table> x ...), '<caller>')`; that SELECT is a
    level of its own, checked scoped."""
    if not isinstance(node, ast.CoalesceExpr) or len(node.args or ()) != 2:
        return False
    first, second = node.args
    if _string(second) != caller or not isinstance(first, ast.SubLink):
        return False
    if first.subLinkType != SubLinkType.EXPR_SUBLINK:
        return False
    ranges: list[Any] = []
    _ranges(getattr(first.subselect, "fromClause", None), ranges, [])
    targets = getattr(first.subselect, "targetList", None) or ()
    selected = _column(targets[0].val) if len(targets) == 1 else None
    return (
        len(ranges) == 1
        and ranges[0].relname in SCOPED_TABLES
        and selected is not None
        and selected[-1] == "user_id"
    )


def _memberships(node: Any) -> bool:
    """Whether `node` is `ARRAY(<a SELECT of list_id from list_members>)` (an array of the
    owners' ids beside it, `user_id = ANY(...)`, does not scope on its own)."""
    if not isinstance(node, ast.SubLink) or node.subLinkType != SubLinkType.ARRAY_SUBLINK:
        return False
    ranges: list[Any] = []
    _ranges(getattr(node.subselect, "fromClause", None), ranges, [])
    targets = getattr(node.subselect, "targetList", None) or ()
    selected = _column(targets[0].val) if len(targets) == 1 else None
    return (
        [r.relname for r in ranges] == ["list_members"]
        and selected is not None
        and (selected[-1] == "list_id")
    )


def _ranges(items: Any, ranges: list[Any], conditions: list[Any]) -> None:
    """The tables a FROM/USING list reads at this level (not in its subqueries), and its
    JOIN ... ON conditions."""
    for item in items or ():
        if isinstance(item, ast.RangeVar):
            ranges.append(item)
        elif isinstance(item, ast.JoinExpr):
            _ranges((item.larg, item.rarg), ranges, conditions)
            conditions.extend(_conjuncts(item.quals))


def _name(reference: Any) -> str:
    return str(reference.alias.aliasname if reference.alias is not None else reference.relname)


# A SHA-256 in hex: what `list_invitations.token_hash` is compared with.
_HASH = re.compile(r"[0-9a-f]{64}")


def _capabilities(conditions: list[Any], ranges: list[Any], single: str | None) -> set[str]:
    """The names scoped by the two capabilities of shared lists (backend/db/scope.py
    `_capability`, `_members_lists`), each an AND-conjunct at this level: an invitation by its
    token, `<name>.token_hash = '<64 hex digits>'` (`list_invitations` only: by its id alone it
    is refused), and the lists of a member of the caller's list, `<name>.user_id = (SELECT
    member_id FROM list_members ...)` (`task_lists` only; that SELECT is a level of its own,
    checked scoped)."""
    relations = {_name(r): r.relname for r in ranges}
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
        if relation == "list_invitations" and fields[-1] == "token_hash":
            if _HASH.fullmatch(_string(node.rexpr) or ""):
                names.add(str(name))
        elif relation == "task_lists" and fields[-1] == "user_id" and _a_member(node.rexpr):
            names.add(str(name))
    return names


def _a_member(node: Any) -> bool:
    """Whether `node` is `(SELECT member_id FROM list_members ...)`."""
    if not isinstance(node, ast.SubLink) or node.subLinkType != SubLinkType.EXPR_SUBLINK:
        return False
    ranges: list[Any] = []
    _ranges(getattr(node.subselect, "fromClause", None), ranges, [])
    targets = getattr(node.subselect, "targetList", None) or ()
    selected = _column(targets[0].val) if len(targets) == 1 else None
    return [r.relname for r in ranges] == ["list_members"] and (
        selected is not None and selected[-1] == "member_id"
    )


def _joins(statement: Any, caller: str) -> bool:
    """Whether an INSERT into `list_members` inserts memberships of the caller only
    (`member_id` is the caller in every VALUES row, or the SELECT's column): the caller joins
    a list, in its owner's space (backend/db/scope.py `_joins`)."""
    names = [target.name for target in statement.cols or ()]
    source = statement.selectStmt
    if statement.relation.relname != "list_members" or "member_id" not in names:
        return False
    if not isinstance(source, ast.SelectStmt) or source.op != SetOperation.SETOP_NONE:
        return False
    at = names.index("member_id")
    if source.valuesLists:
        return all(_string(row[at]) == caller for row in source.valuesLists)
    targets = source.targetList or ()
    return at < len(targets) and _string(targets[at].val) == caller


def _insert_problem(statement: Any, caller: str) -> str | None:
    table = statement.relation.relname
    if _joins(statement, caller):
        return None
    names = [target.name for target in statement.cols or ()]
    if "user_id" not in names:
        return f"INSERT INTO {table} without user_id"
    position = names.index("user_id")
    source = statement.selectStmt
    wrong = f"INSERT INTO {table} with a user_id that is not the caller's"
    if not isinstance(source, ast.SelectStmt) or source.op != SetOperation.SETOP_NONE:
        return wrong
    if source.valuesLists:
        if any(_string(row[position]) != caller for row in source.valuesLists):
            return wrong
        return None
    targets = source.targetList or ()
    if position >= len(targets):
        return wrong
    value = targets[position].val
    if _string(value) == caller or _space(value, caller):
        return None
    fields = _column(value)
    ranges: list[Any] = []
    _ranges(source.fromClause, ranges, [])
    scoped = {_name(r) for r in ranges if r.relname in SCOPED_TABLES}
    if fields is not None and fields[-1] == "user_id":
        if len(fields) >= 2 and fields[-2] in scoped:
            return None
        if len(fields) == 1 and len(ranges) == 1 and scoped:
            return None
    return wrong


def _level_problem(node: Any, caller: str) -> str | None:
    """Why this query level reads or writes a per-user table unscoped, or None."""
    ranges: list[Any] = []
    conditions: list[Any] = []
    if isinstance(node, ast.InsertStmt):
        target: Any = node.relation
        if target.relname in SCOPED_TABLES:
            return _insert_problem(node, caller)
        return None
    if isinstance(node, ast.SelectStmt):
        _ranges(node.fromClause, ranges, conditions)
    elif isinstance(node, ast.UpdateStmt):
        ranges.append(node.relation)
        _ranges(node.fromClause, ranges, conditions)
    elif isinstance(node, ast.DeleteStmt):
        ranges.append(node.relation)
        _ranges(node.usingClause, ranges, conditions)
    conditions.extend(_conjuncts(node.whereClause))
    single = _name(ranges[0]) if len(ranges) == 1 else None
    relations = {_name(r): str(r.relname) for r in ranges}
    owned = _owned_names(conditions, caller, single, relations)
    owned |= _capabilities(conditions, ranges, single)
    for reference in ranges:
        if reference.relname in SCOPED_TABLES and _name(reference) not in owned:
            return (
                f"{reference.relname} read or written without "
                f"`{_name(reference)}.user_id = <caller>`"
            )
    return None


def _walk(node: Any, caller: str) -> str | None:
    """The first problem at any query level under `node`, the steps of `task_api_steps`
    included."""
    if isinstance(node, _LEVELS):
        found = _level_problem(node, caller)
        if found is not None:
            return found
    if (
        isinstance(node, ast.FuncCall)
        and getattr((node.funcname or [None])[-1], "sval", None) == _STEPS_FUNCTION
    ):
        for argument in node.args or ():
            while isinstance(argument, ast.TypeCast):
                argument = argument.arg
            if not isinstance(argument, ast.A_ArrayExpr):
                return f"{_STEPS_FUNCTION} with steps that are not an array of constants"
            for element in argument.elements or ():
                step = _string(element)
                if step is None:
                    return f"{_STEPS_FUNCTION} with a step that is not a constant"
                found = problem(step, caller)
                if found is not None:
                    return f"{_STEPS_FUNCTION} step: {found}"
    for child in _children(node):
        found = _walk(child, caller)
        if found is not None:
            return found
    return None


def problem(sql: str, caller: str) -> str | None:
    """Why `sql` (rendered: parameters inlined; one or more statements) is not scoped to
    `caller`, or None when it is (or touches no per-user table)."""
    try:
        statements = parse_sql(sql)
    except ParseError as error:
        return f"not parsed ({error})"
    for raw in statements:
        found = _walk(raw.stmt, caller)
        if found is not None:
            return found
    return None


def _check(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
    global checked
    caller = conn.get_execution_options().get(CALLER_KEY)
    if caller is None:
        return
    checked += 1
    for one in (params if many else [params]) or [None]:
        rendered = cursor.mogrify(statement, one or None)
        sql = rendered.decode() if isinstance(rendered, bytes) else rendered
        found = problem(sql, caller)
        if found is not None:
            violations.append(f"{found}:\n{sql}")
            return


def install() -> None:
    event.listen(Engine, "before_cursor_execute", _check)


def take() -> list[str]:
    found = list(violations)
    violations.clear()
    return found
