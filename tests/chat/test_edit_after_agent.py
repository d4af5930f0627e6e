"""What the chat agent set survives a web form's edit (issue 43): the agent adds a task with
every field it can set, the user renames it in a front end that sends PUT with the fields its
form knows (`{title, description, completed}`), and nothing the agent set is lost."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.chat.fake_model import FakeModel, call, say
from tests.conftest import Account


def test_a_rename_in_the_web_form_keeps_what_the_agent_set(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    made = chat.post("/api/lists", json={"name": "Groceries"}, headers=alice.headers)
    assert made.status_code == 201, made.text
    arguments = {
        "title": "Buy milk",
        "description": "2 litres",
        "priority": "high",
        "due_date": "2030-12-01T09:00:00Z",
        "tags": ["errands"],
        "list": "Groceries",
        "recurrence": "FREQ=WEEKLY",
        "time_zone": "Europe/Berlin",
        "reminders": [{"minutes_before_due": 30}],
    }
    model.script(call("add_task", arguments), say("Added it."))
    answer = chat.post("/api/chat", json={"message": "add milk"}, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    [made_call] = answer.json()["data"]["tool_calls"]
    assert made_call["outcome"] == "ok", made_call
    task_id = made_call["result"]["task_id"]
    before = chat.get(f"/api/tasks/{task_id}", headers=alice.headers).json()["data"]
    assert before["list_id"] == made.json()["data"]["id"] and before["priority"] == "high"

    edit = {"title": "Buy oat milk", "description": "2 litres", "completed": False}
    edited = chat.put(f"/api/tasks/{task_id}", json=edit, headers=alice.headers)
    assert edited.status_code == 200, edited.text
    after = edited.json()["data"]
    lost = {
        k: (v, after[k])
        for k, v in before.items()
        if k not in {"title", "updated_at"} and after[k] != v
    }
    assert lost == {}
    assert after["title"] == "Buy oat milk"
