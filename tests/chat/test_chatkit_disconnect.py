"""A ChatKit client that disconnects mid-stream, against the real server (uvicorn, a separate
process): the turn finishes on the server and the thread is consistent, as on /api/chat."""

from __future__ import annotations

import json

from sqlalchemy import Engine

from tests.chat.chatkit import PATH, body, user_input
from tests.chat.fake_model import answered_after_disconnect, held_answer_server
from tests.conftest import Account


def test_a_client_that_disconnects_mid_stream_leaves_a_consistent_thread(
    database_url: str, alice: Account, db_engine: Engine
) -> None:
    """The client reads up to the task widget, then closes the connection while the model
    holds its answer back. The turn finishes and stores its answer; the task was added once;
    the thread then reads whole."""
    with held_answer_server(database_url) as (http, gate, log):
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
                if event["type"] == "thread.item.done" and event["item"]["type"] == "widget":
                    break
        answered_after_disconnect(http, gate, db_engine, alice.headers)
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
