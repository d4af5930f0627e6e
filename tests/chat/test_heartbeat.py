"""A turn's key is in use only while an attempt is actually running (issue 38): a running
attempt renews its claim every `CHAT_HEARTBEAT_SECONDS`, so it keeps its turn past any lease,
and a killed one's key is free again a few beats after it died (before: for its whole lease,
99 s by default). Beats that do not get through must not let a second attempt run beside it.

Over real PostgreSQL, with short beats and database waits (a lease of seconds) so that the
waits here are a few beats; every wait is for a condition (a row, a reached model step), and
the only waits for time are lower bounds the property itself is stated in (a lease, two
beats), which no machine speed makes too short."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from backend.chat.turn import lease
from backend.config import Settings
from backend.errors import IdempotencyKeyInUse
from backend.services.chat.conversations import ConversationService
from tests.chat.conftest import chat_settings
from tests.chat.fake_model import HANG, FakeModel, Reply, call, hanging_turn, say
from tests.chat.test_chat import tasks_of
from tests.chat.test_turn_fencing import _begin, _work
from tests.conftest import Account, running_server

# A lease of 3 x 2 s + (1 s + 2.5 s) = 9.5 s, where the code before heartbeats held a turn
# for 60 s + 2 x 3.5 s + 5 s = 72 s.
FAST = {
    "chat_heartbeat_seconds": 2.0,
    "chat_timeout_seconds": 60.0,
    "db_pool_timeout_seconds": 1.0,
    "db_statement_timeout_ms": 500,
    "chat_rate_limit_per_user": 1000,  # a retry a second is no flood here
}
# How long a keyed retry may meet 409 after the attempt died: the lease and a margin, far
# below the lease of a whole turn (a retry that waits that out fails this).
FREED_WITHIN = 30.0


def _record(engine: Engine, key: str) -> Any:
    """The turn's record (unfinished while it runs), with the database's clock."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT a.*, now() AS now FROM messages a JOIN messages u "
                "ON u.user_id = a.user_id AND a.reply_to = u.id WHERE u.idempotency_key = :key"
            ),
            {"key": key},
        ).first()


def _until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        threading.Event().wait(0.1)


def test_a_beat_keeps_the_turn_and_a_taken_over_attempt_hears_it(
    db_engine: Engine, settings: Settings, alice: Account
) -> None:
    """Through the service: the lease counts from the last beat, not from the start; a beat
    of an attempt whose turn a retry took over renews nothing."""
    minute = timedelta(minutes=1)
    first = _begin(db_engine, settings, alice.id, minute)
    with db_engine.begin() as conn:  # the attempt began an hour ago, and never beat since
        conn.execute(
            text(
                "UPDATE messages SET created_at = created_at - interval '1 hour', "
                "heartbeat_at = heartbeat_at - interval '1 hour' WHERE role = 'assistant'"
            )
        )
    held = _record(db_engine, "key-1").created_at
    with _work(db_engine, settings, alice.id) as work:
        assert work.service(ConversationService).beat(first.message_id, held)  # alive: it beats
    with pytest.raises(IdempotencyKeyInUse):  # an hour-old turn, beaten just now: in use
        _begin(db_engine, settings, alice.id, minute)
    with db_engine.begin() as conn:  # then it died: no beat for an hour
        conn.execute(
            text(
                "UPDATE messages SET heartbeat_at = heartbeat_at - interval '1 hour' "
                "WHERE role = 'assistant'"
            )
        )
    retry = _begin(db_engine, settings, alice.id, minute)
    assert retry.message_id == first.message_id and retry.held > held
    with _work(db_engine, settings, alice.id) as work:
        assert not work.service(ConversationService).beat(first.message_id, held)  # taken over
        assert work.service(ConversationService).beat(retry.message_id, retry.held)


def test_a_live_attempt_keeps_its_turn_past_its_lease(
    chat_app: Callable[..., TestClient],
    model: FakeModel,
    alice: Account,
    db_engine: Engine,
    settings: Settings,
) -> None:
    """The model holds its answer back for longer than a lease: the beats keep the turn, and
    a keyed retry meanwhile is 409, however long the attempt runs."""
    chat = chat_app(**FAST)
    headers = {**alice.headers, "Idempotency-Key": "live-1"}
    model.script(HANG)
    with hanging_turn(
        model, lambda: chat.post("/api/chat", json={"message": "hi"}, headers=headers)
    ):
        started = _record(db_engine, "live-1").created_at
        held_for = lease(chat_settings(settings, model, **FAST))
        # The attempt has run for longer than a lease (a lower bound: the database's clock).
        _until(
            lambda: _record(db_engine, "live-1").now > started + held_for,
            "the database's clock stood still",
            held_for.total_seconds() + 30,
        )
        record = _record(db_engine, "live-1")
        assert record.error_code == "CHAT_TURN_UNFINISHED"
        assert record.created_at == started  # its token: a beat does not change it
        assert record.heartbeat_at > started  # it beat meanwhile
        second = chat.post("/api/chat", json={"message": "hi"}, headers=headers)
        assert second.status_code == 409, second.text
        assert second.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert len(model.requests) == 1  # the retry ran nothing


def _kill(process: Any) -> None:
    for pid in [child.pid for child in psutil.Process(process.pid).children(recursive=True)]:
        psutil.Process(pid).kill()
    process.kill()
    process.wait(30)


def test_a_killed_attempt_frees_its_key_within_a_few_beats(
    chat_app: Callable[..., TestClient],
    model: FakeModel,
    alice: Account,
    database_url: str,
    db_engine: Engine,
) -> None:
    """The server dies after a tool call committed, while the model is still writing. A
    keyed retry is 409 while the dead attempt's lease lasts, then, a few beats later (not a
    whole turn's lease), resumes from its record: the task is not added again."""
    model.script(call("add_task", {"title": "A"}), HANG)
    keyed = {**alice.headers, "Idempotency-Key": "killed-1"}
    body = {"message": "add A"}
    env = {name.upper(): str(value) for name, value in FAST.items()}
    env |= {"CHAT_BASE_URL": model.url, "CHAT_MODEL": "fake-model", "CHAT_API_KEY": "k"}
    with (
        running_server(database_url, **env) as (base_url, process, _),
        httpx.Client(base_url=base_url, timeout=60) as http,
        # Back at the model after the committed call: then the process dies.
        hanging_turn(model, lambda: _post_until_dead(http, body, keyed), reached=2),
    ):
        _kill(process)
    record = _record(db_engine, "killed-1")
    assert record.error_code == "CHAT_TURN_UNFINISHED"
    assert [(c["name"], c["outcome"]) for c in record.tool_calls] == [("add_task", "ok")]
    model.released.clear()
    model.steps.clear()
    model.requests.clear()
    model.script(call("add_task", {"title": "A"}), say("Added A."))
    chat = chat_app(**FAST)
    deadline = time.monotonic() + FREED_WITHIN
    while True:
        retried = chat.post("/api/chat", json=body, headers=keyed)
        if retried.status_code != 409 or time.monotonic() > deadline:
            break
        threading.Event().wait(1)  # Retry-After
    assert retried.status_code == 200, retried.text
    [made] = retried.json()["data"]["tool_calls"]
    assert made["outcome"] == "ok" and made["result"]["status"] == "created"
    assert [t["title"] for t in tasks_of(chat, alice)] == ["A"]  # not added again


def _post_until_dead(http: httpx.Client, body: dict[str, Any], headers: dict[str, str]) -> None:
    with contextlib.suppress(httpx.TransportError):  # the server was killed: this test's doing
        http.post("/api/chat", json=body, headers=headers)


@pytest.fixture
def locker(db_engine: Engine) -> Iterator[list[Connection]]:
    """Connections holding row locks from inside a model step, closed after the test."""
    held: list[Connection] = []
    yield held
    for conn in held:
        conn.close()


def test_beats_that_do_not_get_through_stop_the_attempt_before_its_lease_ends(
    chat_app: Callable[..., TestClient],
    model: FakeModel,
    alice: Account,
    db_engine: Engine,
    locker: list[Connection],
) -> None:
    """The turn's record is stalled (a row lock another transaction holds: each beat waits
    until its statement times out, so none is confirmed). Two beats later the model asks for a
    tool call: it is not run, since this attempt can no longer know that no retry took its
    turn over by the time the call would commit. The turn ends with the 503 of a database
    that does not answer; nothing was added."""
    chat = chat_app(**FAST)
    period = FAST["chat_heartbeat_seconds"]

    def stall(request: dict[str, Any]) -> Reply:
        conn = db_engine.connect()
        locker.append(conn)
        conn.execute(text("SELECT 1 FROM messages WHERE role = 'assistant' FOR UPDATE"))
        # From here no beat can be confirmed; two beats on, the claim no longer lets a
        # tool call start (a lower bound: waiting longer changes nothing).
        threading.Event().wait(2 * period + 0.2)
        return call("add_task", {"title": "never"})

    model.script(stall)
    response = chat.post(
        "/api/chat", json={"message": "add"}, headers={**alice.headers, "Idempotency-Key": "s"}
    )
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert [d["field"] for d in error["details"]] == ["conversation_id"]  # nothing committed
    assert len(model.requests) == 1  # the call's result never went back to the model
    locker.pop().close()
    assert tasks_of(chat, alice) == []
