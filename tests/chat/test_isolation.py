"""Two users: Bob can neither see nor continue nor delete Alice's conversations (each answer
is the one a conversation that does not exist gets), the twin path with Alice's id is a 404,
and tool arguments naming Alice's task or Alice's user id touch nothing of hers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from fastapi.testclient import TestClient

from tests.chat.fake_model import FakeModel, call, say
from tests.chat.test_chat import add, send, tasks_of
from tests.conftest import Account

MISSING = 10_000_000


def _same(foreign: httpx.Response, absent: httpx.Response) -> None:
    assert foreign.status_code == absent.status_code == 404, foreign.text
    assert foreign.content == absent.content
    ignore = {"x-request-id", "content-length"}
    assert set(foreign.headers) - ignore == set(absent.headers) - ignore


def _messages(chat: TestClient, account: Account, conversation: int) -> Any:
    url = f"/api/conversations/{conversation}/messages"
    return chat.get(url, headers=account.headers).json()["data"]


def test_bob_cannot_reach_alices_conversations(
    chat: TestClient, model: FakeModel, alice: Account, bob: Account
) -> None:
    model.script(say("Alice's answer"))
    alices = send(chat, alice, "alice-secret-message")["conversation_id"]
    before = _messages(chat, alice, alices)

    def both(method: str, url: str, body: Any = None) -> None:
        foreign = chat.request(method, url.format(alices), json=body, headers=bob.headers)
        absent = chat.request(method, url.format(MISSING), json=body, headers=bob.headers)
        _same(foreign, absent)

    both("GET", "/api/conversations/{}/messages")
    both("DELETE", "/api/conversations/{}")
    for path in ("/api/chat", f"/api/{quote(bob.id)}/chat"):
        foreign = chat.post(
            path, json={"message": "hi", "conversation_id": alices}, headers=bob.headers
        )
        absent = chat.post(
            path, json={"message": "hi", "conversation_id": MISSING}, headers=bob.headers
        )
        _same(foreign, absent)
    listed = chat.get("/api/conversations", headers=bob.headers)
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert _messages(chat, alice, alices) == before
    assert len(model.requests) == 1  # none of Bob's attempts reached the model


def test_the_twin_path_with_another_users_id_is_a_404(
    chat: TestClient, model: FakeModel, alice: Account, bob: Account
) -> None:
    model.script(say("Hi Bob"))
    foreign = chat.post(f"/api/{quote(alice.id)}/chat", json={"message": "hi"}, headers=bob.headers)
    nobody = chat.post("/api/no-such-user/chat", json={"message": "hi"}, headers=bob.headers)
    missing = chat.post(
        "/api/chat", json={"message": "hi", "conversation_id": MISSING}, headers=bob.headers
    )
    _same(foreign, missing)
    assert nobody.content == missing.content
    assert chat.get("/api/conversations", headers=alice.headers).json()["data"] == []
    own = chat.post(f"/api/{quote(bob.id)}/chat", json={"message": "hi"}, headers=bob.headers)
    assert own.status_code == 200 and own.json()["data"]["response"] == "Hi Bob"


def test_tool_arguments_naming_alices_task_or_id_touch_nothing_of_hers(
    chat: TestClient, model: FakeModel, alice: Account, bob: Account
) -> None:
    task = add(chat, alice, "alice-secret-title")
    before = tasks_of(chat, alice)
    model.script(
        call(
            "complete_task",
            {"task_id": task},
            ("delete_task", {"task_id": task}),
            ("update_task", {"task_id": task, "title": "hijacked"}),
            ("get_task", {"task_id": task}),
            ("add_task", {"title": "planted", "user_id": alice.id}),
            ("list_tasks", {"user_id": alice.id}),
            ("complete_task", {"task_id": MISSING}),
        ),
        say("Done."),
    )
    answer = send(chat, bob, "do things to task 1")
    outcomes = [(c["name"], c["outcome"], c["error_code"]) for c in answer["tool_calls"]]
    assert sorted(outcomes) == sorted(
        [
            ("complete_task", "error", "NOT_FOUND"),
            ("delete_task", "error", "NOT_FOUND"),
            ("update_task", "error", "NOT_FOUND"),
            ("get_task", "error", "NOT_FOUND"),
            ("add_task", "error", "NOT_FOUND"),
            ("list_tasks", "error", "NOT_FOUND"),
            ("complete_task", "error", "NOT_FOUND"),
        ]
    )
    # Alice's task and Bob's missing one get the same answer.
    results = {str(c["arguments"]): c["result"] for c in answer["tool_calls"]}
    assert results[str({"task_id": task})] == results[str({"task_id": MISSING})]
    assert "alice-secret-title" not in str(answer)
    assert tasks_of(chat, alice) == before
    assert tasks_of(chat, bob) == []
