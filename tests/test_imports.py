"""The import structure of `backend/`: the domain loads no web framework, no module imports
itself back through others, and no module imports one on a higher floor (`LAYERS`).

Both are read from the code, not from a running app: the first imports the domain modules in a
fresh interpreter and looks at `sys.modules`; the second parses every module's imports.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend"

# The web framework and what only it needs; the domain must run without them (worker,
# scripts, MCP over stdio, services in tests).
WEB_PACKAGES = ("fastapi", "starlette", "asgi_correlation_id")
# The domain: errors and their mapping, models, services, the recurrence rules, the argument
# contracts REST and MCP share, the bearer check, the CalDAV mapping (HTTP comes after it), and
# the import's readers (a file into a Plan, no database, no HTTP).
DOMAIN = (
    "errors.py",
    "auth/bearer.py",
    "recurrence.py",
    "models/**/*.py",
    "services/**/*.py",
    "contracts/**/*.py",
    "ical/vtodo.py",
    "dav/recurrence_forms.py",
    "transfer/plan.py",
    "transfer/sources/**/*.py",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def domain_modules() -> list[str]:
    return sorted({module_name(path) for pattern in DOMAIN for path in BACKEND.glob(pattern)})


def web_modules_loaded(modules: list[str]) -> list[str]:
    """The web framework's modules a fresh interpreter holds after importing `modules`."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {WEB_PACKAGES!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_domain_modules_load_no_web_framework() -> None:
    modules = domain_modules()
    assert {
        "backend.errors",
        "backend.services.tasks.service",
        "backend.models.task",
        "backend.contracts.task_listing",
    } <= set(modules)
    # One interpreter for all: importing fewer modules cannot load more.
    if not web_modules_loaded(modules):
        return
    culprits = {name: loaded[:3] for name in modules if (loaded := web_modules_loaded([name]))}
    raise AssertionError(
        "these domain modules load the web framework (move the HTTP part under backend/api/):\n"
        + "\n".join(f"  {name}: {', '.join(loaded)}, ..." for name, loaded in culprits.items())
    )


# -- start-up: the chat stack on first use ------------------------------------------------------

# The chat stack: seconds to import, which only a chat turn needs (backend/chat/stack.py).
CHAT_PACKAGES = ("agents", "chatkit", "openai")
# The MCP SDK: most of a second, loaded by the app beside its start (backend/mcp/mount.py).
MCP_PACKAGES = ("mcp", "mcp_types")
# What only a first use needs: an issuer's keys fetched (httpx, which brings `rich` for its
# command line); the worker delivers with httpx and imports it at once.
APP_LATER_PACKAGES = ("httpx", "rich")
# What every process imports: the app (serve, uvicorn's factory), the commands, the worker.
ENTRY_MODULES = ["backend.main", "backend.cli", "backend.events.worker"]


def modules_loaded(modules: list[str], packages: tuple[str, ...], then: str = "") -> list[str]:
    """The modules of `packages` a fresh interpreter holds after importing `modules` (and
    running `then`)."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"{then}\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {packages!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_the_app_and_the_commands_load_no_chat_stack() -> None:
    """`import backend.main` (every `serve`, `migrate`, `token`, worker start) pays for no
    chat and no MCP SDK: a turn loads its stack when first used, or a server with chat
    configured as it starts; the app loads the MCP endpoint as it starts. A module-level
    import of `agents`, `chatkit`, `openai` or `mcp` on these modules' path fails this (move
    it into the function, types under `if TYPE_CHECKING:`)."""
    assert modules_loaded(ENTRY_MODULES, (*CHAT_PACKAGES, *MCP_PACKAGES)) == []
    assert modules_loaded(["backend.main"], APP_LATER_PACKAGES) == []


def test_the_mcp_mount_loads_the_endpoint_and_its_sdk() -> None:
    """What `McpMount` imports as the app starts is the endpoint, and the SDK with it: the
    module it names exists and brings what `/mcp` needs."""
    from backend.mcp.mount import ENDPOINT_MODULE

    then = f"importlib.import_module({ENDPOINT_MODULE!r})"
    loaded = set(modules_loaded(["backend.main"], (*MCP_PACKAGES, "backend"), then))
    assert {ENDPOINT_MODULE, "backend.mcp.server", "mcp", "mcp_types"} <= loaded


def first_use_imports() -> set[str]:
    """What `backend/` imports inside functions from the chat stack or `backend.chat`: the
    imports a first chat request runs."""
    found: set[str] = set()
    for path in sorted(BACKEND.rglob("*.py")):
        for function in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in _imports(function):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                found.update(
                    name
                    for name in names
                    if any(_under(name, package) for package in (*CHAT_PACKAGES, "backend.chat"))
                )
    return found


def test_the_preload_loads_what_a_first_chat_request_imports() -> None:
    """A server with chat configured is ready (`/health/ready`) once `stack.load()` has run:
    after it, a chat turn or a ChatKit request imports nothing it has not."""
    lazy = first_use_imports()
    assert {"backend.chat.agent", "backend.chat.provider", "chatkit.server"} <= lazy
    wanted = (*CHAT_PACKAGES, "backend")
    loaded = set(
        modules_loaded(["backend.main"], wanted, "from backend.chat import stack; stack.load()")
    )
    assert {"agents", "chatkit", "openai"} <= loaded
    assert lazy <= loaded, f"imported on first use, not by the preload: {sorted(lazy - loaded)}"


# -- import cycles ------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, *, typing_too: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, in functions too; not under `if TYPE_CHECKING:`,
    which never runs, unless `typing_too`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test) and not typing_too:
            for other in child.orelse:
                yield from _imports(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _imports(child, typing_too=typing_too)


def import_graph(*, typing_too: bool = False) -> dict[str, set[str]]:
    """Module -> the `backend` modules it imports (`typing_too`: under `if TYPE_CHECKING:`
    too). `from package import name` counts as an import of `package.name` when that is a
    module. Parent packages a submodule import runs implicitly are not edges: they are already
    importing when their own submodules import each other, so they close no cycle of their own."""
    paths = {module_name(path): path for path in BACKEND.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path)), typing_too=typing_too):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in paths else base)
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan; `backend` is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside it."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle in {component}")


def test_backend_has_no_import_cycle() -> None:
    """Imports under `if TYPE_CHECKING:` count too: two modules that need each other's types
    are one design split in two, whether or not Python runs the import (a `Protocol` of what
    one reads, or what both need in a third module below them, breaks it)."""
    graph = import_graph(typing_too=True)
    # The parser sees imports inside functions too (start-up cost keeps many of them lazy),
    # and type-only ones.
    assert "backend.api.errors" in graph["backend.server"]
    assert "backend.services.tasks.task_sending" in graph["backend.dav.recurrence_forms"]
    found = cycles(graph)
    assert not found, "import cycles in backend/ (break each, e.g. by moving what both need):\n" + (
        "\n".join("  " + " -> ".join(cycle) for cycle in found)
    )


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# -- the layer order ----------------------------------------------------------------------------

# The house's floors, from the ground up: a module imports its own floor and those below,
# never one above (inside functions too; `if TYPE_CHECKING:` never runs and is not read). A
# request goes down them: uvicorn's protocol (server.py) -> the app (main.py, api/) -> the
# transports' shared parts (chat on the MCP tools) -> the contracts both accept -> services
# (and unit_of_work.py, which binds them to a request) -> the data layer (db/:
# engine, sender, scope) -> tables and types (models/) -> what everything uses (errors, config).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("backend", "backend.config", "backend.errors", "backend.recurrence", "backend.quickadd"),
    ("backend.models", "backend.observability"),
    ("backend.auth",),
    ("backend.db",),
    # services: the shared statements, then the domains, each importing only those below it,
    # then the unit of work that binds them to a request and what opens units of its own.
    ("backend.services.statements", "backend.services.rate_limits", "backend.services.idempotency"),
    (
        "backend.services.history",
        "backend.services.accounts",
        "backend.services.delivery",
        "backend.services.chat",
    ),
    ("backend.services.sharing",),
    ("backend.services.tasks",),
    ("backend.services.calendar", "backend.services.transfer"),
    ("backend.services.unit_of_work", "backend.services.health"),
    ("backend.services",),
    (
        "backend.contracts",
        "backend.events",
        "backend.ical",
        "backend.dav.recurrence_forms",
        "backend.transfer",
    ),
    ("backend.mcp",),
    ("backend.chat",),
    ("backend.api",),
    ("backend.dav",),
    ("backend.main", "backend.server"),
    ("backend.cli", "backend.__main__"),
)


def floor_of(module: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int | None:
    """The floor of the longest declared package `module` is in (None: undeclared)."""
    best: tuple[int, int] | None = None
    for floor, packages in enumerate(layers):
        for package in packages:
            if _under(module, package) and (best is None or len(package) > best[1]):
                best = (floor, len(package))
    return None if best is None else best[0]


def upward_imports(
    graph: dict[str, set[str]], layers: tuple[tuple[str, ...], ...] = LAYERS
) -> list[str]:
    """Every import of a module on a higher floor than the importer's, as `a -> b`."""
    found = []
    for module, targets in sorted(graph.items()):
        here = floor_of(module, layers)
        for target in sorted(targets):
            there = floor_of(target, layers)
            if here is not None and there is not None and there > here:
                found.append(f"{module} -> {target}")
    return found


def test_backend_imports_only_down_the_layers() -> None:
    graph = import_graph()
    undeclared = sorted(module for module in graph if floor_of(module) is None)
    assert not undeclared, f"modules on no floor of LAYERS (declare their place): {undeclared}"
    # Imports inside functions are read too (the parser's own check above).
    assert "backend.api.errors" in graph["backend.server"]
    found = upward_imports(graph)
    assert not found, (
        "imports of a higher floor (LAYERS; move what both need down, or the importer up):\n"
        + "\n".join(f"  {edge}" for edge in found)
    )


def test_layer_check_finds_upward_imports() -> None:
    layers = (("p.low",), ("p.mid",), ("p.top", "p.side"))
    graph = {
        "p.low.a": {"p.low.b"},
        "p.low.b": {"p.mid.c"},
        "p.mid.c": {"p.low.a"},
        "p.top.d": {"p.side", "p.mid.c"},
        "p.side": {"p.top.d"},
    }
    assert upward_imports(graph, layers) == ["p.low.b -> p.mid.c"]
    assert floor_of("p.top.d.e", layers) == 2 and floor_of("q", layers) is None


# -- MCP and the REST layer ---------------------------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    """Every module `path` names in an import statement, anywhere in it (functions and
    `if TYPE_CHECKING:` blocks too), relative imports resolved, `from a import b` as `a.b`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return names_imported(path.read_text(), package)


def names_imported(source: str, package: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_mcp_imports_nothing_from_the_rest_layer() -> None:
    """MCP and REST are two transports over the same services: what both accept lives in
    backend/contracts/, the bearer check in backend/auth/bearer.py, the error mapping in
    backend/errors.py."""
    uses = sorted(
        (module_name(path), target)
        for path in sorted((BACKEND / "mcp").rglob("*.py"))
        for target in imported_modules(path)
        if _under(target, "backend.api")
    )
    assert not uses, f"backend/mcp/ imports from backend/api/: {uses}"


def test_contracts_import_no_web_framework() -> None:
    for path in sorted((BACKEND / "contracts").rglob("*.py")):
        web = {
            target
            for target in imported_modules(path)
            if any(_under(target, package) for package in (*WEB_PACKAGES, "backend.api"))
        }
        assert not web, f"{module_name(path)} imports {sorted(web)}"


def test_import_scan_sees_every_kind_of_import() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import backend.api.deps\n"
        "from .errors import envelope\n"
        "if TYPE_CHECKING:\n"
        "    from backend.api import responses\n"
        "def later():\n"
        "    from backend.api.routes.tasks import ListParams\n"
    )
    assert {
        "backend.api.deps",
        "backend.mcp.errors",
        "backend.api.responses",
        "backend.api.routes.tasks",
    } <= names_imported(source, "backend.mcp")
