"""Workers with different sinks (issue 90): each registers the sinks it sends to, and an
event is delivered only once every sink of a live registration has it, whichever worker sent
it there. Before, an event was delivered once the leasing worker's own sinks took it, and a
worker with no outbox sink marked every due event delivered unsent: a webhook beside a
reminders-only worker got 29 of 40 events, a rolling update's new webhook 33 of 40.

Each test first makes the lost case certain (the worker that would lose events takes its turn
first, on every event), then runs both loops side by side, as a deployment does.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import Engine, text

from backend.config import Settings, WebhookTarget
from backend.events.outbox import SINK_REGISTRATION_SECONDS
from backend.events.worker import Worker
from tests.cli.helpers import run_cli
from tests.conftest import Account
from tests.events.conftest import (
    SECRET,
    Receiver,
    add_tasks,
    delivery_settings,
    event_states,
    make_worker,
    until,
)

EVENTS = 40


def _hooks(settings: Settings, receiver: Receiver, *paths: str) -> Settings:
    """Webhooks at the receiver's `paths`, no Dapr."""
    webhooks = [WebhookTarget(url=f"{receiver.url}{p}", secret=SECRET) for p in paths]
    return delivery_settings(settings, receiver, dapr_http_endpoint=None, event_webhooks=webhooks)


def _beside(engine: Engine, workers: Sequence[Worker]) -> None:
    """Every worker's loop at once until no event is pending (or one is dead)."""
    stop = threading.Event()
    loops = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for loop in loops:
        loop.start()
    try:
        until(lambda: "pending" not in event_states(engine), 60, str(event_states(engine)))
    finally:
        stop.set()
        for loop in loops:
            loop.join(60)
    assert not any(loop.is_alive() for loop in loops)


def _ids(receiver: Receiver, path: str) -> list[str]:
    """The event ids a path received, in arrival order."""
    return [r.headers["webhook-id"] for r in receiver.by_path(path)]


def _rows(engine: Engine) -> list[tuple[str, list[str]]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, delivered_to FROM task_events ORDER BY id"))
        return [(r.state, sorted(r.delivered_to)) for r in rows]


def _waiting(engine: Engine) -> list[tuple[str, int, list[str]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT state, attempts, delivered_to FROM task_events ORDER BY id")
        )
        return [(r.state, r.attempts, r.delivered_to) for r in rows]


def test_a_worker_with_no_outbox_sink_beside_a_webhooks_marks_nothing_delivered_unsent(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    hooked = make_worker(db_engine, _hooks(settings, receiver, "/hook"))
    bare = make_worker(db_engine, _hooks(settings, receiver))  # run for reminders alone
    workers = [hooked, bare]
    try:
        hooked.deliver_batch()  # nothing due: its lease registers its sink
        add_tasks(db_engine, alice.id, EVENTS)
        bare.deliver_batch()  # first on every due event
        _beside(db_engine, workers)
    finally:
        for worker in workers:
            worker.close()
    ids = _ids(receiver, "/hook")
    assert len(set(ids)) == len(ids) == EVENTS
    assert _rows(db_engine) == [("delivered", [f"{receiver.url}/hook"])] * EVENTS


def test_a_rolling_update_adding_a_webhook_delivers_every_event_to_it_in_order(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    old = make_worker(db_engine, _hooks(settings, receiver, "/hook/old"))
    new = make_worker(db_engine, _hooks(settings, receiver, "/hook/old", "/hook/new"))
    workers = [old, new]
    try:
        new.deliver_batch()  # the new version started: its sinks registered
        tasks = add_tasks(db_engine, alice.id, EVENTS // 4)
        with db_engine.begin() as conn:
            for n in range(3):  # each task's events: created, then three updates
                conn.execute(
                    text("UPDATE tasks SET title = :t || id WHERE id = ANY(:ids)"),
                    {"t": f"v{n} ", "ids": tasks},
                )
        old.deliver_batch()  # the old version first, on every event
        _beside(db_engine, workers)
    finally:
        for worker in workers:
            worker.close()
    both = sorted([f"{receiver.url}/hook/new", f"{receiver.url}/hook/old"])
    assert _rows(db_engine) == [("delivered", both)] * EVENTS
    with db_engine.connect() as conn:
        order = {
            str(r.event_id): (r.task_id, r.id)
            for r in conn.execute(text("SELECT id, event_id, task_id FROM task_events"))
        }
    for path in ("/hook/old", "/hook/new"):
        ids = _ids(receiver, path)
        assert len(set(ids)) == len(ids) == EVENTS, path
        for task in tasks:  # each task's events in commit order at each receiver
            seen = [order[i][1] for i in ids if order[i][0] == task]
            assert seen == sorted(seen), (path, task)


def test_a_sink_no_live_worker_has_is_waited_for_until_its_registration_lapses(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    """Another worker's sink (`gone`, registered a moment ago: a worker restarting) holds the
    events pending, sent to this worker's sink once, and no attempt is counted while they
    wait; once its registration has lapsed they are delivered, sent nowhere again."""
    with db_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO event_sinks (worker_id, sink) VALUES (gen_random_uuid(), 'gone')")
        )
    hooked = make_worker(db_engine, _hooks(settings, receiver, "/hook"))
    hook = f"{receiver.url}/hook"
    try:
        add_tasks(db_engine, alice.id, EVENTS)
        until(lambda: hooked.deliver_batch() == 0 and len(_ids(receiver, "/hook")) == EVENTS)
        waiting = _waiting(db_engine)
        assert {(state, tuple(to)) for state, _, to in waiting} == {("pending", (hook,))}
        for _ in range(3):  # not leased again, no attempt counted, while `gone` is live
            assert hooked.deliver_batch() == 0
        assert _waiting(db_engine) == waiting
        with db_engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE event_sinks SET seen_at = now() - make_interval(secs => :s + 1) "
                    "WHERE sink = 'gone'"
                ),
                {"s": SINK_REGISTRATION_SECONDS},
            )
        until(
            lambda: hooked.deliver_batch() == 0 and event_states(db_engine) == {"delivered": EVENTS}
        )
    finally:
        hooked.close()
    assert len(_ids(receiver, "/hook")) == EVENTS  # none sent twice


def test_a_worker_says_which_other_sinks_its_events_wait_for_and_status_lists_them(
    db_engine: Engine,
    database_url: str,
    settings: Settings,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = make_worker(db_engine, _hooks(settings, receiver, "/hook/old"))
    new = make_worker(db_engine, _hooks(settings, receiver, "/hook/old", "/hook/new"))
    try:
        assert (
            "sinks: none registered"
            in run_cli("events", "status", DATABASE_URL=database_url).stdout
        )
        new.deliver_batch()
        with caplog.at_level(logging.INFO, logger="backend.events.outbox"):
            old.deliver_batch()
    finally:
        for worker in (old, new):
            worker.close()
    said = [r.getMessage() for r in caplog.records if "sinks of other workers" in r.message]
    assert said == [
        f"outbox: sinks of other workers, which events wait for too: {receiver.url}/hook/new"
    ]
    status = run_cli("events", "status", DATABASE_URL=database_url)
    assert status.returncode == 0, status.stderr
    [line] = [x for x in status.stdout.splitlines() if x.startswith("sinks: ")]
    shown = re.sub(r"\d+ s ago", "N s ago", line)
    assert shown == (
        f"sinks: {receiver.url}/hook/new (1 workers, N s ago), "
        f"{receiver.url}/hook/old (2 workers, N s ago)"
    )
