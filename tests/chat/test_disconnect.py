"""A client that disconnects mid-stream, against the real server (uvicorn, a separate
process): the turn finishes on the server and the conversation is consistent."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from sqlalchemy import Engine, text

from tests.chat import fake_model
from tests.chat.fake_model import Reply, call, say
from tests.chat.test_streaming import STREAM
from tests.conftest import Account, running_server


def test_a_client_that_disconnects_mid_stream_leaves_a_consistent_conversation(
    database_url: str, alice: Account, db_engine: Engine
) -> None:
    """Against the real server (uvicorn): the client reads up to the tool call's end, then
    closes the connection while the model is still holding its answer back. The turn
    finishes on the server and stores its answer; the task was added once."""
    gate = threading.Event()

    def answer_when_let(request: dict[str, Any]) -> Reply:
        gate.wait(60)
        return say("Added \u201cBuy milk\u201d.")

    for fake in fake_model.serve():
        fake.script(call("add_task", {"title": "Buy milk"}), answer_when_let)
        env = {"CHAT_BASE_URL": fake.url, "CHAT_MODEL": "fake-model", "CHAT_API_KEY": "k"}
        with running_server(database_url, **env) as (base_url, _, log):
            with httpx.Client(base_url=base_url, timeout=60) as http:
                body = {"message": "add milk"}
                with http.stream(
                    "POST", "/api/chat", json=body, headers={**alice.headers, **STREAM}
                ) as response:
                    assert response.status_code == 200
                    seen = []
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            seen.append(line.removeprefix("event: "))
                        if seen and seen[-1] == "tool_call_end":
                            break
                # Disconnected. Now the model answers; the server stores it.
                gate.set()
                assert stored_messages(db_engine, 2) == [
                    ("user", "add milk", None),
                    ("assistant", "Added \u201cBuy milk\u201d.", None),
                ]
                listed = http.get("/api/tasks", headers=alice.headers).json()["data"]
                assert [t["title"] for t in listed] == ["Buy milk"]
            # The turn's text never reached the log at INFO (the server's default here).
            assert "add milk" not in log.read_text()


def stored_messages(engine: Engine, count: int) -> list[tuple[Any, ...]]:
    """The messages (role, content, error code) once there are `count` of them (a bounded
    wait on the rows, never on the clock)."""
    stored: list[Any] = []
    for _ in range(600):
        with engine.connect() as conn:
            query = text("SELECT role, content, error_code FROM messages ORDER BY id")
            stored = list(conn.execute(query))
        # The answer is recorded from the start as unfinished, then replaced.
        if len(stored) == count and stored[-1][2] != "CHAT_TURN_UNFINISHED":
            break
        threading.Event().wait(0.1)
    return [tuple(row) for row in stored]
