"""No code in backend/ reaches into a library's private members: an attribute `x._name`
(one leading underscore, not a dunder), a `getattr(x, "_name")`, or an import from a private
module or of a private name is ours only when `_name` is defined somewhere in backend/.
A library's private API changes without notice in any release (SQLAlchemy's, psycopg2's)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

BACKEND = ROOT / "backend"
# Underscored names that are public API, each with where it says so.
PUBLIC = {
    # SQLAlchemy's Row: its documented methods start with `_` to stay clear of column names.
    "_mapping": "sqlalchemy.engine.Row._mapping",
    # A type annotation only (TYPE_CHECKING): the type of argparse's add_subparsers(), which
    # has no public name (typeshed's).
    "_SubParsersAction": "argparse.ArgumentParser.add_subparsers()",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _trees() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(BACKEND.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _defined(trees: list[tuple[Path, ast.Module]]) -> set[str]:
    """Every name backend/ defines: functions, classes, arguments, assigned names and
    attributes (`self._x = ...`), imported aliases."""
    names: set[str] = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return names


def _reaches(path: Path, tree: ast.Module, ours: set[str]) -> Iterator[str]:
    where = path.relative_to(ROOT)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in ours:
            yield f"{where}:{node.lineno}: .{node.attr}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
            and node.args[1].value not in ours
        ):
            yield f"{where}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "backend":
                continue
            if any(_private(part) for part in node.module.split(".")):
                yield f"{where}:{node.lineno}: from {node.module} import ..."
            for alias in node.names:
                if _private(alias.name):
                    yield f"{where}:{node.lineno}: from {node.module} import {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(_private(part) for part in alias.name.split(".")):
                    yield f"{where}:{node.lineno}: import {alias.name}"


def test_no_private_api_of_a_library() -> None:
    trees = list(_trees())
    ours = _defined(trees) | set(PUBLIC)
    found = [line for path, tree in trees for line in _reaches(path, tree, ours)]
    assert not found, "private API of a library (use its public API):\n" + "\n".join(found)


def test_the_check_sees_a_private_member() -> None:
    """The check itself: each kind of reach is found, and our own private names pass."""
    source = (
        "from sqlalchemy.sql._typing import X\n"
        "from sqlalchemy.sql.compiler import _CompileLabel\n"
        "import psycopg2._psycopg\n"
        "class A:\n"
        "    def __init__(self):\n"
        "        self._ours = 1\n"
        "def f(statement, conn):\n"
        "    statement._generate_cache_key()\n"
        "    getattr(conn, '_dbapi_connection')\n"
        "    return A()._ours, statement.__class__\n"
    )
    tree = ast.parse(source)
    ours = _defined([(BACKEND / "x.py", tree)])
    found = [line.split(": ", 1)[1] for line in _reaches(BACKEND / "x.py", tree, ours)]
    assert sorted(found) == sorted(
        [
            "from sqlalchemy.sql._typing import ...",
            "from sqlalchemy.sql.compiler import _CompileLabel",
            "import psycopg2._psycopg",
            "._generate_cache_key",
            "getattr(..., '_dbapi_connection')",
        ]
    )
