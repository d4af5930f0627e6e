"""A chat turn never breaks its conversation (issue 38): PostgreSQL frozen at each stage of a
turn (before the door, during a tool call, after a committed call, while the answer is
stored) and a worker killed mid-turn, then retries with and without the Idempotency-Key.

What must hold every time: each answer is a documented status (200, or 503 naming the
conversation and every call that committed; 409 `IDEMPOTENCY_KEY_IN_USE` only while an
attempt holds the turn); each tool call that committed made exactly one task, and a retry
with the key gives it its recorded result instead of running it again; the conversation
reads back, every user message answered by one answer or error record; and a retry without
the key shows the model what committed. The adversarial run found: a 503 with `details: []`,
then 409 "still being processed" for minutes with nothing running, the task added again by a
keyless retry, and the user's message left with no answer and no record of the call.

Real servers (`serve`) against the dedicated PostgreSQL, which is paused (SIGSTOP) from
inside the scripted model's steps: the freeze lands exactly at the stage named.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

from tests.chat import fake_model
from tests.chat.fake_model import FakeModel, Reply, call, say, tool_results
from tests.chat.test_streaming import STREAM, events
from tests.conftest import bearer, make_token, running_server
from tests.reliability.servers import DedicatedPostgres

STATEMENT_TIMEOUT_MS = 1000  # a response timeout of 3 s: a frozen database is noticed fast
# A long turn timeout: the lease of a turn (what `IDEMPOTENCY_KEY_IN_USE` may last) is 60 s
# + twice the database's waits + 5 s = 75 s; the first attempt's record must free the turn
# long before that, as soon as the database answers again.
CHAT_TIMEOUT = 60
SERVER_ENV = {
    "DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
    "DB_POOL_TIMEOUT_SECONDS": "2",
    "AUTO_MIGRATE": "false",
    "CHAT_API_KEY": "k",
    "CHAT_MODEL": "fake-model",
}
# How long a retry may keep meeting 503 (the database recovering) or 409 (the first attempt's
# record not stored yet) after the database answers again: seconds of margin, far below the
# lease (a retry that waits out the lease fails this).
RECOVERY_BOUND = 30.0


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModel]:
    yield from fake_model.serve()


@pytest.fixture(scope="module")
def chat_server(dedicated_db: str, model: FakeModel) -> Iterator[str]:
    env = {**SERVER_ENV, "CHAT_BASE_URL": model.url, "CHAT_TIMEOUT_SECONDS": str(CHAT_TIMEOUT)}
    with running_server(dedicated_db, **env) as (base_url, _, _):
        yield base_url


@pytest.fixture
def fresh_model(model: FakeModel) -> Iterator[FakeModel]:
    model.steps.clear()
    model.requests.clear()
    model.released.clear()
    yield model
    model.released.set()


def _user() -> dict[str, str]:
    return bearer(make_token(sub=f"chat-fault-{uuid.uuid4().hex[:8]}", lifetime=900))


def _post(
    http: httpx.Client, headers: dict[str, str], body: dict[str, Any], streamed: bool
) -> tuple[int, dict[str, Any]]:
    """A turn's status and body (streamed: the status its last event carries)."""
    response = http.post(
        "/api/chat", json=body, headers={**headers, **(STREAM if streamed else {})}
    )
    if not streamed or response.status_code != 200:
        return response.status_code, response.json()
    name, data = events(response.text)[-1]
    if name == "done":
        return 200, {"data": data}
    return {"SERVICE_UNAVAILABLE": 503}.get(data["error"]["code"], 599), data


def _check_failure(status: int, body: dict[str, Any], committed: list[str]) -> int | None:
    """A failed turn's answer is the documented 503, naming its conversation and each call
    that committed (in order). Its conversation id, if the turn began."""
    assert status == 503, (status, body)
    error = body["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE", error
    details = error["details"]
    if not details:  # stopped before the door: nothing began, nothing committed
        assert committed == []
        return None
    assert details[0]["field"] == "conversation_id"
    named = [(d["field"], d["message"]) for d in details[1:]]
    assert named == [(f"tool_calls[{i}]", name) for i, name in enumerate(committed)], named
    return int(details[0]["message"])


def _retry(
    http: httpx.Client, headers: dict[str, str], body: dict[str, Any], streamed: bool
) -> tuple[int, dict[str, Any], list[int]]:
    """Retry until the turn answers, as a client would: 503 while the database recovers,
    409 (with Retry-After) while the first attempt holds the turn. Every status seen."""
    seen: list[int] = []
    deadline = time.monotonic() + RECOVERY_BOUND
    while True:
        status, answer = _post(http, headers, body, streamed)
        seen.append(status)
        if status not in (409, 503) or time.monotonic() > deadline:
            return status, answer, seen
        if status == 409:
            assert answer["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE"
        time.sleep(1)  # Retry-After; every try counts against the chat limit (20 a minute)


def _wait_for_database(http: httpx.Client) -> None:
    deadline = time.monotonic() + RECOVERY_BOUND
    while http.get("/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "the database never answered again"
        time.sleep(0.2)


def _conversation(http: httpx.Client, headers: dict[str, str], conversation: int) -> list[Any]:
    page = http.get(f"/api/conversations/{conversation}/messages", headers=headers)
    assert page.status_code == 200, page.text[:500]
    messages: list[Any] = page.json()["data"]
    # Every user message has exactly one answer or error record, none left unfinished.
    users = [m for m in messages if m["role"] == "user"]
    answers = [m for m in messages if m["role"] == "assistant"]
    assert len(users) == len(answers), messages
    assert all(m["error_code"] != "CHAT_TURN_UNFINISHED" for m in answers), answers
    return messages


def _titles(http: httpx.Client, headers: dict[str, str]) -> list[str]:
    listed = http.get("/api/tasks", headers=headers)
    assert listed.status_code == 200, listed.text
    return sorted(t["title"] for t in listed.json()["data"])


def _pausing(pg: DedicatedPostgres, reply: Reply) -> Callable[[dict[str, Any]], Reply]:
    def step(request: dict[str, Any]) -> Reply:
        pg.pause()
        return reply

    return step


def _sees(title: str) -> Callable[[dict[str, Any]], Reply]:
    """A model that adds `title` unless the conversation shows it added (a committed call's
    result in what it was sent)."""

    def step(request: dict[str, Any]) -> Reply:
        done = any(
            isinstance(r, dict) and r.get("title") == title and r.get("status") == "created"
            for r in tool_results(request)
        )
        return say(f"{title} is there.") if done else call("add_task", {"title": title})

    return step


STAGES = ["before-the-door", "during-a-tool-call", "after-a-committed-call", "storing-the-answer"]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "streamed"])
@pytest.mark.parametrize("stage", STAGES)
def test_a_database_frozen_at_each_stage_of_a_turn(
    dedicated_pg: DedicatedPostgres,
    chat_server: str,
    fresh_model: FakeModel,
    stage: str,
    streamed: bool,
) -> None:
    model, pg = fresh_model, dedicated_pg
    headers = _user()
    keyed = {**headers, "Idempotency-Key": f"turn-{stage}"}
    body = {"message": "add A (and B)"}
    with httpx.Client(base_url=chat_server, timeout=120) as http:
        _wait_for_database(http)  # an earlier test's freeze is over
        assert http.get("/api/tasks", headers=headers).status_code == 200  # the account
        # The first attempt, frozen at its stage. Expected: its status and committed calls.
        committed: list[str] = []
        if stage == "before-the-door":
            pg.pause()
        elif stage == "during-a-tool-call":
            model.script(_pausing(pg, call("add_task", {"title": "A"})), say("Could not add A."))
        elif stage == "after-a-committed-call":
            committed = ["add_task"]
            model.script(
                call("add_task", {"title": "A"}),
                _pausing(pg, call("add_task", {"title": "B"})),
                say("Added A; B failed."),
            )
        else:
            committed = ["add_task"]
            model.script(call("add_task", {"title": "A"}), _pausing(pg, say("Added A.")))
        try:
            status, first = _post(http, keyed, body, streamed)
        finally:
            pg.resume()
        if status == 200:  # the freeze ended before the answer was stored (a tool call's)
            assert stage == "during-a-tool-call", first
            conversation = first["data"]["conversation_id"]
        else:
            conversation = _check_failure(status, first, committed)
        _wait_for_database(http)

        # The retry with the same key: the stored answer, or the turn resumed from the
        # recorded calls (A's is not run again; B, which never committed, runs).
        model.steps.clear()
        model.script(
            call("add_task", {"title": "A"}), call("add_task", {"title": "B"}), say("Done.")
        )
        status, again, seen = _retry(http, keyed, body, streamed)
        assert status == 200, (seen, again)
        assert set(seen) <= {200, 409, 503}, seen
        conversation = conversation or again["data"]["conversation_id"]
        assert again["data"]["conversation_id"] == conversation
        if stage in ("after-a-committed-call", "storing-the-answer"):
            recorded = next(
                c for c in again["data"]["tool_calls"] if c["arguments"]["title"] == "A"
            )
            assert recorded["outcome"] == "ok" and recorded["result"]["status"] == "created"

        # A retry without the key: a new turn, whose model sees what committed.
        model.steps.clear()
        model.script(_sees("A"), _sees("A"), say("Done."))
        status, plain = _post(http, headers, {**body, "conversation_id": conversation}, streamed)
        assert status == 200, plain
        titles = _titles(http, headers)
        assert titles.count("A") == 1, titles  # one task per committed call, never two
        assert titles.count("B") <= 1, titles
        stored = _conversation(http, headers, conversation)
        made = [
            c["arguments"]["title"]
            for m in stored
            for c in m["tool_calls"]
            if c["name"] == "add_task" and c["outcome"] == "ok"
        ]
        assert sorted(set(made)) == titles, (made, titles)


def _children(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def test_a_worker_killed_mid_turn_leaves_a_turn_a_keyed_retry_resumes(
    dedicated_db: str, fresh_model: FakeModel
) -> None:
    """The process dies after a tool call committed, while the model is still writing: the
    call's record committed with its write, so the conversation names it at once; a retry
    with the key is 409 while the dead attempt's lease lasts (it cannot say it died), then
    resumes from the record: the task is not added again."""
    model = fresh_model
    reached = threading.Event()

    def hold(request: dict[str, Any]) -> Reply:
        reached.set()
        model.released.wait(120)
        return say("never heard")

    model.script(call("add_task", {"title": "A"}), hold)
    headers = _user()
    keyed = {**headers, "Idempotency-Key": "killed-1"}
    body = {"message": "add A"}
    # A short turn timeout: the lease a dead attempt holds is 5 s + twice the database's
    # waits (2 s pool, 3 s answer) + 5 s = 20 s.
    env = {**SERVER_ENV, "CHAT_BASE_URL": model.url, "CHAT_TIMEOUT_SECONDS": "5"}
    with (
        running_server(dedicated_db, **env) as (base_url, process, _),
        httpx.Client(base_url=base_url, timeout=60) as http,
    ):
        assert http.get("/api/tasks", headers=headers).status_code == 200
        answers: list[Any] = []

        def first() -> None:
            try:
                answers.append(http.post("/api/chat", json=body, headers=keyed))
            except httpx.TransportError as exc:
                answers.append(exc)

        sender = threading.Thread(target=first)
        sender.start()
        assert reached.wait(60), "the turn never came back to the model"
        for pid in [*_children(process.pid), process.pid]:
            psutil.Process(pid).kill()
        process.wait(30)
        sender.join(60)
        assert answers and isinstance(answers[0], httpx.TransportError), answers
    model.released.set()

    # What the dead attempt left: the message, answered by a record of the committed call.
    engine = create_engine(dedicated_db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT m.role, m.error_code, m.tool_calls FROM messages m "
                    "JOIN users u ON u.id = m.user_id WHERE m.conversation_id = ("
                    "SELECT conversation_id FROM messages WHERE idempotency_key = 'killed-1') "
                    "ORDER BY m.id"
                )
            ).all()
    finally:
        engine.dispose()
    assert [(r.role, r.error_code) for r in rows] == [
        ("user", None),
        ("assistant", "CHAT_TURN_UNFINISHED"),
    ]
    assert [(c["name"], c["outcome"]) for c in rows[1].tool_calls] == [("add_task", "ok")]

    model.steps.clear()
    model.requests.clear()
    model.script(call("add_task", {"title": "A"}), say("Added A."))
    with (
        running_server(dedicated_db, **env) as (base_url, _, _),
        httpx.Client(base_url=base_url, timeout=60) as http,
    ):
        deadline = time.monotonic() + 20 + RECOVERY_BOUND
        while True:
            retried = http.post("/api/chat", json=body, headers=keyed)
            if retried.status_code != 409 or time.monotonic() > deadline:
                break
            assert retried.headers["Retry-After"] == "1"
            time.sleep(2)  # every try counts against the chat limit (20 a minute)
        assert retried.status_code == 200, retried.text
        [made] = retried.json()["data"]["tool_calls"]
        assert made["outcome"] == "ok" and made["result"]["status"] == "created"
        assert _titles(http, headers) == ["A"]  # not added again
        conversation = retried.json()["data"]["conversation_id"]
        _conversation(http, headers, conversation)
        # The model was shown the committed call as done before it called it again.
        shown = [m for m in model.requests[0]["messages"] if m["role"] == "tool"]
        assert [json.loads(m["content"])["title"] for m in shown] == ["A"]
