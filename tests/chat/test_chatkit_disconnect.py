"""A ChatKit client that disconnects mid-stream, against the real server (uvicorn, a separate
process): the turn finishes on the server and the thread is consistent, as on /api/chat."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from sqlalchemy import Engine

from tests.chat import fake_model
from tests.chat.chatkit import PATH, body, user_input
from tests.chat.fake_model import Reply, call, say
from tests.chat.test_disconnect import stored_messages
from tests.conftest import Account, running_server


def test_a_client_that_disconnects_mid_stream_leaves_a_consistent_thread(
    database_url: str, alice: Account, db_engine: Engine
) -> None:
    """The client reads up to the task widget, then closes the connection while the model
    holds its answer back. The turn finishes and stores its answer; the task was added once;
    the thread then reads whole."""
    gate = threading.Event()

    def answer_when_let(request: dict[str, Any]) -> Reply:
        gate.wait(60)
        return say("Added \u201cBuy milk\u201d.")

    for fake in fake_model.serve():
        fake.script(call("add_task", {"title": "Buy milk"}), answer_when_let)
        env = {"CHAT_BASE_URL": fake.url, "CHAT_MODEL": "fake-model", "CHAT_API_KEY": "k"}
        with running_server(database_url, **env) as (base_url, _, log):
            with httpx.Client(base_url=base_url, timeout=60) as http:
                sent = body("threads.create", input=user_input("add milk"))
                thread_id = None
                with http.stream("POST", PATH, json=sent, headers=alice.headers) as response:
                    assert response.status_code == 200
                    assert response.headers["x-accel-buffering"] == "no"
                    for line in response.iter_lines():
                        if not line.startswith("data: "):
                            continue
                        event = json.loads(line.removeprefix("data: "))
                        if event["type"] == "thread.created":
                            thread_id = event["thread"]["id"]
                        if (
                            event["type"] == "thread.item.done"
                            and event["item"]["type"] == "widget"
                        ):
                            break
                # Disconnected. Now the model answers; the server stores it.
                gate.set()
                assert stored_messages(db_engine, 2) == [
                    ("user", "add milk", None),
                    ("assistant", "Added \u201cBuy milk\u201d.", None),
                ]
                listed = http.get("/api/tasks", headers=alice.headers).json()["data"]
                assert [t["title"] for t in listed] == ["Buy milk"]
                page = http.post(
                    PATH, json=body("items.list", thread_id=thread_id), headers=alice.headers
                ).json()
                assert [i["type"] for i in page["data"]] == [
                    "assistant_message",
                    "widget",
                    "user_message",
                ]
            # The turn's text never reached the log at INFO (the server's default here).
            assert "add milk" not in log.read_text()
