"""Access is applied by construction (issue 49): outside services/statements/access.py no module
applies the access predicate or checks a role by hand. Services name the action (`may`,
`may_shared`, `may_manage`, `role_in`, `role_may`, `require`, `denied`, `needed_for`, `permitted`,
`owns`); the predicate (backend/db/scope.py) and the role table (`LEAST_ROLE`, `roles`,
`allows`, `refuse`) are the access module's alone.

Read from the source (every module under backend/ but the data layer, which defines the
predicate, `Role`'s own module and the access module): an import of one of those names, an
import of either module whole (its names would be reached as attributes), or a comparison
with a role (`Role.<name>`, a name bound to one, a role's `rank` or its value as a string)
fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from backend.models.sharing import Role

_BACKEND = Path(__file__).resolve().parents[2] / "backend"
_ACCESS = _BACKEND / "services" / "statements" / "access.py"
_DATA_LAYER = _BACKEND / "db"
_ROLE_ITSELF = _BACKEND / "models" / "sharing.py"  # where `Role` and its ranks are defined

# What only the access module may import, by module.
_RESERVED = {
    "backend.db.scope": {"access", "shared", "caller_role", "_memberships"},
    "backend.services.statements.access": {"LEAST_ROLE", "roles", "allows", "refuse"},
}
_ROLE_NAMES = {role.value for role in Role}


def _modules() -> list[Path]:
    return sorted(
        path
        for path in _BACKEND.rglob("*.py")
        if path not in (_ACCESS, _ROLE_ITSELF) and _DATA_LAYER not in path.parents
    )


def _names_bound_to_roles(tree: ast.Module) -> set[str]:
    """Module-level names assigned from a role (`_ADMIN = Role.admin.value`)."""
    bound = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and _mentions_role(node.value, set()):
            bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return bound


def _mentions_role(node: ast.AST, bound: set[str]) -> bool:
    for each in ast.walk(node):
        if isinstance(each, ast.Attribute):
            if isinstance(each.value, ast.Name) and each.value.id == "Role":
                return True
            if each.attr in ("rank", "at_least"):
                return True
        if isinstance(each, ast.Name) and each.id in bound:
            return True
        if isinstance(each, ast.Constant) and each.value in _ROLE_NAMES:
            return True
    return False


def escapes(source: str) -> list[str]:
    """What in `source` applies access or compares a role by hand (line: what)."""
    tree = ast.parse(source)
    bound = _names_bound_to_roles(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            reserved = names & _RESERVED.get(node.module, set())
            if reserved:
                found.append(f"{node.lineno}: imports {sorted(reserved)} from {node.module}")
            whole = {f"{node.module}.{name}" for name in names} & set(_RESERVED)
            if whole:
                found.append(f"{node.lineno}: imports {sorted(whole)} whole")
        elif isinstance(node, ast.Import):
            whole = {alias.name for alias in node.names} & set(_RESERVED)
            if whole:
                found.append(f"{node.lineno}: imports {sorted(whole)} whole")
        elif isinstance(node, ast.Compare):
            if any(_mentions_role(part, bound) for part in (node.left, *node.comparators)):
                found.append(f"{node.lineno}: compares a role: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "at_least"
        ):
            found.append(f"{node.lineno}: reads a role's rank: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(_BACKEND)))
def test_no_module_applies_access_by_hand(path: Path) -> None:
    assert escapes(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "from backend.db.scope import OWNER, access",
        "from backend.db.scope import shared",
        "from backend.db.scope import caller_role as role",
        "from backend.services.statements.access import Action, allows",
        "from backend.services.statements.access import refuse",
        "from backend.services.statements.access import roles",
        "from backend.services.statements.access import LEAST_ROLE",
        "from backend.services.statements import access",
        "from backend.db import scope",
        "import backend.db.scope",
        "if role == Role.owner:\n    pass",
        "if standing.caller != Role.owner and granting:\n    pass",
        "statement = A if role is Role.admin else B",
        "_ADMIN = Role.admin.value\ncondition = t.c.role != _ADMIN",
        "ok = Role(role).rank >= Role.editor.rank",
        "ok = role in ('owner', 'admin')",
        "writers = Role.editor.at_least()",
    ],
)
def test_each_escape_is_found(source: str) -> None:
    assert escapes(source) != []


def test_naming_the_action_is_no_escape() -> None:
    source = (
        "from backend.db.scope import OWNER, Scoped, owned, space_locked\n"
        "from backend.services.statements.access import Action, may, require, role_in\n"
        "_ROLE = role_in(_TASKS)\n"
        "_VISIBLE = may(_LISTS, Action.LIST_READ)\n"
        "require(role, Action.INVITE, NotFound('List not found'))\n"
        "statement = _CHANGE_ADMIN if granted is Action.ADMIN_MANAGE else _CHANGE\n"
    )
    assert escapes(source) == []
