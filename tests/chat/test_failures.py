"""What a client is told when chat cannot answer (specs/chat.md, "Failure modes"): no
provider, a provider that is down, slow, rate-limiting or answering nonsense; the committed
tool calls a failure reports and a keyed retry never repeats; the chat rate limit; bad input.
Every wait is bounded by the settings, never by the test's clock."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.responses import EXAMPLES
from tests.chat.fake_model import GARBAGE, HANG, FakeModel, call, fail, hanging_turn, say
from tests.chat.test_chat import tasks_of
from tests.conftest import Account, count_rows

DAY = 24 * 3600


def _error(response: httpx.Response, status: int, example: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    expected = EXAMPLES[example]
    assert body["code"] == expected.code
    if example != "chat_provider_error":  # its message names what went wrong
        assert body["message"] == expected.message
    return body


def _details(body: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(d["field"], d["message"]) for d in body["details"]]


def test_no_provider_is_its_own_503_and_the_rest_of_the_api_works(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    response = client.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    _error(response, 503, "chat_not_configured")
    assert "Retry-After" not in response.headers  # a retry will not help
    assert count_rows(db_engine, "messages") == 0
    assert client.post("/api/tasks", json={"title": "t"}, headers=alice.headers).status_code == 201
    assert client.get("/api/conversations", headers=alice.headers).status_code == 200


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_provider_that_is_down_is_a_503_with_retry_after(
    chat_app: Callable[..., TestClient], alice: Account, db_engine: Engine
) -> None:
    chat = chat_app(chat_base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    response = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    body = _error(response, 503, "chat_provider_unavailable")
    assert response.headers["Retry-After"] == "5"
    # The conversation holds the message and the failed answer: consistent, resumable.
    conversation = int(body["details"][0]["message"])
    page = chat.get(f"/api/conversations/{conversation}/messages", headers=alice.headers)
    stored = page.json()["data"]
    assert [(m["role"], m["error_code"]) for m in stored] == [
        ("user", None),
        ("assistant", "CHAT_PROVIDER_UNAVAILABLE"),
    ]


@pytest.mark.parametrize(
    ("step", "status", "example", "retry_after"),
    [
        (fail(429, "7"), 503, "chat_provider_unavailable", "7"),
        (fail(429, "86400"), 503, "chat_provider_unavailable", "300"),
        (fail(500), 503, "chat_provider_unavailable", "5"),
        (fail(401), 502, "chat_provider_error", None),
        (GARBAGE, 502, "chat_provider_error", None),
    ],
    ids=["rate-limited", "rate-limited-long", "server-error", "refused", "not-json"],
)
def test_provider_answers_that_are_failures(
    chat: TestClient,
    model: FakeModel,
    alice: Account,
    step: Any,
    status: int,
    example: str,
    retry_after: str | None,
) -> None:
    model.script(step)
    response = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    _error(response, status, example)
    assert response.headers.get("Retry-After") == retry_after
    assert len(model.requests) == 1  # the client does not retry on its own


def test_a_slow_provider_is_a_504_after_the_timeout(
    chat_app: Callable[..., TestClient], model: FakeModel, alice: Account
) -> None:
    chat = chat_app(chat_timeout_seconds=1)
    model.script(HANG)
    response = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    _error(response, 504, "chat_provider_timeout")
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("steps", "example"),
    [
        ([call("add_task", '{"title": "unterminated')], "chat_provider_error"),
        ([call("add_task", "[1, 2]")], "chat_provider_error"),
        ([call("drop_all_tables", {})], "chat_provider_error"),
        ([call("list_tasks", {})] * 3, "chat_too_many_turns"),
    ],
    ids=["malformed-arguments", "arguments-not-an-object", "unknown-tool", "past-max-turns"],
)
def test_nonsense_from_the_model_is_a_502(
    chat_app: Callable[..., TestClient],
    model: FakeModel,
    alice: Account,
    steps: list[Any],
    example: str,
) -> None:
    chat = chat_app(chat_max_turns=2)
    model.script(*steps)
    response = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    _error(response, 502, example)
    assert tasks_of(chat, alice) == []


def test_committed_calls_are_reported_and_a_keyed_retry_never_repeats_them(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "turn-1"}
    body = {"message": "add a task to buy milk"}
    model.script(call("add_task", {"title": "Buy milk"}), fail(503))
    failed = chat.post("/api/chat", json=body, headers=headers)
    error = _error(failed, 503, "chat_provider_unavailable")
    conversation = error["details"][0]["message"]
    assert _details(error) == [("conversation_id", conversation), ("tool_calls[0]", "add_task")]
    [task] = tasks_of(chat, alice)

    # The retry: the model is shown the committed call as done, and calls it again anyway.
    model.script(call("add_task", {"title": "Buy milk"}), say("Added \u201cBuy milk\u201d."))
    retried = chat.post("/api/chat", json=body, headers=headers)
    assert retried.status_code == 200, retried.text
    answer = retried.json()["data"]
    assert str(answer["conversation_id"]) == conversation
    [made] = answer["tool_calls"]
    assert made["result"] == {"task_id": task["id"], "status": "created", "title": "Buy milk"}
    assert len(tasks_of(chat, alice)) == 1  # not added twice
    shown = model.requests[2]["messages"]
    assert [m["role"] for m in shown[1:]] == ["user", "assistant", "tool"]
    assert json.loads(shown[3]["content"])["task_id"] == task["id"]

    # One user message, one answer (the failed one replaced), as if it had worked at once.
    page = chat.get(f"/api/conversations/{conversation}/messages", headers=alice.headers)
    stored = page.json()["data"]
    assert [(m["role"], m["error_code"]) for m in stored] == [("user", None), ("assistant", None)]
    assert stored[1]["content"] == "Added \u201cBuy milk\u201d."


def test_a_keyed_turn_that_answered_is_replayed(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "turn-2"}
    model.script(call("add_task", {"title": "Buy milk"}), say("Added."))
    first = chat.post("/api/chat", json={"message": "add milk"}, headers=headers)
    again = chat.post("/api/chat", json={"message": "add milk"}, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(model.requests) == 2 and len(tasks_of(chat, alice)) == 1
    other = chat.post("/api/chat", json={"message": "add bread"}, headers=headers)
    _error(other, 422, "idempotency_key_mismatch")
    conversation = first.json()["data"]["conversation_id"]
    elsewhere = {"message": "add milk", "conversation_id": conversation + 1}
    _error(chat.post("/api/chat", json=elsewhere, headers=headers), 422, "idempotency_key_mismatch")


def test_a_key_whose_first_attempt_is_running_is_in_use(
    chat_app: Callable[..., TestClient], model: FakeModel, alice: Account
) -> None:
    chat = chat_app(chat_timeout_seconds=60)
    headers = {**alice.headers, "Idempotency-Key": "turn-3"}
    model.script(HANG)
    with hanging_turn(
        model, lambda: chat.post("/api/chat", json={"message": "hi"}, headers=headers)
    ):
        second = chat.post("/api/chat", json={"message": "hi"}, headers=headers)
        _error(second, 409, "idempotency_key_in_use")
        assert second.headers["Retry-After"] == "1"
    assert len(model.requests) == 1


def test_chat_has_its_own_rate_limit_with_the_ietf_headers(
    chat_app: Callable[..., TestClient], model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    # A day's window (fixed, aligned to midnight UTC): the three turns below must share one,
    # and a minute's (the default) ends between them in a share of runs equal to the
    # turns' seconds out of 60: under one in a hundred here, more on a loaded machine.
    chat = chat_app(
        rate_limit_enabled=True, chat_rate_limit_per_user=2, chat_rate_limit_window_seconds=DAY
    )
    model.script(say("one"), say("two"))
    for _ in range(2):
        ok = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
        assert ok.status_code == 200, ok.text
        assert f'"chat";q=2;w={DAY}' in ok.headers["RateLimit-Policy"]
        assert '"task-writes"' in ok.headers["RateLimit-Policy"]
    assert '"chat";r=0;' in ok.headers["RateLimit"]
    refused = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    _error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) > 0
    assert '"chat";r=0;' in refused.headers["RateLimit"]
    assert len(model.requests) == 2
    assert count_rows(db_engine, "messages") == 4
    # Only chat is limited: task writes go on.
    assert chat.post("/api/tasks", json={"title": "t"}, headers=alice.headers).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": ""},
        {"message": "   \n "},
        {"message": "x" * 4001},
        {"message": "a\x00b"},
        {"message": "\u202eevil"},
        b'{"message": "\\ud800 a lone surrogate, escaped in the JSON"}',
        {"message": "\ufffe"},
        {"message": 5},
        {"message": "hi", "conversation_id": "1"},
        {"message": "hi", "conversation_id": 1.5},
        {"message": "hi", "conversation_id": True},
        {"message": "hi", "conversation_id": 0},
        {"message": "hi", "conversation_id": 2**70},
        {"message": "hi", "user_id": "someone"},
        ["hi"],
    ],
)
def test_bad_input_is_a_422_and_changes_nothing(
    chat: TestClient, model: FakeModel, alice: Account, db_engine: Engine, body: Any
) -> None:
    if isinstance(body, bytes):
        headers = {**alice.headers, "Content-Type": "application/json"}
        response = chat.post("/api/chat", content=body, headers=headers)
    else:
        response = chat.post("/api/chat", json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert count_rows(db_engine, "messages") == 0
    assert model.requests == []


def test_a_missing_conversation_is_a_404(
    chat: TestClient, model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    body = {"message": "hi", "conversation_id": 2**63 - 1}
    _error(chat.post("/api/chat", json=body, headers=alice.headers), 404, "conversation_not_found")
    assert count_rows(db_engine, "messages") == 0 and model.requests == []


def test_message_content_is_never_logged_at_info(
    chat: TestClient, model: FakeModel, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    model.script(call("add_task", {"title": "whisper-title-31"}), say("said-quietly-47"))
    chat.post("/api/chat", json={"message": "confide-secret-83"}, headers=alice.headers)
    model.script(fail(500))
    chat.post("/api/chat", json={"message": "confide-secret-84"}, headers=alice.headers)
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert shown, "nothing was logged at all: the check would be empty"
    for record in shown:
        line = record.getMessage() + str(record.__dict__)
        for secret in ("confide-secret", "whisper-title", "said-quietly"):
            assert secret not in line, record


def test_a_turn_over_the_write_limit_stores_nothing(
    chat_app: Callable[..., TestClient], model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    """A turn is a write: over the per-user write limit, the door refuses it and its rows
    (a new conversation, the message) are not written (migration 0020's triggers, 0021)."""
    # A day's window, so the writes below share one (see the chat limit's test).
    chat = chat_app(rate_limit_task_writes_per_user=1, rate_limit_task_window_seconds=DAY)
    model.script(say("one"))
    first = chat.post("/api/chat", json={"message": "hi"}, headers=alice.headers)
    assert first.status_code == 200, first.text
    conversation = first.json()["data"]["conversation_id"]
    for body in ({"message": "again"}, {"message": "again", "conversation_id": conversation}):
        refused = chat.post("/api/chat", json=body, headers=alice.headers)
        _error(refused, 429, "rate_limited")
        assert '"task-writes";r=0;' in refused.headers["RateLimit"]
    assert count_rows(db_engine, "conversations") == 1
    assert count_rows(db_engine, "messages") == 2
    assert len(model.requests) == 1


def test_each_write_tool_records_itself_with_its_write(
    chat: TestClient, model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    """Every write a turn can make (a plain and a recurring completion, an update, a
    delete, an add) commits its record with it: a failure before the answer is stored still
    leaves each one on the turn's record, and a keyed retry runs none of them again."""
    plain = chat.post("/api/tasks", json={"title": "plain"}, headers=alice.headers).json()
    series = chat.post(
        "/api/tasks",
        json={"title": "weekly", "due_date": "2030-01-07T09:00:00Z", "recurrence": "weekly"},
        headers=alice.headers,
    ).json()
    gone = chat.post("/api/tasks", json={"title": "gone"}, headers=alice.headers).json()
    ids = [t["data"]["id"] for t in (plain, series, gone)]
    calls = [
        ("complete_task", {"task_id": ids[0]}),
        ("complete_task", {"task_id": ids[1]}),
        ("update_task", {"task_id": ids[0], "title": "renamed"}),
        ("delete_task", {"task_id": ids[2]}),
        ("add_task", {"title": "new"}),
    ]
    headers = {**alice.headers, "Idempotency-Key": "writes-1"}
    model.script(*(call(name, arguments) for name, arguments in calls), fail(503))
    failed = chat.post("/api/chat", json={"message": "do it all"}, headers=headers)
    error = _error(failed, 503, "chat_provider_unavailable")
    assert [d["message"] for d in error["details"][1:]] == [name for name, _ in calls]
    before = sorted((t["title"], t["completed"]) for t in tasks_of(chat, alice, status="all"))
    assert before == [("new", False), ("renamed", True), ("weekly", False), ("weekly", True)]
    with db_engine.connect() as conn:
        recorded = conn.execute(
            text("SELECT tool_calls FROM messages WHERE role = 'assistant'")
        ).scalar_one()
    assert [(c["name"], c["outcome"]) for c in recorded] == [(n, "ok") for n, _ in calls]

    model.script(*(call(name, arguments) for name, arguments in calls), say("All done."))
    retried = chat.post("/api/chat", json={"message": "do it all"}, headers=headers)
    assert retried.status_code == 200, retried.text
    made = retried.json()["data"]["tool_calls"]
    assert [(c["name"], c["outcome"]) for c in made] == [(n, "ok") for n, _ in calls]
    after = sorted((t["title"], t["completed"]) for t in tasks_of(chat, alice, status="all"))
    assert after == before  # nothing ran twice (no second occurrence, no second "new")
