"""Isolation on `POST /api/chatkit`: another user's thread or item id, in every request type
that names one, gets the bytes a thread or item that never existed gets (404 before
anything streams), and changes nothing of theirs. The SDK's store methods do not load the
thread first (`items.list`, `threads.delete`), so every statement is scoped to the caller."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.responses import EXAMPLES
from tests.chat.chatkit import done_items, new_thread, send, user_input
from tests.chat.fake_model import FakeModel, call, say
from tests.chat.test_chat import add
from tests.conftest import Account

UNKNOWN_THREAD = "thr_" + "0" * 32
UNKNOWN_ITEM = "wdg_" + "0" * 32
ACTION = {"type": "task.delete", "payload": {"task_id": 1}}


def thread_requests(thread_id: str, item_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every request type that names a thread (and an item of it, where it takes one)."""
    return [
        ("threads.get_by_id", {"thread_id": thread_id}),
        ("threads.add_user_message", {"thread_id": thread_id, "input": user_input("hi")}),
        ("threads.retry_after_item", {"thread_id": thread_id, "item_id": item_id}),
        (
            "threads.custom_action",
            {"thread_id": thread_id, "item_id": item_id, "action": ACTION},
        ),
        ("items.list", {"thread_id": thread_id}),
        ("items.feedback", {"thread_id": thread_id, "item_ids": [item_id], "kind": "positive"}),
        ("threads.update", {"thread_id": thread_id, "title": "mine now"}),
        ("threads.delete", {"thread_id": thread_id}),
        ("threads.add_client_tool_output", {"thread_id": thread_id, "result": {}}),
        (
            "threads.add_structured_input",
            {"thread_id": thread_id, "item_id": item_id, "input": {"answers": {}}},
        ),
        (
            "threads.sync_custom_action",
            {"thread_id": thread_id, "item_id": item_id, "action": ACTION},
        ),
    ]


def snapshot(engine: Engine, user_id: str) -> list[Any]:
    with engine.connect() as conn:
        return [
            list(
                conn.execute(
                    text(f"SELECT * FROM {table} WHERE user_id = :u ORDER BY id"), {"u": user_id}
                )
            )
            for table in ("conversations", "messages", "chatkit_items", "tasks")
        ]


@pytest.fixture
def bobs(chat: TestClient, model: FakeModel, bob: Account) -> dict[str, str]:
    """Bob's thread with a user message, a widget and an answer."""
    add(chat, bob, "Bob's task")
    model.script(call("list_tasks", {"status": "all"}), say("Your tasks."))
    thread_id, events = new_thread(chat, bob, "what do I have?")
    [asked] = done_items(events, "user_message")
    [widget] = done_items(events, "widget")
    return {"thread": thread_id, "message": asked["id"], "widget": widget["id"]}


@pytest.mark.parametrize("index", range(11), ids=[k for k, _ in thread_requests("", "")])
def test_another_users_thread_is_a_missing_one_in_every_request_type(
    chat: TestClient,
    model: FakeModel,
    alice: Account,
    bob: Account,
    db_engine: Engine,
    bobs: dict[str, str],
    index: int,
) -> None:
    before = snapshot(db_engine, bob.id)
    kind, theirs = thread_requests(bobs["thread"], bobs["widget"])[index]
    _, unknown = thread_requests(UNKNOWN_THREAD, UNKNOWN_ITEM)[index]
    refused = send(chat, alice, kind, **theirs)
    missing = send(chat, alice, kind, **unknown)
    assert refused.status_code == 404, refused.text
    assert refused.content == missing.content
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {"error": _example("conversation_not_found")}
    assert snapshot(db_engine, bob.id) == before
    assert len(model.requests) == 2  # bob's turn only: nothing of alice's reached the model


def test_another_users_item_in_ones_own_thread_is_a_missing_one(
    chat: TestClient,
    model: FakeModel,
    alice: Account,
    bob: Account,
    db_engine: Engine,
    bobs: dict[str, str],
) -> None:
    model.script(call("list_tasks", {"status": "all"}), say("Yours."))
    mine, _ = new_thread(chat, alice, "what do I have?")
    before = snapshot(db_engine, bob.id)
    for their_item in (bobs["widget"], bobs["message"]):
        for kind, params in [
            ("threads.retry_after_item", {"thread_id": mine, "item_id": their_item}),
            ("threads.custom_action", {"thread_id": mine, "item_id": their_item, "action": ACTION}),
            ("items.feedback", {"thread_id": mine, "item_ids": [their_item], "kind": "negative"}),
        ]:
            refused = send(chat, alice, kind, **params)
            missing = send(chat, alice, kind, **{**params, **_unknown(params)})
            assert refused.status_code == 404, (kind, refused.text)
            assert refused.content == missing.content, kind
            assert refused.json() == {"error": _example("chatkit_item_not_found")}
        # Paging after their item is paging after an item that does not exist.
        after = send(chat, alice, "items.list", thread_id=mine, after=their_item)
        unknown_after = send(chat, alice, "items.list", thread_id=mine, after=UNKNOWN_ITEM)
        assert after.status_code == 200 and after.content == unknown_after.content
    after_thread = send(chat, alice, "threads.list", after=bobs["thread"])
    assert after_thread.content == send(chat, alice, "threads.list", after=UNKNOWN_THREAD).content
    assert snapshot(db_engine, bob.id) == before
    # Bob still sees his thread, whole.
    page = send(chat, bob, "items.list", thread_id=bobs["thread"]).json()
    assert [i["type"] for i in page["data"]] == ["assistant_message", "widget", "user_message"]


def _example(name: str) -> dict[str, Any]:
    """The error body the OpenAPI document shows for this example."""
    example = EXAMPLES[name]
    return {"code": example.code, "message": example.message, "details": list(example.details)}


def _unknown(params: dict[str, Any]) -> dict[str, Any]:
    if "item_ids" in params:
        return {"item_ids": [UNKNOWN_ITEM]}
    return {"item_id": UNKNOWN_ITEM}


def test_ids_are_unique_and_unguessable(
    chat: TestClient, model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    """Every thread, message, answer and widget id of a run is distinct and carries 128 bits
    (a thread's and a message's 122 random ones from gen_random_uuid), never the SDK's 32."""
    add(chat, alice, "t")
    model.script(*(s for _ in range(3) for s in (call("list_tasks", {}), say("ok"))))
    ids: list[str] = []
    for _ in range(3):
        thread_id, events = new_thread(chat, alice, "list")
        ids.append(thread_id)
        ids.extend(item["id"] for e in events if (item := e.get("item")) is not None)
    ids = list(dict.fromkeys(ids))  # an item is announced once and done once
    assert len(ids) == 3 * 4
    assert all(len(i.split("_", 1)[1]) == 32 for i in ids)
    with db_engine.connect() as conn:
        stored = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT public_id FROM conversations UNION ALL SELECT public_id FROM messages "
                    "UNION ALL SELECT public_id FROM chatkit_items"
                )
            )
        ]
    assert sorted(stored) == sorted(ids)
