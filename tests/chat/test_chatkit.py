"""ChatKit's protocol (`POST /api/chatkit`) over HTTP against the real app, PostgreSQL and the
fake Chat Completions server: a new thread's events, later turns (the Chat Completions traps),
streaming, the listings, updates and deletes, a restart, and one history with /api/chat."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.chat.chatkit_server import answer_id
from tests.chat.chatkit import (
    PATH,
    answer_text,
    done_items,
    frames,
    items,
    new_thread,
    say_in,
    send,
    types,
)
from tests.chat.fake_model import FakeModel, call, fail, say
from tests.chat.test_chat import tasks_of
from tests.conftest import Account, count_rows

# 128 random bits (a thread's and a message's: 122 of them, gen_random_uuid's).
THREAD_ID = re.compile(r"^thr_[0-9a-f]{32}$")
MESSAGE_ID = re.compile(r"^msg_[0-9a-f]{32}$")
ANSWER_ID = re.compile(r"^ans_[0-9a-f]{32}$")
WIDGET_ID = re.compile(r"^wdg_[0-9a-f]{32}$")


def test_a_new_thread_streams_chatkits_events_and_stores_the_turn(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    answer = "Added \u201cBuy milk\u201d to your tasks, due whenever you like."
    model.script(call("add_task", {"title": "Buy milk"}), say(answer))
    response = send(
        chat,
        alice,
        "threads.create",
        input={
            "content": [{"type": "input_text", "text": "add milk"}],
            "attachments": [],
            "inference_options": {},
        },
    )
    assert response.status_code == 200, response.text
    # Not buffered by a proxy on the way.
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "no-cache" in response.headers["cache-control"]
    assert response.headers["x-accel-buffering"] == "no"
    events = frames(response.text)
    # The untitled thread is named after its first message, once, as the answer starts.
    [updated] = [e for e in events if e["type"] == "thread.updated"]
    assert updated["thread"]["title"] == "add milk"
    assert types(events).index("thread.updated") == 4
    events = [e for e in events if e["type"] != "thread.updated"]
    sequence = types(events)
    assert sequence[:5] == [
        "thread.created",
        "thread.item.done",  # the user's message
        "stream_options",
        "thread.item.done",  # the task widget of add_task
        "thread.item.added",  # the answer, as it starts
    ]
    assert sequence[5:-1] == ["thread.item.updated"] * (len(sequence) - 6)
    assert sequence[-1] == "thread.item.done"
    thread = events[0]["thread"]
    assert THREAD_ID.match(thread["id"])
    [asked] = done_items(events, "user_message")
    assert MESSAGE_ID.match(asked["id"]) and asked["content"][0]["text"] == "add milk"
    [widget] = done_items(events, "widget")
    assert WIDGET_ID.match(widget["id"])
    # The answer streams in pieces (text deltas) into one item, then is done.
    reply = events[4]["item"]
    assert ANSWER_ID.match(reply["id"]) and reply["id"] == answer_id(asked["id"])
    updates = [e["update"] for e in events[5:-1]]
    assert updates[0]["type"] == "assistant_message.content_part.added"
    deltas = [u["delta"] for u in updates[1:]]
    assert all(u["type"] == "assistant_message.content_part.text_delta" for u in updates[1:])
    assert len(deltas) > 1 and "".join(deltas) == answer
    assert all(e["item_id"] == reply["id"] for e in events[5:-1])
    assert events[-1]["item"]["id"] == reply["id"] and answer_text(events) == answer
    # The task was added for the caller; the thread is a conversation like any other.
    assert [t["title"] for t in tasks_of(chat, alice)] == ["Buy milk"]
    [conversation] = chat.get("/api/conversations", headers=alice.headers).json()["data"]
    stored = chat.get(
        f"/api/conversations/{conversation['id']}/messages", headers=alice.headers
    ).json()["data"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "add milk"),
        ("assistant", answer),
    ]
    assert [c["name"] for c in stored[1]["tool_calls"]] == ["add_task"]
    # What items.list answers is what streamed, with the same ids, newest first.
    page = items(chat, alice, thread["id"])
    assert [(i["type"], i["id"]) for i in page["data"]] == [
        ("assistant_message", reply["id"]),
        ("widget", widget["id"]),
        ("user_message", asked["id"]),
    ]
    assert page["data"][1]["widget"] == widget["widget"]


def test_a_second_and_a_third_turn_work_on_chat_completions(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    """The SDK's traps: every answer had the id `__fake_id__`, and a second turn's history
    (answers as `output_text` parts) failed in the Chat Completions converter."""
    model.script(say("one"), say("two"), say("three"))
    thread_id, first = new_thread(chat, alice, "first")
    second = say_in(chat, alice, thread_id, "second")
    third = say_in(chat, alice, thread_id, "third")
    answers = [done_items(events, "assistant_message")[0] for events in (first, second, third)]
    assert [answer_text(events) for events in (first, second, third)] == ["one", "two", "three"]
    ids = [answer["id"] for answer in answers]
    assert len(set(ids)) == 3 and all(ANSWER_ID.match(i) for i in ids)
    assert "error" not in types(second) + types(third)
    # The third call's history: earlier turns as plain strings, in order.
    sent = [(m["role"], m["content"]) for m in model.requests[2]["messages"][1:]]
    assert sent == [
        ("user", "first"),
        ("assistant", "one"),
        ("user", "second"),
        ("assistant", "two"),
        ("user", "third"),
    ]
    page = items(chat, alice, thread_id)
    assert [i["id"] for i in page["data"] if i["type"] == "assistant_message"] == ids[::-1]


def test_a_turn_sends_the_newest_messages_within_the_history_budget(
    chat_app: Callable[..., TestClient], model: FakeModel, alice: Account
) -> None:
    chat = chat_app(chat_history_messages=2)
    model.script(call("list_tasks", {}), say("one"), say("two"), say("three"))
    thread_id, _ = new_thread(chat, alice, "first")
    say_in(chat, alice, thread_id, "second")
    say_in(chat, alice, thread_id, "third")
    # The third turn: the two newest messages before it (widgets are not history: the
    # answer's tool calls are), then its own.
    sent = [(m["role"], m["content"]) for m in model.requests[3]["messages"][1:]]
    assert sent == [("user", "second"), ("assistant", "two"), ("user", "third")]


def test_items_list_pages_from_the_newest_and_a_thread_opens_on_them(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    model.script(say("one"), say("two"), say("three"))
    thread_id, _ = new_thread(chat, alice, "first")
    say_in(chat, alice, thread_id, "second")
    say_in(chat, alice, thread_id, "third")

    def texts(page: dict[str, Any]) -> list[str]:
        return [i["content"][0]["text"] for i in page["data"]]

    newest = items(chat, alice, thread_id, limit=2)
    assert texts(newest) == ["three", "third"] and newest["has_more"] is True
    older = items(chat, alice, thread_id, limit=2, after=newest["after"])
    assert texts(older) == ["two", "second"]
    oldest = items(chat, alice, thread_id, limit=2, after=older["after"])
    assert texts(oldest) == ["one", "first"] and oldest["has_more"] is False
    ascending = items(chat, alice, thread_id, limit=4, order="asc")
    assert texts(ascending) == ["first", "one", "second", "two"]
    opened = send(chat, alice, "threads.get_by_id", thread_id=thread_id)
    assert opened.status_code == 200, opened.text
    assert texts(opened.json()["items"]) == ["first", "one", "second", "two", "third", "three"]


def test_threads_list_update_and_delete(
    chat: TestClient, model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    model.script(call("add_task", {"title": "Buy milk"}), say("one"), say("two"))
    older, _ = new_thread(chat, alice, "first thread")
    newer, _ = new_thread(chat, alice, "second thread")
    listed = send(chat, alice, "threads.list", limit=1)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [t["id"] for t in page["data"]] == [newer] and page["has_more"] is True
    rest = send(chat, alice, "threads.list", limit=1, after=page["after"]).json()
    assert [t["id"] for t in rest["data"]] == [older] and rest["has_more"] is False
    oldest_first = send(chat, alice, "threads.list", order="asc").json()
    assert [t["id"] for t in oldest_first["data"]] == [older, newer]

    renamed = send(chat, alice, "threads.update", thread_id=older, title="  Groceries ")
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["id"] == older and renamed.json()["title"] == "Groceries"
    opened = send(chat, alice, "threads.get_by_id", thread_id=older).json()
    assert opened["title"] == "Groceries"
    titles = [t["title"] for t in send(chat, alice, "threads.list").json()["data"]]
    assert titles == ["second thread", "Groceries"]
    for title in ("", "x" * 201, "a\x00b", "\u202eevil"):
        refused = send(chat, alice, "threads.update", thread_id=older, title=title)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == "params.title"

    assert count_rows(db_engine, "chatkit_items") == 1  # the widget of add_task
    deleted = send(chat, alice, "threads.delete", thread_id=older)
    assert deleted.status_code == 200 and deleted.json() == {}
    gone = send(chat, alice, "threads.get_by_id", thread_id=older)
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == "Conversation not found"
    assert count_rows(db_engine, "chatkit_items") == 0  # with its conversation
    assert count_rows(db_engine, "messages") == 2  # the other thread's
    assert [t["id"] for t in send(chat, alice, "threads.list").json()["data"]] == [newer]


def test_one_history_with_api_chat_both_ways(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    model.script(say("hello from chat"), say("hello from chatkit"), say("back on chat"))
    started = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers).json()["data"]
    [thread] = send(chat, alice, "threads.list").json()["data"]
    opened = send(chat, alice, "threads.get_by_id", thread_id=thread["id"]).json()
    assert [i["content"][0]["text"] for i in opened["items"]["data"]] == ["hi", "hello from chat"]
    events = say_in(chat, alice, thread["id"], "and in chatkit")
    assert answer_text(events) == "hello from chatkit"
    # The model heard the whole conversation, whichever door its turns came through.
    sent = [(m["role"], m["content"]) for m in model.requests[1]["messages"][1:]]
    assert sent == [("user", "hi"), ("assistant", "hello from chat"), ("user", "and in chatkit")]
    again = chat.post(
        "/api/chat",
        json={"message": "and back", "conversation_id": started["conversation_id"]},
        headers=alice.headers,
    )
    assert again.status_code == 200, again.text
    stored = chat.get(
        f"/api/conversations/{started['conversation_id']}/messages", headers=alice.headers
    ).json()["data"]
    assert [m["content"] for m in stored] == [
        "hi",
        "hello from chat",
        "and in chatkit",
        "hello from chatkit",
        "and back",
        "back on chat",
    ]


def test_a_thread_continues_after_a_restart(
    chat_app: Callable[..., TestClient], model: FakeModel, alice: Account
) -> None:
    first = chat_app()
    model.script(say("noted"), say("still here"))
    thread_id, _ = new_thread(first, alice, "remember me")
    second = chat_app()  # a new instance over the same database
    events = say_in(second, alice, thread_id, "still there?")
    assert answer_text(events) == "still here"
    assert [m["content"] for m in model.requests[1]["messages"][1:]] == [
        "remember me",
        "noted",
        "still there?",
    ]


def test_a_failed_turn_is_retried_by_chatkits_retry(
    chat: TestClient, model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    """`threads.retry_after_item` on the user message is the chat turn's keyed retry: the
    failure is re-run (its answer replaced), an answer is replayed without a model call."""
    model.script(fail(500), say("better now"))
    thread_id, events = new_thread(chat, alice, "hello")
    assert types(events)[-1] == "error"
    [asked] = done_items(events, "user_message")
    retried = send(
        chat, alice, "threads.retry_after_item", thread_id=thread_id, item_id=asked["id"]
    )
    assert retried.status_code == 200, retried.text
    assert answer_text(frames(retried.text)) == "better now"
    assert count_rows(db_engine, "messages") == 2  # one question, one answer
    replayed = send(
        chat, alice, "threads.retry_after_item", thread_id=thread_id, item_id=asked["id"]
    )
    assert answer_text(frames(replayed.text)) == "better now"
    assert len(model.requests) == 2


def test_cors_preflight_needs_no_token(chat: TestClient) -> None:
    response = chat.options(
        PATH,
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in response.headers["access-control-allow-methods"]
    elsewhere = chat.options(
        PATH,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in elsewhere.headers


def test_openai_chatkit_is_the_pinned_version_and_imports_on_our_agents_sdk() -> None:
    """openai-chatkit imports private Agents SDK names (`_HEADERS_OVERRIDE`,
    `HEADERS_OVERRIDE`): the two move together, pinned (pyproject.toml, the lock)."""
    import importlib
    from importlib.metadata import version

    server = importlib.import_module("chatkit.server")
    assert hasattr(server, "ChatKitServer")
    assert version("openai-chatkit") == "1.6.5"
    assert version("openai-agents").startswith("0.24.")


def test_a_deleted_account_takes_its_threads_and_items_with_it(
    chat: TestClient, model: FakeModel, alice: Account, bob: Account, db_engine: Engine
) -> None:
    model.script(call("add_task", {"title": "a"}), say("one"), call("add_task", {"title": "b"}))
    model.script(say("two"))
    new_thread(chat, alice, "alice's")
    new_thread(chat, bob, "bob's")
    assert count_rows(db_engine, "chatkit_items") == 2
    assert chat.delete("/api/auth/me", headers=alice.headers).status_code == 204
    assert count_rows(db_engine, "chatkit_items") == 1  # bob's widget only
    assert count_rows(db_engine, "conversations") == 1
    assert count_rows(db_engine, "messages") == 2


def test_a_new_thread_is_titled_after_its_first_line(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    model.script(say("ok"), say("ok"), say("ok"))
    long_line = "plan " * 30
    thread_id, events = new_thread(chat, alice, f"\n  {long_line}\nsecond line")
    [updated] = [e for e in events if e["type"] == "thread.updated"]
    title = updated["thread"]["title"]
    assert len(title) == 60 and title.endswith("\u2026") and title.startswith("plan plan")
    # A later message does not rename it; /api/chat's conversations stay untitled.
    later = say_in(chat, alice, thread_id, "something else")
    assert "thread.updated" not in types(later)
    chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    titles = [t.get("title") for t in send(chat, alice, "threads.list").json()["data"]]
    assert titles == [None, title]
