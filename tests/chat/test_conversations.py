"""`/api/conversations`: listing (newest activity first, keyset-paged), a conversation's
messages (oldest first, paged, tool calls and usage kept), deletion, and the account's."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.chat.fake_model import FakeModel, call, say
from tests.chat.test_chat import send
from tests.conftest import Account, bearer, count_rows


def _pages(client: TestClient, account: Account, url: str, limit: int) -> list[list[Any]]:
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        body = client.get(url, params=params, headers=account.headers).json()
        pages.append(body["data"])
        assert body["meta"]["count"] == len(body["data"]) and body["meta"]["limit"] == limit
        cursor = body["meta"]["next_cursor"]
        assert body["meta"]["has_more"] == (cursor is not None)
        if cursor is None:
            return pages


def test_conversations_newest_activity_first_in_pages(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    ids = []
    for n in range(5):
        model.script(say(f"hello {n}"))
        ids.append(send(chat, alice, f"start {n}")["conversation_id"])
    model.script(say("again"))
    send(chat, alice, "back to the first", conversation_id=ids[0])  # now the newest
    pages = _pages(chat, alice, "/api/conversations", 2)
    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [c["id"] for page in pages for c in page]
    assert listed == [ids[0], ids[4], ids[3], ids[2], ids[1]]
    first = pages[0][0]
    assert set(first) == {"id", "created_at", "updated_at"}
    assert first["updated_at"] > first["created_at"]


def test_messages_oldest_first_with_tool_calls_and_usage(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    model.script(call("add_task", {"title": "Buy milk"}), say("Added."))
    answer = send(chat, alice, "add milk")
    conversation = answer["conversation_id"]
    model.script(say("Anything else?", prompt_tokens=5, completion_tokens=3))
    send(chat, alice, "thanks", conversation_id=conversation)
    url = f"/api/conversations/{conversation}/messages"
    pages = _pages(chat, alice, url, 3)
    messages = [m for page in pages for m in page]
    assert [len(p) for p in pages] == [3, 1]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "add milk"),
        ("assistant", "Added."),
        ("user", "thanks"),
        ("assistant", "Anything else?"),
    ]
    assert messages[1]["tool_calls"] == answer["tool_calls"]
    assert messages[1]["id"] == answer["message_id"]
    assert messages[1]["usage"] == answer["usage"]
    assert messages[3]["usage"] == {"input_tokens": 5, "output_tokens": 3}
    assert messages[0]["usage"] is None and messages[0]["tool_calls"] == []


def test_bad_paging_input_is_a_422(chat: TestClient, alice: Account, model: FakeModel) -> None:
    model.script(say("hi"))
    conversation = send(chat, alice, "hi")["conversation_id"]
    for url, params in [
        ("/api/conversations", {"limit": 0}),
        ("/api/conversations", {"limit": 101}),
        ("/api/conversations", {"limit": "5.0"}),
        ("/api/conversations", {"cursor": "not-a-cursor"}),
        (f"/api/conversations/{conversation}/messages", {"cursor": "x" * 3000}),
        (f"/api/conversations/{conversation}/messages", {"limit": "+1"}),
        ("/api/conversations/0/messages", {}),
        ("/api/conversations/1e3/messages", {}),
        (f"/api/conversations/{2**64}/messages", {}),
    ]:
        response = chat.get(url, params=params, headers=alice.headers)
        assert response.status_code == 422, (url, params, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_a_cursor_belongs_to_its_listing(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    model.script(say("a"), say("b"), say("c"))
    first = send(chat, alice, "1")["conversation_id"]
    send(chat, alice, "2", conversation_id=first)
    other = send(chat, alice, "3")["conversation_id"]
    page = chat.get(
        f"/api/conversations/{first}/messages", params={"limit": 1}, headers=alice.headers
    )
    cursor = page.json()["meta"]["next_cursor"]
    for url in (f"/api/conversations/{other}/messages", "/api/conversations"):
        response = chat.get(url, params={"cursor": cursor}, headers=alice.headers)
        assert response.status_code == 422, response.text


def test_delete_a_conversation(
    chat: TestClient, model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    model.script(say("hi"), say("there"))
    gone = send(chat, alice, "hi")["conversation_id"]
    kept = send(chat, alice, "hi")["conversation_id"]
    assert chat.delete(f"/api/conversations/{gone}", headers=alice.headers).status_code == 204
    again = chat.delete(f"/api/conversations/{gone}", headers=alice.headers)
    assert again.status_code == 404
    assert again.json()["error"]["message"] == "Conversation not found"
    missing = chat.get(f"/api/conversations/{gone}/messages", headers=alice.headers)
    assert missing.status_code == 404
    listed = chat.get("/api/conversations", headers=alice.headers).json()["data"]
    assert [c["id"] for c in listed] == [kept]
    assert count_rows(db_engine, "messages") == 2
    # Continuing a deleted conversation is continuing a missing one.
    body = {"message": "hello?", "conversation_id": gone}
    assert chat.post("/api/chat", json=body, headers=alice.headers).status_code == 404


def test_conversations_go_with_the_account(
    chat: TestClient, model: FakeModel, alice: Account, bob: Account, db_engine: Engine
) -> None:
    model.script(say("hi"), say("hi"))
    send(chat, alice, "hi")
    send(chat, bob, "hi")
    assert chat.delete("/api/auth/me", headers=alice.headers).status_code == 204
    assert count_rows(db_engine, "conversations") == 1
    assert count_rows(db_engine, "messages") == 2


def test_every_route_needs_a_valid_token(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    model.script(say("hi"))
    conversation = send(chat, alice, "hi")["conversation_id"]
    requests = [
        ("POST", "/api/chat", {"message": "hi"}),
        ("POST", f"/api/{alice.id}/chat", {"message": "hi"}),
        ("GET", "/api/conversations", None),
        ("GET", f"/api/conversations/{conversation}/messages", None),
        ("DELETE", f"/api/conversations/{conversation}", None),
    ]
    for method, url, body in requests:
        for headers in ({}, bearer("not-a-token")):
            response = chat.request(method, url, json=body, headers=headers)
            assert response.status_code == 401, (method, url, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert len(model.requests) == 1
    page = chat.get(f"/api/conversations/{conversation}/messages", headers=alice.headers)
    assert len(page.json()["data"]) == 2
