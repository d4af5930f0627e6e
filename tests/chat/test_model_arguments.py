"""Whatever the model writes is data (issue 38): tool arguments of any shape the JSON parser
accepts (deep nesting, huge arrays, long strings, odd numbers and strings) reach the tool's
validation and come back to the model as `VALIDATION_ERROR`; text that is not a JSON object
ends the turn with the documented 502. Never a 500, and never a stored message the API
cannot serve later: the conversation reads back, streamed or not.

An adversarial run found the first: arguments nested 255 levels deep answered 500, were
stored as a success, and made every later read of the conversation a 500."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from backend.config import Settings
from backend.main import create_app
from backend.observability.logging import ACCESS_LOGGER
from tests.chat.conftest import chat_settings
from tests.chat.fake_model import FakeModel, call, say, tool_results
from tests.chat.test_chat import tasks_of
from tests.chat.test_streaming import STREAM, events
from tests.conftest import Account
from tests.observability.test_metrics import samples, value


def _nested(depth: int) -> str:
    return '{"title": ' + "[" * depth + "]" * depth + "}"


# Arguments that are JSON (an object), each of which the tool must refuse as invalid.
INVALID = {
    "nested-255": _nested(255),
    "nested-600": _nested(600),
    "nested-5000": _nested(5000),
    "nested-objects": '{"title": "x", "tags": ' + '{"a": ' * 800 + "1" + "}" * 800 + "}",
    "huge-array": json.dumps({"title": "x", "tags": list(range(200_000))}),
    "long-string": json.dumps({"title": "x" * 300_000}),
    "long-key": json.dumps({"k" * 100_000: 1, "title": "x"}),
    "huge-number": '{"task_id": 1' + "0" * 4000 + "}",
    "overflowing-float": '{"task_id": 1e400}',
    "non-finite": '{"task_id": NaN, "title": Infinity}',
    "nul-and-surrogate": '{"title": "a\\u0000b\\ud800c"}',
    "nul-key": '{"ti\\u0000tle": "x"}',
}
# Text that is not a JSON object: the documented 502 `CHAT_PROVIDER_ERROR`.
MALFORMED = {
    "deep-array": "[" * 300 + "]" * 300,
    "unterminated-deep": "{" + '"a": [' * 2000,
    "huge-number-text": "1" * 5000,
    "long-garbage": "not json " * 50_000,
    "nul-garbage": "\u0000\ud800" * 10,
}


NUMBERS = ("huge-number", "overflowing-float", "non-finite")


def _tool(name: str) -> str:
    return "update_task" if name in NUMBERS else "add_task"


def _readable(chat: TestClient, account: Account, conversation: int) -> list[dict[str, Any]]:
    page = chat.get(f"/api/conversations/{conversation}/messages", headers=account.headers)
    assert page.status_code == 200, page.text[:500]
    listed = chat.get("/api/conversations", headers=account.headers)
    assert listed.status_code == 200, listed.text[:500]
    data: list[dict[str, Any]] = page.json()["data"]
    return data


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "streamed"])
@pytest.mark.parametrize("arguments", list(INVALID.values()), ids=list(INVALID))
def test_arguments_the_tool_cannot_use_are_its_validation_error(
    chat: TestClient, model: FakeModel, alice: Account, arguments: str, streamed: bool
) -> None:
    name = _tool(next(k for k, v in INVALID.items() if v == arguments))
    seen: list[Any] = []

    def answer(request: dict[str, Any]) -> Any:
        seen.extend(tool_results(request))
        return say("That did not work.")

    model.script(call(name, arguments), answer)
    headers = {**alice.headers, **(STREAM if streamed else {})}
    response = chat.post("/api/chat", json={"message": "try this"}, headers=headers)
    assert response.status_code == 200, response.text[:500]
    if streamed:
        received = events(response.text)
        assert received[-1][0] == "done", received[-1]
        data = received[-1][1]
    else:
        data = response.json()["data"]
    [made] = data["tool_calls"]
    assert (made["name"], made["outcome"], made["error_code"]) == (
        name,
        "error",
        "VALIDATION_ERROR",
    )
    # The model was told so, as a tool result, and could correct itself.
    assert [r["error"]["code"] for r in seen] == ["VALIDATION_ERROR"]
    assert tasks_of(chat, alice) == []
    stored = _readable(chat, alice, data["conversation_id"])
    assert [(m["role"], m["error_code"]) for m in stored] == [("user", None), ("assistant", None)]
    assert stored[1]["tool_calls"] == data["tool_calls"]
    # What is stored and answered is bounded, whatever the model sent.
    assert len(json.dumps(stored[1]["tool_calls"])) < 20_000


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "streamed"])
@pytest.mark.parametrize("arguments", list(MALFORMED.values()), ids=list(MALFORMED))
def test_arguments_that_are_not_an_object_end_the_turn_with_a_502(
    chat: TestClient, model: FakeModel, alice: Account, arguments: str, streamed: bool
) -> None:
    model.script(call("add_task", arguments))
    headers = {**alice.headers, **(STREAM if streamed else {})}
    response = chat.post("/api/chat", json={"message": "try this"}, headers=headers)
    if streamed:
        assert response.status_code == 200
        name, data = events(response.text)[-1]
        assert name == "error"
        error = data["error"]
    else:
        assert response.status_code == 502, response.text[:500]
        error = response.json()["error"]
    assert error["code"] == "CHAT_PROVIDER_ERROR"
    conversation = int(error["details"][0]["message"])
    stored = _readable(chat, alice, conversation)
    assert [(m["role"], m["error_code"]) for m in stored] == [
        ("user", None),
        ("assistant", "CHAT_PROVIDER_ERROR"),
    ]
    assert len(json.dumps(stored[1]["tool_calls"])) < 20_000
    assert tasks_of(chat, alice) == []


# Tools the agent does not have, named by the model: its text, never echoed or stored.
UNKNOWN_NAMES = {
    "surrogate": "bad\ud800name",
    "nul": "bad\u0000name",
    "huge": "n" * 200_000,
    "plain": "drop_database",
}


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "streamed"])
@pytest.mark.parametrize("arguments", ["[]", _nested(600), "{}"], ids=["array", "deep", "object"])
@pytest.mark.parametrize("name", list(UNKNOWN_NAMES.values()), ids=list(UNKNOWN_NAMES))
def test_a_tool_the_agent_does_not_have_ends_the_turn_with_the_generic_502(
    chat: TestClient, model: FakeModel, alice: Account, name: str, arguments: str, streamed: bool
) -> None:
    """A review found a 500 (an error message that could not be encoded) and a stream with
    no last event, from an unknown tool name with a lone surrogate and arguments that are
    not an object, and a 200 KB name echoed in the error's message."""
    model.script(call(name, arguments))
    headers = {**alice.headers, **(STREAM if streamed else {})}
    response = chat.post("/api/chat", json={"message": "try this"}, headers=headers)
    if streamed:
        assert response.status_code == 200
        last, data = events(response.text)[-1]
        assert last == "error", response.text[:500]
        error = data["error"]
    else:
        assert response.status_code == 502, response.text[:500]
        error = response.json()["error"]
    assert error["code"] == "CHAT_PROVIDER_ERROR"
    assert "name" not in error["message"] and len(response.text) < 5_000
    conversation = int(error["details"][0]["message"])
    stored = _readable(chat, alice, conversation)
    assert [(m["role"], m["error_code"]) for m in stored] == [
        ("user", None),
        ("assistant", "CHAT_PROVIDER_ERROR"),
    ]
    assert tasks_of(chat, alice) == []


def test_a_model_that_corrects_itself_after_a_deep_argument_adds_one_task(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    """A keyed retry of a turn with odd arguments replays what was stored: the stored
    answer is one the API can serve (it answered 500 forever)."""
    headers = {**alice.headers, "Idempotency-Key": "deep-1"}
    model.script(
        call("add_task", _nested(300)), call("add_task", {"title": "Fixed"}), say("Added.")
    )
    body = {"message": "add it"}
    first = chat.post("/api/chat", json=body, headers=headers)
    again = chat.post("/api/chat", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200), again.text[:500]
    assert again.json() == first.json()
    assert [t["title"] for t in tasks_of(chat, alice)] == ["Fixed"]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "streamed"])
def test_an_answer_with_odd_text_is_stored_readable(
    chat: TestClient, model: FakeModel, alice: Account, streamed: bool
) -> None:
    """The model's own words are data too: NUL and lone surrogates (which PostgreSQL and
    UTF-8 refuse) are replaced, and a very long answer is cut, where it is stored."""
    model.script(say("a\u0000b\ud800c" + "z" * 100_000))
    headers = {**alice.headers, **(STREAM if streamed else {})}
    response = chat.post("/api/chat", json={"message": "say it"}, headers=headers)
    assert response.status_code == 200, response.text[:500]
    data = events(response.text)[-1][1] if streamed else response.json()["data"]
    assert data["response"].startswith("a\ufffdb\ufffd")
    assert len(data["response"]) <= 32_000  # ANSWER_MAX_CHARS
    stored = _readable(chat, alice, data["conversation_id"])
    assert stored[1]["content"] == data["response"]


def test_a_streamed_failure_is_logged_and_counted_with_its_status(
    settings: Settings, model: FakeModel, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream answers 200 before the turn fails; the access line and the metrics record
    the status its error deserves (it was logged as 200)."""
    token = "metrics-token-0123456789"
    app = create_app(chat_settings(settings, model, metrics_token=SecretStr(token)))
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    with TestClient(app, raise_server_exceptions=False) as client:
        model.script(call("add_task", "not json"))
        headers = {**alice.headers, **STREAM}
        response = client.post("/api/chat", json={"message": "hi"}, headers=headers)
        assert response.status_code == 200
        assert events(response.text)[-1][1]["error"]["code"] == "CHAT_PROVIDER_ERROR"
        found = samples(client, Authorization=f"Bearer {token}")
    lines = [r.__dict__ for r in caplog.records if r.name == ACCESS_LOGGER]
    [line] = [found for found in lines if found.get("route") == "/api/chat"]
    assert line["status"] == 502
    labels = {"method": "POST", "route": "/api/chat"}
    assert value(found, "http_requests_total", **labels, status="502") == 1
    assert value(found, "http_requests_total", **labels, status="200") == 0
