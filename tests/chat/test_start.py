"""A server with chat configured loads the chat stack as it starts, in a thread of its own
(backend/chat/stack.py), and is not ready until it has: a replica takes no chat before it can
answer one. Without chat the probe does not wait for it. (That the app's import loads none of
it: tests/test_imports.py.)"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from backend.chat import stack
from tests.chat.fake_model import FakeModel, say
from tests.conftest import Account

LOADING = {
    "error": {
        "code": "SERVICE_UNAVAILABLE",
        "message": "The chat stack is loading",
        "details": [],
    }
}


def test_not_ready_until_the_chat_stack_has_loaded(
    chat_app: Callable[..., TestClient],
    model: FakeModel,
    alice: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The loading held at its start: what a slow import looks like to the probe.
    release, entered = threading.Event(), threading.Event()
    real_load = stack.load

    def held() -> None:
        entered.set()
        release.wait()
        real_load()

    monkeypatch.setattr(stack, "load", held)
    chat = chat_app()
    assert entered.wait(60)
    assert chat.get("/health").status_code == 200  # alive meanwhile
    waiting = chat.get("/health/ready")
    assert waiting.status_code == 503
    assert waiting.json() == LOADING
    assert waiting.headers["retry-after"] == "5"
    release.set()
    preload = chat.app.state.chat_stack  # type: ignore[attr-defined]
    assert preload.wait(60)
    assert chat.app.state.mcp.wait(60)  # type: ignore[attr-defined]  # (tests/mcp/test_start.py)
    ready = chat.get("/health/ready")
    assert ready.status_code == 200, ready.text
    # The stack it loaded answers the first turn.
    model.script(say("Hello."))
    answer = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["response"] == "Hello."


def test_a_stack_that_failed_to_load_is_never_ready(
    chat_app: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise ModuleNotFoundError("No module named 'agents'")

    monkeypatch.setattr(stack, "load", broken)
    chat = chat_app()
    assert chat.app.state.chat_stack.wait(60)  # type: ignore[attr-defined]
    refused = chat.get("/health/ready")
    assert refused.status_code == 503
    assert refused.json()["error"]["message"] == "The chat stack failed to load"


def test_without_chat_the_probe_does_not_wait_for_it(client: TestClient) -> None:
    assert client.app.state.chat_stack is None  # type: ignore[attr-defined]
    assert client.get("/health/ready").status_code == 200
