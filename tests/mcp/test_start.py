"""The app loads the MCP endpoint (and the SDK) beside its start, not at import
(backend/mcp/mount.py): `/health` answers meanwhile, `/health/ready` does not until `/mcp` can
answer, and a request that comes early waits for it rather than being refused. (That the
app's import loads none of the SDK: tests/test_imports.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.main import create_app
from backend.mcp.mount import McpMount
from tests.conftest import Account
from tests.mcp.conftest import post_rpc

LOADING = {
    "error": {
        "code": "SERVICE_UNAVAILABLE",
        "message": "The MCP endpoint is loading",
        "details": [],
    }
}


def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll for a state another thread reaches (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def _waiting(mount: McpMount) -> int:
    settled = mount._settled  # what an early request waits on
    return 0 if settled is None else settled.statistics().tasks_waiting


def test_not_ready_until_the_mcp_endpoint_runs(
    settings: Settings, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loading held at its start: what a slow import looks like.
    release, entered = threading.Event(), threading.Event()
    real_build = McpMount._build

    def held(self: McpMount) -> Any:
        entered.set()
        release.wait()
        return real_build(self)

    monkeypatch.setattr(McpMount, "_build", held)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        mount: McpMount = client.app.state.mcp  # type: ignore[attr-defined]
        assert entered.wait(60)
        assert client.get("/health").status_code == 200  # alive meanwhile
        waiting = client.get("/health/ready")
        assert waiting.status_code == 503
        assert waiting.json() == LOADING
        assert waiting.headers["retry-after"] == "5"
        answers: list[httpx.Response] = []

        def early() -> None:
            answers.append(post_rpc(client, "/mcp", "tools/list", None, alice.headers))

        asking = threading.Thread(target=early)
        asking.start()
        _until(lambda: _waiting(mount) == 1, "the early request waits for the endpoint")
        assert answers == []  # not refused while it loads
        release.set()
        asking.join(60)
        assert answers[0].status_code == 200, answers[0].text
        assert {tool["name"] for tool in answers[0].json()["result"]["tools"]} >= {"add_task"}
        assert mount.wait(60) and mount.ready
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text


def test_an_endpoint_that_failed_to_load_is_never_ready(
    settings: Settings, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: McpMount) -> Any:
        raise ModuleNotFoundError("No module named 'mcp'")

    monkeypatch.setattr(McpMount, "_build", broken)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        mount: McpMount = client.app.state.mcp  # type: ignore[attr-defined]
        assert mount.wait(60)
        refused = client.get("/health/ready")
        assert refused.status_code == 503
        assert refused.json()["error"]["message"] == "The MCP endpoint failed to load"
        called = post_rpc(client, "/mcp", "tools/list", None, alice.headers)
        assert called.status_code == 503
        assert called.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert client.get("/health").status_code == 200
