"""A client that disconnects mid-stream, against the real server (uvicorn, a separate
process): the turn finishes on the server and the conversation is consistent."""

from __future__ import annotations

from sqlalchemy import Engine

from tests.chat.fake_model import answered_after_disconnect, held_answer_server
from tests.chat.test_streaming import STREAM
from tests.conftest import Account


def test_a_client_that_disconnects_mid_stream_leaves_a_consistent_conversation(
    database_url: str, alice: Account, db_engine: Engine
) -> None:
    """Against the real server (uvicorn): the client reads up to the tool call's end, then
    closes the connection while the model is still holding its answer back. The turn
    finishes on the server and stores its answer; the task was added once."""
    with held_answer_server(database_url) as (http, gate, log):
        body = {"message": "add milk"}
        with http.stream(
            "POST", "/api/chat", json=body, headers={**alice.headers, **STREAM}
        ) as response:
            assert response.status_code == 200
            seen = []
            for line in response.iter_lines():
                if line.startswith("event: "):
                    seen.append(line.removeprefix("event: "))
                if seen and seen[-1] == "tool_call_end":
                    break
        answered_after_disconnect(http, gate, db_engine, alice.headers)
    # The turn's text never reached the log at INFO (the server's default here).
    assert "add milk" not in log.read_text()
