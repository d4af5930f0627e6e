"""The events worker while its database is stopped mid-send: it backs off (each wait double
the last, never a spin), logs a bounded number of lines, and once the server is back every
event arrives, a repeat only where a send was not recorded, with the same event id."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import text

from backend.config import Settings, WebhookTarget
from backend.db.engine import create_db_engine
from backend.events.sinks import configured_sinks
from backend.events.worker import Worker
from tests.conftest import TEST_SECRET
from tests.events.conftest import SECRET, Receiver, add_tasks, event_states, until
from tests.events.conftest import receiver as receiver  # the fixture
from tests.reliability.servers import DedicatedPostgres
from tests.reliability.test_outage_logs import started_again


class CountedWorker(Worker):
    """The worker, keeping the waits it chose while the database was away."""

    waits: list[float]

    def _wait(self, stop: threading.Event, seconds: float) -> None:  # type: ignore[override]
        self.waits.append(seconds)
        stop.wait(seconds)


def test_the_database_stopped_mid_send_backs_off_logs_little_and_loses_nothing(
    dedicated_pg: DedicatedPostgres,
    dedicated_db: str,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(
        environment="test",
        database_url=dedicated_db,
        jwt_secret=TEST_SECRET,
        auto_migrate=False,
        event_webhooks=[WebhookTarget(url=f"{receiver.url}/hook", secret=SECRET)],
        event_delivery_timeout_seconds=3,  # the lease: 2 x 3 s
        event_batch_size=10,
        event_retry_base_seconds=0.05,
        event_retry_max_seconds=0.2,
        worker_poll_seconds=0.05,
        worker_metrics_port=0,
    )
    engine = create_db_engine(dedicated_db, settings)
    user = f"outage-{uuid.uuid4().hex}"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES (:u)"), {"u": user})
    add_tasks(engine, user, 10)
    receiver.delay = 0.5  # the batch's sends are in flight when the server stops
    caplog.set_level(logging.INFO, logger="backend.events")
    worker = CountedWorker(engine, settings, configured_sinks(settings))
    worker.waits = []
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    try:
        running.start()
        with started_again(dedicated_pg):
            until(lambda: bool(receiver.attempted), 60, "a send in flight")
            dedicated_pg.stop("fast")
            until(lambda: len(worker.waits) >= 7, 60, "seven failed cycles")
        until(lambda: event_states(engine) == {"delivered": 10}, 60, "every event delivered")
        # The cycle that delivered them says the database is back once it has returned.
        until(
            lambda: any("succeed again" in r.getMessage() for r in caplog.records),
            60,
            "the recovery logged",
        )
    finally:
        stop.set()
        running.join(60)
        worker.close()
    assert not running.is_alive()
    # Each wait double the one before (from the poll), never shorter: no spin.
    first = worker.waits[:7]
    assert first == [0.05 * 2**n for n in range(7)], first
    lines = [r for r in caplog.records if r.name.startswith("backend.events")]
    failed = [r for r in lines if r.getMessage().startswith("delivery cycle failed")]
    # The 1st, 2nd, 4th... failure logged: at most 1 + log2(failures) lines.
    assert len(failed) <= 1 + len(worker.waits).bit_length(), [r.getMessage() for r in failed]
    assert sum("succeed again" in r.getMessage() for r in lines) == 1
    receiver.settle()
    with engine.connect() as conn:
        ids = {str(e) for e in conn.execute(text("SELECT event_id FROM task_events")).scalars()}
    engine.dispose()
    hooks = Counter(h.headers["webhook-id"] for h in receiver.by_path("/hook"))
    assert set(hooks) == ids  # nothing lost
    # Repeats: only the batch whose outcome the stopped server could not record.
    assert sum(n - 1 for n in hooks.values()) <= 10
