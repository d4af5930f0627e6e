"""The import structure of `backend/`: the domain loads no web framework.

Read from the code, not from a running app: the domain modules are imported in a fresh
interpreter, which then lists what `sys.modules` holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend"

# The web framework and what only it needs; the domain must run without them (worker,
# scripts, MCP over stdio, services in tests).
WEB_PACKAGES = ("fastapi", "starlette", "asgi_correlation_id")
# The domain: errors, models, services and the recurrence rules.
DOMAIN = ("errors.py", "recurrence.py", "models/**/*.py", "services/**/*.py")


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
    assert {"backend.errors", "backend.services.tasks", "backend.models.task"} <= set(modules)
    # One interpreter for all: importing fewer modules cannot load more.
    if not web_modules_loaded(modules):
        return
    culprits = {name: loaded[:3] for name in modules if (loaded := web_modules_loaded([name]))}
    raise AssertionError(
        "these domain modules load the web framework (move the HTTP part under backend/api/):\n"
        + "\n".join(f"  {name}: {', '.join(loaded)}, ..." for name, loaded in culprits.items())
    )
