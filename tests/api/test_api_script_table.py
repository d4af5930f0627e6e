"""`scripts/api.sh`'s route table against the routes the app serves, in the fast tier: a route
with no command fails here, and under `--guards-for "METHOD /path"` (tests/guards.py), not only
in the end-to-end run of every command (tests/scripts/test_api_script.py).

A route's command is its `# route:` line (a task's child's: the generic child commands, for
every child in `CHILDREN`), else its operation id (the script's last case, derived from the
route: `duplicateTask 42`); an `/api/{user_id}/...` twin of the published contract is reached
with `call` whenever its `/api/...` route has a command: no line of its own."""

from __future__ import annotations

import subprocess

import pytest

from backend.config import Settings
from backend.main import create_app
from tests.scripts.test_api_script import SCRIPT, script_routes, served_routes

APP = create_app(Settings(environment="test", jwt_secret="t" * 48))
SERVED = sorted(served_routes(APP))
TWIN = "/api/{user_id}/"
TABLE = script_routes()


def command_of(method: str, path: str) -> str | None:
    """What runs the route: its command in the route table, `call` for a twin of one."""
    if (method, path) in TABLE:
        return TABLE[(method, path)]
    if path.startswith(TWIN) and (method, "/api/" + path.removeprefix(TWIN)) in TABLE:
        return "call"
    return None


@pytest.mark.parametrize("route", [f"{method} {path}" for method, path in SERVED])
def test_every_served_route_has_a_command(route: str) -> None:
    method, _, path = route.partition(" ")
    assert command_of(method, path) is not None, (
        f"{route}: no command in {SCRIPT.relative_to(SCRIPT.parent.parent)}: regenerate "
        "specs/openapi.json (the script runs a route by its operation id)"
    )


def test_a_route_runs_by_its_operation_id() -> None:
    """The script's last case finds an operation and wants its path's values (no server: a
    missing value is a usage error, exit 2, before any request)."""
    for args, said in ((["getTask"], "One curl command"), (["noSuchOperation"], "unknown")):
        ran = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True)
        assert (ran.returncode, said in ran.stderr) == (2, True), (args, ran.stderr)


def test_no_command_for_a_route_nobody_serves() -> None:
    stale = set(TABLE) - set(SERVED)
    assert not stale, f"scripts/api.sh has commands for routes nobody serves: {sorted(stale)}"
    assert not any(path.startswith(TWIN) for _, path in TABLE), "twins need no line"
