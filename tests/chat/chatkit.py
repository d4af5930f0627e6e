"""Helpers for ChatKit's protocol over HTTP (`POST /api/chatkit`): the request bodies the
ChatKit front end sends, and its stream's `data:` frames."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.conftest import Account

PATH = "/api/chatkit"


def body(kind: str, /, **params: Any) -> dict[str, Any]:
    """A ChatKit request body, as the front end sends it."""
    return {"type": kind, "params": params, "metadata": {}}


def user_input(text: str) -> dict[str, Any]:
    """`UserMessageInput` as ChatKit's composer sends it."""
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "quoted_text": None,
        "inference_options": {"tool_choice": None, "model": None},
    }


def send(client: TestClient, account: Account, kind: str, /, **params: Any) -> httpx.Response:
    return client.post(PATH, json=body(kind, **params), headers=account.headers)


def frames(text: str) -> list[dict[str, Any]]:
    """The events of a ChatKit stream (`data: <json>` frames, nothing else)."""
    found = []
    for block in text.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            found.append(json.loads(block.removeprefix("data: ")))
    return found


def streamed(client: TestClient, account: Account, kind: str, /, **params: Any) -> list[Any]:
    response = send(client, account, kind, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return frames(response.text)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def new_thread(client: TestClient, account: Account, text: str) -> tuple[str, list[Any]]:
    """`threads.create` with a message: the new thread's id and the events."""
    events = streamed(client, account, "threads.create", input=user_input(text))
    return events[0]["thread"]["id"], events


def say_in(client: TestClient, account: Account, thread_id: str, text: str) -> list[Any]:
    return streamed(
        client, account, "threads.add_user_message", thread_id=thread_id, input=user_input(text)
    )


def done_items(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == kind
    ]


def answer_text(events: list[dict[str, Any]]) -> str:
    [answer] = done_items(events, "assistant_message")
    return "".join(part["text"] for part in answer["content"])


def items(client: TestClient, account: Account, thread_id: str, **params: Any) -> Any:
    response = send(client, account, "items.list", thread_id=thread_id, **params)
    assert response.status_code == 200, response.text
    return response.json()
