"""Only the attempt that holds a chat turn stores its answer (issue 38, from a review): an
attempt whose lease ran out while the database was frozen, and whose turn a keyed retry took
over, must not store its late error record over the retry's. Before, that record erased the
calls the retry had recorded and freed the turn while the retry ran, so a third retry resumed
without them and could add the same task again.

Driven through the service over real PostgreSQL, with the lease as the retries see it
(`running_for`): zero for "it ran out", a day for "still held"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.errors import IdempotencyKeyInUse
from backend.services.chat.conversations import ConversationService, Reply, TurnStart
from backend.services.unit_of_work import UnitOfWork
from tests.conftest import Account

RAN_OUT = timedelta(0)
HELD = timedelta(days=1)
CALL = {
    "name": "add_task",
    "arguments": {"title": "milk"},
    "outcome": "ok",
    "error_code": None,
    "result": {"task_id": 1, "status": "created", "title": "milk"},
}


def _work(engine: Engine, settings: Settings, user: str) -> UnitOfWork:
    return UnitOfWork(engine, settings, claims=TokenClaims(subject=user, local=False))


def _begin(engine: Engine, settings: Settings, user: str, lease: timedelta) -> TurnStart:
    with _work(engine, settings, user) as work:
        return work.service(ConversationService).begin_turn(
            None, "add milk", "key-1", history_messages=10, running_for=lease
        )


def _answer(engine: Engine, settings: Settings, user: str, reply: Reply) -> Any:
    with _work(engine, settings, user) as work:
        return work.service(ConversationService).answer(reply)


def _record(engine: Engine) -> tuple[str | None, list[dict[str, Any]]]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT error_code, tool_calls FROM messages WHERE role = 'assistant'")
        ).one()
    return row.error_code, row.tool_calls


def test_a_late_record_of_a_taken_over_attempt_changes_nothing(
    db_engine: Engine, settings: Settings, alice: Account
) -> None:
    first = _begin(db_engine, settings, alice.id, HELD)
    with pytest.raises(IdempotencyKeyInUse):  # held: a retry is told the turn is in use
        _begin(db_engine, settings, alice.id, HELD)
    retry = _begin(db_engine, settings, alice.id, RAN_OUT)  # the lease ran out: taken over
    assert (retry.message_id, retry.earlier_calls) == (first.message_id, [])
    assert retry.held > first.held
    with _work(db_engine, settings, alice.id) as work:
        work.service(ConversationService).record_call(retry.message_id, CALL)
    # The first attempt's late error record: refused, and the retry's record stands.
    late = Reply(
        first.conversation_id, first.message_id, "", [], 0, 0, "SERVICE_UNAVAILABLE", first.held
    )
    with pytest.raises(IdempotencyKeyInUse):
        _answer(db_engine, settings, alice.id, late)
    code, calls = _record(db_engine)
    assert code == "CHAT_TURN_UNFINISHED" and [c["name"] for c in calls] == ["add_task"]
    # So the turn is still the retry's: a third attempt is told it is in use.
    with pytest.raises(IdempotencyKeyInUse):
        _begin(db_engine, settings, alice.id, HELD)
    # The retry's own answer is stored, with the call it recorded; then a keyed retry is
    # answered with it, running nothing.
    answered = _answer(
        db_engine,
        settings,
        alice.id,
        Reply(retry.conversation_id, retry.message_id, "Added.", [CALL], 1, 1, None, retry.held),
    )
    assert (answered.content, answered.error_code) == ("Added.", None)
    again = _begin(db_engine, settings, alice.id, RAN_OUT)
    assert again.answered is not None and again.answered.content == "Added."


def test_the_record_a_turn_starts_with_is_its_token(
    db_engine: Engine, settings: Settings, alice: Account
) -> None:
    """The user's message and the unfinished record are one transaction: the record's
    `created_at` is the token the attempt was given."""
    start = _begin(db_engine, settings, alice.id, HELD)
    with db_engine.connect() as conn:
        stamp = conn.execute(
            text("SELECT created_at FROM messages WHERE reply_to = :id"), {"id": start.message_id}
        ).scalar_one()
    assert stamp == start.held


def test_a_turn_stored_without_a_record_is_restarted_by_one_retry(
    db_engine: Engine, settings: Settings, alice: Account
) -> None:
    """A user message stored before turns kept a record from the start, by an attempt that
    died: past the lease one retry restarts it; a second one is told it is in use (the
    record's unique answer per message, not a 409 CONFLICT)."""
    start = _begin(db_engine, settings, alice.id, HELD)
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM messages WHERE reply_to = :id"), {"id": start.message_id})
    with pytest.raises(IdempotencyKeyInUse):  # the first attempt may still be running
        _begin(db_engine, settings, alice.id, HELD)
    taken = _begin(db_engine, settings, alice.id, RAN_OUT)
    assert taken.message_id == start.message_id and taken.earlier_calls == []
    with pytest.raises(IdempotencyKeyInUse):
        _begin(db_engine, settings, alice.id, HELD)
    assert _record(db_engine) == ("CHAT_TURN_UNFINISHED", [])
