"""scripts/api.sh's chat commands against the real server with the fake model."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from tests.chat import fake_model
from tests.chat.fake_model import call, say
from tests.conftest import Account, running_server
from tests.scripts.test_api_script import Api, status_of

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def test_chat_commands(database_url: str, alice: Account) -> None:
    for model in fake_model.serve():
        env = {"CHAT_BASE_URL": model.url, "CHAT_MODEL": "fake-model"}
        with running_server(database_url, **env) as (base_url, _, _):
            api = Api(base_url, token=alice.token)
            model.script(
                call("add_task", {"title": "Buy milk"}), say("Added \u201cBuy milk\u201d.")
            )
            answer: Any = api.json("chat", "add a task to buy milk")["data"]
            assert answer["response"] == "Added \u201cBuy milk\u201d."
            conversation = str(answer["conversation_id"])
            model.script(say("You have one task."))
            streamed = api.run("chat-stream", "what do I have?", conversation)
            assert "event: delta" in streamed.stdout and "event: done" in streamed.stdout
            listed = api.json("conversations", "limit=5")["data"]
            assert [c["id"] for c in listed] == [int(conversation)]
            messages = api.json("messages", conversation, "limit=10")["data"]
            assert [m["role"] for m in messages] == ["user", "assistant"] * 2
            missing = api.run("chat-stream", "hi", "999999", expect_ok=False)
            assert json.loads(missing.stdout)["error"]["code"] == "NOT_FOUND"
            assert status_of(api.run("delete-conversation", conversation)) == 204
