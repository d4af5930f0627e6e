"""The task widget (specs/chat.md, "ChatKit"): what the agent lists or changes is shown as a
list of tasks with their title, due date and Complete / Delete buttons; a button runs the
task routes' service for the caller, counted as a write, and redraws its row; a stale widget
(its task since deleted or changed) answers gracefully."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.chat.chatkit import done_items, frames, items, new_thread, send
from tests.chat.fake_model import FakeModel, call, say
from tests.chat.test_chat import add, tasks_of
from tests.conftest import Account


def rows(widget: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row as (key, texts, button actions)."""
    shown = []
    for row in widget["children"]:
        texts = [c["value"] for col in row["children"] for c in col.get("children") or []]
        actions = [c["onClickAction"] for c in row["children"] if c["type"] == "Button"]
        shown.append({"key": row.get("key"), "texts": texts, "actions": actions})
    return shown


def listed_widget(chat: TestClient, model: FakeModel, account: Account) -> tuple[str, Any]:
    """A thread whose agent listed the caller's tasks: its id and the widget item."""
    model.script(call("list_tasks", {"status": "all"}), say("Here they are."))
    thread_id, events = new_thread(chat, account, "what do I have?")
    [widget] = done_items(events, "widget")
    return thread_id, widget


def press(
    chat: TestClient, account: Account, thread_id: str, widget: Any, kind: str, task_id: Any
) -> Any:
    return send(
        chat,
        account,
        "threads.custom_action",
        thread_id=thread_id,
        item_id=widget["id"],
        action={"type": kind, "payload": {"task_id": task_id}},
    )


def test_a_listing_shows_each_task_with_its_due_date_and_actions(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    milk = add(chat, alice, "Buy milk", due_date="2030-01-02T09:00:00Z")
    done = add(chat, alice, "File taxes", completed=True)
    _, widget = listed_widget(chat, model, alice)
    assert widget["widget"]["type"] == "ListView"
    shown = {row["key"]: row for row in rows(widget["widget"])}
    assert shown[f"task-{milk}"]["texts"] == ["Buy milk", "Due 2030-01-02"]
    assert shown[f"task-{milk}"]["actions"] == [
        {"type": "task.complete", "payload": {"task_id": milk}},
        {"type": "task.delete", "payload": {"task_id": milk}},
    ]
    # A completed task has no Complete button.
    assert shown[f"task-{done}"]["texts"] == ["File taxes", "No due date \u00b7 done"]
    assert [a["type"] for a in shown[f"task-{done}"]["actions"]] == ["task.delete"]


def test_a_day_is_shown_as_the_day_listed_and_redrawn(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    """A task due on a day is stored at the day's start on its clock (in Auckland the day
    before in UTC): the row shows the day, from the listing and from the completed row."""
    rent = add(chat, alice, "Pay rent", due_date="2030-12-01", time_zone="Pacific/Auckland")
    thread_id, widget = listed_widget(chat, model, alice)
    [row] = rows(widget["widget"])
    assert row["texts"] == ["Pay rent", "Due 2030-12-01"]
    response = press(chat, alice, thread_id, widget, "task.complete", rent)
    assert response.status_code == 200, response.text
    [row] = rows(frames(response.text)[1]["item"]["widget"])
    assert row["texts"] == ["Pay rent", "Due 2030-12-01 \u00b7 done"]


def test_complete_runs_the_task_service_counts_a_write_and_redraws_the_row(
    chat_app: Callable[..., TestClient], model: FakeModel, alice: Account
) -> None:
    chat = chat_app(rate_limit_enabled=True)
    milk = add(chat, alice, "Buy milk")
    thread_id, widget = listed_widget(chat, model, alice)
    response = press(chat, alice, thread_id, widget, "task.complete", milk)
    assert response.status_code == 200, response.text
    # Counted as a write (the task-writes policy's headers on the answer).
    assert '"task-writes"' in response.headers["RateLimit"]
    events = frames(response.text)
    assert [e["type"] for e in events] == ["stream_options", "thread.item.replaced"]
    redrawn = events[1]["item"]
    assert redrawn["id"] == widget["id"]
    [row] = rows(redrawn["widget"])
    assert row["texts"] == ["Buy milk", "No due date \u00b7 done"]
    assert [a["type"] for a in row["actions"]] == ["task.delete"]
    assert chat.get(f"/api/tasks/{milk}", headers=alice.headers).json()["data"]["completed"]
    # What the thread shows from now on is the redrawn widget.
    stored = [i for i in items(chat, alice, thread_id)["data"] if i["type"] == "widget"]
    assert stored[0]["widget"] == redrawn["widget"]
    assert len(model.requests) == 2  # no model call for a button


def test_delete_removes_the_task_and_says_so_in_the_row(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    milk = add(chat, alice, "Buy milk")
    bread = add(chat, alice, "Buy bread")
    thread_id, widget = listed_widget(chat, model, alice)
    response = press(chat, alice, thread_id, widget, "task.delete", milk)
    assert response.status_code == 200, response.text
    events = frames(response.text)
    shown = {row["key"]: row for row in rows(events[1]["item"]["widget"])}
    assert shown[f"task-{milk}"]["texts"] == ["Buy milk", "This task no longer exists."]
    assert shown[f"task-{milk}"]["actions"] == []
    assert shown[f"task-{bread}"]["texts"][0] == "Buy bread"  # the other row as it was
    assert [t["id"] for t in tasks_of(chat, alice)] == [bread]


def test_a_stale_widget_answers_gracefully(
    chat: TestClient, model: FakeModel, alice: Account
) -> None:
    milk = add(chat, alice, "Buy milk")
    bread = add(chat, alice, "Buy bread")
    thread_id, widget = listed_widget(chat, model, alice)
    # Since the widget was drawn: one task deleted, the other renamed (through REST).
    assert chat.delete(f"/api/tasks/{milk}", headers=alice.headers).status_code == 204
    renamed = chat.patch(f"/api/tasks/{bread}", json={"title": "Rye"}, headers=alice.headers)
    assert renamed.status_code == 200
    gone = press(chat, alice, thread_id, widget, "task.complete", milk)
    assert gone.status_code == 200, gone.text
    events = frames(gone.text)
    assert [e["type"] for e in events] == ["stream_options", "thread.item.replaced", "notice"]
    assert events[2]["message"] == "That task no longer exists."
    shown = {row["key"]: row for row in rows(events[1]["item"]["widget"])}
    assert shown[f"task-{milk}"]["texts"][1] == "This task no longer exists."
    again = press(chat, alice, thread_id, widget, "task.delete", milk)
    assert again.status_code == 200 and frames(again.text)[-1]["type"] == "notice"
    changed = press(chat, alice, thread_id, widget, "task.complete", bread)
    row = {r["key"]: r for r in rows(frames(changed.text)[1]["item"]["widget"])}[f"task-{bread}"]
    assert row["texts"] == ["Rye", "No due date \u00b7 done"]  # drawn from the task as it is


def test_an_action_names_a_task_its_widget_shows(
    chat: TestClient, model: FakeModel, alice: Account, bob: Account
) -> None:
    add(chat, alice, "Buy milk")
    theirs = add(chat, bob, "Bob's")
    thread_id, widget = listed_widget(chat, model, alice)
    other = add(chat, alice, "Not listed")  # added after the widget was drawn
    missing = press(chat, alice, thread_id, widget, "task.delete", 10**9)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Item not found"
    for task_id in (theirs, other):
        refused = press(chat, alice, thread_id, widget, "task.delete", task_id)
        assert refused.status_code == 404 and refused.content == missing.content
    assert [t["title"] for t in tasks_of(chat, bob)] == ["Bob's"]
    assert other in [t["id"] for t in tasks_of(chat, alice)]
    for kind, payload in (
        ("task.explode", {"task_id": other}),
        ("task.complete", {"task_id": "1"}),
        ("task.complete", {"task_id": True}),
        ("task.complete", {"task_id": 2**70}),
        ("task.complete", {"task_id": 0}),
        ("task.complete", None),
    ):
        bad = send(
            chat,
            alice,
            "threads.custom_action",
            thread_id=thread_id,
            item_id=widget["id"],
            action={"type": kind, "payload": payload},
        )
        assert bad.status_code == 422, bad.text
