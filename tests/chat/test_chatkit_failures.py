"""What ChatKit's client is told when something is wrong (specs/chat.md, "ChatKit"): what a
client sends wrong is an HTTP status with our envelope before anything streams (never the
SDK's 500 or an empty 200); the chat limit and a server without a model are 429 and 503; a
provider failure after the turn began is the stream's `error` event and a stored error."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from backend.config import Settings
from backend.main import create_app
from backend.observability.logging import ACCESS_LOGGER
from tests.chat.chatkit import PATH, body, frames, new_thread, send, types, user_input
from tests.chat.conftest import chat_settings
from tests.chat.fake_model import GARBAGE, HANG, FakeModel, call, fail, say
from tests.chat.test_chat import tasks_of
from tests.conftest import Account, count_rows
from tests.observability.test_metrics import samples, value


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert "Traceback" not in response.text and "SELECT" not in response.text
    return error


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _stored(engine: Engine) -> tuple[int, int, int]:
    return tuple(count_rows(engine, t) for t in ("conversations", "messages", "chatkit_items"))  # type: ignore[return-value]


CREATE = {"type": "threads.create", "metadata": {}}
DAY = 24 * 3600


@pytest.mark.parametrize(
    "sent",
    [
        b"not json",
        b"",
        b"[]",
        {},
        {"type": "threads.nonsense", "params": {}},
        {"type": "threads.create"},
        # ChatKit's input without `attachments` or `inference_options` (the SDK's 500).
        {**CREATE, "params": {"input": {"content": [{"type": "input_text", "text": "hi"}]}}},
        {**CREATE, "params": {"input": {**user_input("hi"), "content": "hi"}}},
        {**CREATE, "params": {"input": user_input("")}},
        {**CREATE, "params": {"input": user_input("   \n ")}},
        {**CREATE, "params": {"input": user_input("x" * 4001)}},
        {**CREATE, "params": {"input": user_input("a\x00b")}},
        {**CREATE, "params": {"input": user_input("\u202eevil")}},
        {**CREATE, "params": {"input": {**user_input("hi"), "attachments": ["atc_1"]}}},
        body("threads.get_by_id", thread_id="thr_\u0000x"),
        b'{"type": "threads.get_by_id", "params": {"thread_id": "\\ud800"}}',
        body("threads.get_by_id", thread_id="x" * 101),
        body("items.list", thread_id="thr_1", after="a b"),
        body("threads.list", after="thr_\u0000"),
        body("items.feedback", thread_id="thr_1", item_ids=["ok", "not/ok"], kind="positive"),
        body("threads.list", limit=0),
        body("items.feedback", thread_id="thr_1", item_ids=[], kind="positive"),
        body("items.feedback", thread_id="thr_1", item_ids=["x"] * 101, kind="positive"),
        body("threads.list", limit=10_000),
        body("threads.list", order="sideways"),
        body("attachments.create", name="a.png", size=1, mime_type="image/png"),
        body("attachments.delete", attachment_id="atc_1"),
        body("input.transcribe", audio_base64="AAAA", mime_type="audio/webm"),
    ],
    ids=lambda sent: str(sent)[:60],
)
def test_a_malformed_request_is_a_422_and_stores_nothing(
    chat: TestClient, model: FakeModel, alice: Account, db_engine: Engine, sent: Any
) -> None:
    kwargs: dict[str, Any] = {"content": sent} if isinstance(sent, bytes) else {"json": sent}
    response = chat.post(
        PATH, headers={**alice.headers, "Content-Type": "application/json"}, **kwargs
    )
    error = _error(response, 422, "VALIDATION_ERROR")
    assert error["details"], error
    assert _stored(db_engine) == (0, 0, 0)
    assert model.requests == []


@pytest.mark.parametrize(
    "kind",
    [
        "threads.add_client_tool_output",
        "threads.add_structured_input",
        "threads.sync_custom_action",
    ],
)
def test_what_this_server_does_not_support_is_a_clear_422(
    chat: TestClient, model: FakeModel, alice: Account, kind: str
) -> None:
    model.script(say("hi"))
    thread_id, _ = new_thread(chat, alice, "hello")
    params: dict[str, Any] = {
        "threads.add_client_tool_output": {"thread_id": thread_id, "result": {}},
        "threads.add_structured_input": {
            "thread_id": thread_id,
            "item_id": "itm_1",
            "input": {"status": "answered", "answers": {}},
        },
        "threads.sync_custom_action": {
            "thread_id": thread_id,
            "item_id": None,
            "action": {"type": "task.complete", "payload": {"task_id": 1}},
        },
    }[kind]
    error = _error(send(chat, alice, kind, **params), 422, "VALIDATION_ERROR")
    assert error["message"] == f"`{kind}` is not supported by this server"


def test_no_token_or_a_bad_one_is_a_401(chat: TestClient) -> None:
    sent = body("threads.list")
    _error(chat.post(PATH, json=sent), 401, "UNAUTHORIZED")
    bad = {"Authorization": "Bearer not-a-token"}
    _error(chat.post(PATH, json=sent, headers=bad), 401, "UNAUTHORIZED")


def test_no_chat_model_is_a_503_before_anything_streams(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    response = send(client, alice, "threads.create", input=user_input("hi"))
    _error(response, 503, "CHAT_NOT_CONFIGURED")
    assert _stored(db_engine) == (0, 0, 0)
    # The JSON requests need no model.
    assert send(client, alice, "threads.list").status_code == 200


def test_the_chat_rate_limit_is_a_429_before_anything_streams(
    chat_app: Callable[..., TestClient], model: FakeModel, alice: Account, db_engine: Engine
) -> None:
    # A day's window (fixed, aligned): the three turns must share one, which a minute's could
    # end between (as tests/chat/test_failures.py's limit test says).
    chat = chat_app(
        rate_limit_enabled=True, chat_rate_limit_per_user=2, chat_rate_limit_window_seconds=DAY
    )
    model.script(say("one"), say("two"))
    thread_id, _ = new_thread(chat, alice, "one")
    second = send(
        chat, alice, "threads.add_user_message", thread_id=thread_id, input=user_input("two")
    )
    assert second.status_code == 200
    assert '"chat";r=0;' in second.headers["RateLimit"]
    refused = send(
        chat, alice, "threads.add_user_message", thread_id=thread_id, input=user_input("three")
    )
    _error(refused, 429, "RATE_LIMITED")
    assert int(refused.headers["Retry-After"]) > 0
    assert len(model.requests) == 2
    assert count_rows(db_engine, "messages") == 4


@pytest.mark.parametrize(
    ("steps", "code", "overrides"),
    [
        ([fail(429, "7")], "CHAT_PROVIDER_UNAVAILABLE", {}),
        ([fail(500)], "CHAT_PROVIDER_UNAVAILABLE", {}),
        ([fail(401)], "CHAT_PROVIDER_ERROR", {}),
        ([GARBAGE], "CHAT_PROVIDER_ERROR", {}),
        ([HANG], "CHAT_PROVIDER_TIMEOUT", {"chat_timeout_seconds": 1}),
        ([call("add_task", '{"title": "unterminated')], "CHAT_PROVIDER_ERROR", {}),
        ([call("drop_all_tables", {})], "CHAT_PROVIDER_ERROR", {}),
        ([call("list_tasks", {})] * 3, "CHAT_TOO_MANY_TURNS", {"chat_max_turns": 2}),
        ([], "CHAT_PROVIDER_UNAVAILABLE", {"chat_base_url": "unreachable"}),
    ],
    ids=[
        "rate-limited",
        "server-error",
        "refused",
        "not-json",
        "timeout",
        "malformed-arguments",
        "unknown-tool",
        "past-max-turns",
        "unreachable",
    ],
)
def test_every_provider_failure_is_an_error_event_and_a_stored_error(
    chat_app: Callable[..., TestClient],
    model: FakeModel,
    alice: Account,
    steps: list[Any],
    code: str,
    overrides: dict[str, Any],
) -> None:
    if overrides.get("chat_base_url") == "unreachable":
        overrides = {"chat_base_url": f"http://127.0.0.1:{_closed_port()}/v1"}
    chat = chat_app(**overrides)
    model.script(*steps)
    response = send(chat, alice, "threads.create", input=user_input("hi"))
    assert response.status_code == 200, response.text
    events = frames(response.text)
    assert types(events)[:3] == ["thread.created", "thread.item.done", "stream_options"]
    last = events[-1]
    assert last["type"] == "error" and last["code"] == "custom" and last["allow_retry"] is True
    assert last["message"].endswith(f"({code})")
    # Stored as /api/chat stores a failed turn: the question and the error's answer.
    [conversation] = chat.get("/api/conversations", headers=alice.headers).json()["data"]
    stored = chat.get(
        f"/api/conversations/{conversation['id']}/messages", headers=alice.headers
    ).json()["data"]
    assert [(m["role"], m["error_code"]) for m in stored] == [("user", None), ("assistant", code)]
    assert tasks_of(chat, alice) == []


def test_no_turn_text_is_logged_at_info(
    chat: TestClient, model: FakeModel, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    model.script(call("add_task", {"title": "whisper-title-31"}), say("said-quietly-47"))
    thread_id, _ = new_thread(chat, alice, "confide-secret-83")
    model.script(fail(500))
    send(
        chat,
        alice,
        "threads.add_user_message",
        thread_id=thread_id,
        input=user_input("confide-secret-84"),
    )
    send(chat, alice, "threads.update", thread_id=thread_id, title="titled-secret-12")
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert shown, "nothing was logged at all: the check would be empty"
    for record in shown:
        line = record.getMessage() + str(record.__dict__)
        for secret in ("confide-secret", "whisper-title", "said-quietly", "titled-secret"):
            assert secret not in line, record


def test_a_failed_stream_is_logged_and_counted_with_its_status(
    settings: Settings, model: FakeModel, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    """As /api/chat's: the stream answered 200 before the turn failed; the access line and
    the metrics record the status its error deserves."""
    token = "metrics-token-0123456789"
    app = create_app(chat_settings(settings, model, metrics_token=SecretStr(token)))
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    with TestClient(app, raise_server_exceptions=False) as client:
        model.script(fail(401))
        response = send(client, alice, "threads.create", input=user_input("hi"))
        assert response.status_code == 200
        assert frames(response.text)[-1]["message"].endswith("(CHAT_PROVIDER_ERROR)")
        found = samples(client, Authorization=f"Bearer {token}")
    lines = [r.__dict__ for r in caplog.records if r.name == ACCESS_LOGGER]
    [line] = [found for found in lines if found.get("route") == PATH]
    assert line["status"] == 502
    labels = {"method": "POST", "route": PATH}
    assert value(found, "http_requests_total", **labels, status="502") == 1
    assert value(found, "http_requests_total", **labels, status="200") == 0
