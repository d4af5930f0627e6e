"""What must not stall delivery: a record that cannot be rendered or sent."""

from __future__ import annotations

import base64
import json

from prometheus_client import generate_latest
from sqlalchemy import Engine, text

from backend.config import Settings, WebhookTarget
from backend.events.bounds import USER_AGENT
from tests.cli.helpers import run_cli
from tests.conftest import Account
from tests.events.conftest import (
    SECRET,
    Receiver,
    add_tasks,
    delivery_settings,
    event_states,
    make_worker,
)


def test_a_record_that_cannot_be_rendered_fails_alone_and_goes_dead(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    # A change recorded in a shape TaskPublic no longer accepts (a future migration that
    # forgot old rows, say): it must not hold back every other task's events.
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task_events (user_id, task_id, type, task) "
                "VALUES (:u, 999999, 'updated', '{\"id\": \"not a task\"}')"
            ),
            {"u": alice.id},
        )
    add_tasks(db_engine, alice.id, 3)
    # A delivery timeout no loaded machine reaches (the batch deadline is a multiple of it):
    # a good event abandoned at 2 s on a busy machine would be retried in the second batch.
    slow_machine = delivery_settings(
        settings, receiver, event_max_attempts=2, event_delivery_timeout_seconds=30
    )
    worker = make_worker(db_engine, slow_machine)
    try:
        assert worker.deliver_batch() == 4
        with db_engine.begin() as conn:
            conn.execute(text("UPDATE task_events SET next_attempt_at = now()"))
        assert worker.deliver_batch() == 1
        dead = worker.metrics.registry.get_sample_value(
            "task_events_dead_lettered_total", {"sink": "render"}
        )
        assert dead == 1
    finally:
        worker.close()
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT task_id, state, attempts, last_error FROM task_events ORDER BY id")
        ).all()
    bad, *good = rows
    assert (bad.state, bad.attempts) == ("dead", 2)
    assert "cannot render" in bad.last_error
    assert [r.state for r in good] == ["delivered"] * 3
    assert len(receiver.by_path("/v1.0/publish")) == 3


def test_a_receiver_that_trickles_its_answer_is_cut_at_the_sends_deadline(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    # A byte every 0.1 s: far under httpx's 1 s read timeout, so only the send's own deadline
    # (1 s in all, bounds.py) ends the wait, instead of waiting 5 s for the hook.
    receiver.trickle_path = "/hook"
    add_tasks(db_engine, alice.id, 2)
    chosen = delivery_settings(
        settings, receiver, event_delivery_timeout_seconds=1, event_batch_size=10
    )
    worker = make_worker(db_engine, chosen)
    try:
        assert worker.batch_seconds == 2 + 1 + 2  # the deadline, a place's wait, the slack
        assert worker.deliver_batch() == 2
        with db_engine.connect() as conn:
            rows = conn.execute(
                text("SELECT state, attempts, delivered_to, last_error FROM task_events")
            ).all()
    finally:
        worker.close()  # waits for the trickling calls to end
    for row in rows:
        assert (row.state, row.attempts, row.delivered_to) == ("pending", 1, ["dapr"])
        # The hook's call ended at its own deadline (1 s in all), not at the batch's.
        assert "the send's deadline passed" in row.last_error, row.last_error
    receiver.trickle_path = None
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_events SET next_attempt_at = now()"))
    worker = make_worker(db_engine, chosen)
    try:
        assert worker.deliver_batch() == 2
    finally:
        worker.close()
    assert event_states(db_engine) == {"delivered": 2}
    assert len(receiver.by_path("/v1.0/publish")) == 2  # Dapr had accepted: not sent again
    hooks = receiver.by_path("/hook")  # the abandoned calls arrived too: same ids again
    assert len(hooks) == 4 and len({h.headers["webhook-id"] for h in hooks}) == 2


def test_webhooks_that_differ_only_in_credentials_or_query_each_get_the_event(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account, database_url: str
) -> None:
    # The query or user info may hold the receiver's credential: it is kept out of
    # `delivered_to`, the metrics and the logs, but still tells two targets apart.
    host = receiver.url.removeprefix("http://")
    targets = [
        WebhookTarget(url=f"http://{host}/hook?token=tenant-a-secret", secret=SECRET),
        WebhookTarget(url=f"http://user:tenant-b-secret@{host}/hook", secret=SECRET),
        WebhookTarget(url=f"http://{host}/hook", secret=SECRET),
    ]
    add_tasks(db_engine, alice.id, 1)
    chosen = delivery_settings(settings, receiver, event_webhooks=targets)
    worker = make_worker(db_engine, chosen)
    try:
        assert worker.deliver_batch() == 1
        exposition = generate_latest(worker.metrics.registry).decode()
    finally:
        worker.close()
    got = receiver.by_path("/hook")
    assert len(got) == 3
    # Each as httpx would send it: the query kept, the user info as Basic auth.
    assert sorted(r.path for r in got) == ["/hook", "/hook", "/hook?token=tenant-a-secret"]
    basic = "Basic " + base64.b64encode(b"user:tenant-b-secret").decode()
    assert sorted(r.headers.get("Authorization", "") for r in got) == ["", "", basic]
    assert all(r.headers["User-Agent"] == USER_AGENT for r in got)
    assert all(r.headers["Host"] == host and r.headers["Accept"] == "*/*" for r in got)
    with db_engine.connect() as conn:
        state = conn.execute(text("SELECT state FROM task_events")).scalar_one()
    assert state == "delivered"
    names = [t.name for t in targets]
    assert len(set(names)) == 3 and names[2] == f"{receiver.url}/hook"
    assert all(n.startswith(f"{receiver.url}/hook") for n in names)
    for shown in (" ".join(names), exposition):
        assert "tenant-" not in shown and "user:" not in shown
    twice = json.dumps([{"url": f"{receiver.url}/h?t=1", "secret": SECRET}] * 2)
    refused = run_cli("worker", DATABASE_URL=database_url, EVENT_WEBHOOKS=twice)
    assert refused.returncode == 2
    assert "EVENT_WEBHOOKS lists" in refused.stderr and "t=1" not in refused.stderr
