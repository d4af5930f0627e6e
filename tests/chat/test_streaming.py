"""`Accept: text/event-stream`: the same turn as server-sent events (the fake model streams
its chunks too), the same rows stored; and a client that goes away mid-stream."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.chat.fake_model import FakeModel, call, fail, say
from tests.chat.test_chat import tasks_of
from tests.conftest import Account

STREAM = {"Accept": "text/event-stream"}


def events(body: str) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a text/event-stream body."""
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_a_streamed_turn_sends_deltas_tool_calls_and_a_final_event(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    answer = "Added \u201cBuy milk\u201d to your tasks, due whenever you like."
    model.script(call("add_task", {"title": "Buy milk"}), say(answer))
    response = chat.post(
        "/api/chat", json={"message": "add milk"}, headers={**alice.headers, **STREAM}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    received = events(response.text)
    names = [name for name, _ in received]
    assert names[0] == "start" and names[-1] == "done"
    assert names[1:3] == ["tool_call_start", "tool_call_end"]
    assert set(names[3:-1]) == {"delta"} and len(names[3:-1]) > 1  # in pieces
    conversation = received[0][1]["conversation_id"]
    assert received[1][1] == {"name": "add_task", "arguments": {"title": "Buy milk"}}
    assert received[2][1]["outcome"] == "ok"
    assert "".join(data["text"] for name, data in received if name == "delta") == answer
    done = received[-1][1]
    assert done["conversation_id"] == conversation and done["response"] == answer
    assert done["tool_calls"] == [received[2][1]]
    assert done["usage"] == {"input_tokens": 22, "output_tokens": 14}
    assert all(request["stream"] is True for request in model.requests)
    # Stored exactly as a turn without streaming stores it.
    page = chat.get(f"/api/conversations/{conversation}/messages", headers=alice.headers)
    stored = page.json()["data"]
    assert [m["content"] for m in stored] == ["add milk", answer]
    assert stored[1]["tool_calls"] == done["tool_calls"]
    assert stored[1]["usage"] == done["usage"]
    assert [t["title"] for t in tasks_of(chat, alice)] == ["Buy milk"]


def test_a_streamed_failure_is_the_last_event(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    model.script(call("add_task", {"title": "Buy milk"}), fail(500))
    response = chat.post("/api/chat", json={"message": "hi"}, headers={**alice.headers, **STREAM})
    received = events(response.text)
    assert [name for name, _ in received] == ["start", "tool_call_start", "tool_call_end", "error"]
    error = received[-1][1]["error"]
    assert error["code"] == "CHAT_PROVIDER_UNAVAILABLE"
    assert [d["message"] for d in error["details"]][1:] == ["add_task"]


def test_errors_before_the_turn_starts_are_plain_http(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    headers = {**alice.headers, **STREAM}
    missing = chat.post("/api/chat", json={"message": "hi", "conversation_id": 9}, headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    assert chat.post("/api/chat", json={"message": ""}, headers=headers).status_code == 422
    assert model.requests == []
