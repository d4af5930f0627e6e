"""Running the worker: SIGTERM finishes the batch (a second signal abandons it), the
worker's own /health/ready and /metrics over HTTP, `events status`'s threshold, pruning."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql

from backend.config import Settings
from backend.events import outbox
from backend.models.trash import TRASH_DAYS
from tests.cli.helpers import closed_port, run_cli
from tests.conftest import Account, stop_process
from tests.events.conftest import (
    SECRET,
    Receiver,
    add_tasks,
    delivery_settings,
    event_states,
    make_worker,
    start_worker,
    until,
    worker_env,
)

DAPR = "/v1.0/publish/pubsub/"


def _rows(engine: Engine) -> list[tuple[str, str, int, list[str]]]:
    with engine.connect() as conn:
        return [
            (str(r[0]), r[1], r[2], r[3])
            for r in conn.execute(
                text("SELECT event_id, state, attempts, delivered_to FROM task_events")
            )
        ]


def _held_worker(
    engine: Engine, database_url: str, receiver: Receiver, alice: Account
) -> tuple[subprocess.Popen[bytes], Path]:
    """A worker with a batch of 5 in flight: its Dapr calls held at the receiver's gate
    until the test opens it (whatever the machine's speed, nothing else is leased). Dapr
    alone: the only sink may have the whole window (with a second, each has half of it at
    most, `engine.receiver_share`)."""
    receiver.gate = threading.Event()
    add_tasks(engine, alice.id, 20)
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    env = worker_env(database_url, receiver, EVENT_BATCH_SIZE="5")
    del env["EVENT_WEBHOOKS"]
    process = start_worker(env, log)
    try:  # mid-batch once all 5 Dapr calls are held
        until(lambda: sum(p.startswith(DAPR) for p in receiver.arrived) == 5, 60, "held")
    except BaseException:
        process.kill()
        receiver.gate.set()
        raise
    return process, log


def test_sigterm_finishes_the_batch_in_progress_then_exits_0(
    db_engine: Engine, database_url: str, receiver: Receiver, alice: Account
) -> None:
    process, log = _held_worker(db_engine, database_url, receiver, alice)
    assert receiver.gate is not None
    try:
        process.send_signal(signal.SIGTERM)
        until(lambda: "stopping" in log.read_text(), 30, log.read_text())
    finally:
        receiver.gate.set()
    assert process.wait(30) == 0, log.read_text()
    rows = _rows(db_engine)
    delivered = {r[0] for r in rows if r[1] == "delivered"}
    # The batch in flight was finished and recorded, and no other was started.
    assert len(delivered) == 5, log.read_text()
    assert {r[0] for r in rows if r[1] == "pending" and r[2] == 0} == {r[0] for r in rows} - (
        delivered
    )
    sent = {r.json()["event_id"] for r in receiver.by_path(DAPR)}
    assert sent == delivered
    assert "worker stopped" in log.read_text()


def test_a_second_signal_abandons_the_batch_and_its_lease_holds_it_until_it_ends(
    db_engine: Engine, database_url: str, receiver: Receiver, alice: Account
) -> None:
    process, log = _held_worker(db_engine, database_url, receiver, alice)
    assert receiver.gate is not None
    try:
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 1, log.read_text()
    finally:
        receiver.gate.set()
    receiver.settle()
    assert "batch abandoned" in log.read_text()
    sent = {r.json()["event_id"] for r in receiver.by_path(DAPR)}
    rows = {r[0]: r for r in _rows(db_engine)}
    # What Dapr got in the abandoned batch is still leased (its attempt counted, nothing
    # recorded): it is sent again when the lease ends, with the same event id.
    assert len(sent) == 5 and all(rows[e][1:] == ("pending", 1, []) for e in sent)
    assert event_states(db_engine) == {"pending": 20}
    with db_engine.connect() as conn:
        leased = conn.execute(
            text("SELECT count(*) FROM task_events WHERE next_attempt_at > clock_timestamp()")
        ).scalar_one()
    assert leased == 5  # the batch; no other was leased


def test_health_ready_and_metrics_on_the_workers_port(
    db_engine: Engine, database_url: str, receiver: Receiver, alice: Account
) -> None:
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    env = worker_env(
        database_url, receiver, WORKER_METRICS_PORT=str(port), WORKER_MAX_LAG_SECONDS="5"
    )
    process = start_worker(env, log)
    try:

        def ready() -> httpx.Response | None:
            try:
                return httpx.get(f"{base}/health/ready", timeout=2)
            except httpx.TransportError:
                return None

        until(lambda: (r := ready()) is not None and r.status_code == 200, 60, log.read_text())
        body = httpx.get(f"{base}/health/ready").json()
        assert body["status"] == "ready" and body["polling"] is True
        receiver.status = 500
        add_tasks(db_engine, alice.id, 1)
        with db_engine.begin() as conn:
            conn.execute(text("UPDATE task_events SET occurred_at = now() - interval '1 minute'"))
        until(lambda: (r := ready()) is not None and r.status_code == 503, 30, log.read_text())
        behind = httpx.get(f"{base}/health/ready")
        assert behind.headers["content-type"] == "application/json"
        body = behind.json()
        assert body["status"] == "not ready" and body["polling"] is True
        assert body["oldest_pending_seconds"] >= 60 and body["max_lag_seconds"] == 5
        metrics = httpx.get(f"{base}/metrics").text
        assert "task_events_pending 1.0" in metrics
        # The cycle that read the backlog does not wait for its sends: the failed attempt is
        # counted when the send comes back.
        failed = 'task_events_failed_attempts_total{sink="dapr"}'
        until(lambda: failed in httpx.get(f"{base}/metrics").text, 30, log.read_text())
        receiver.status = 200
        until(lambda: (r := ready()) is not None and r.status_code == 200, 30, log.read_text())
        metrics = httpx.get(f"{base}/metrics").text
        assert 'task_events_delivered_total{sink="dapr"} 1.0' in metrics
        assert 'task_events_delivery_latency_seconds_count{sink="dapr"} 1.0' in metrics
    finally:
        stop_process(process)


def test_status_uses_the_workers_threshold_unless_told_otherwise(
    db_engine: Engine, database_url: str, alice: Account
) -> None:
    add_tasks(db_engine, alice.id, 2)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE task_events SET occurred_at = now() - interval '2 minutes'"))
    url = database_url
    assert run_cli("events", "status", DATABASE_URL=url).returncode == 1  # default 60 s
    relaxed = run_cli("events", "status", DATABASE_URL=url, WORKER_MAX_LAG_SECONDS="600")
    assert relaxed.returncode == 0 and relaxed.stdout.startswith("pending 2, oldest pending 1")
    told = run_cli(
        "events", "status", "--max-lag", "30", DATABASE_URL=url, WORKER_MAX_LAG_SECONDS="600"
    )
    assert told.returncode == 1 and "older than 30 s" in told.stderr


def _aged(engine: Engine, user_id: str, hours: int, state: str) -> None:
    """One change of a new task, `hours` old, in `state`."""
    add_tasks(engine, user_id, 1)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE task_events SET occurred_at = now() - make_interval(hours => :h), "
                "state = :s WHERE id = (SELECT max(id) FROM task_events)"
            ),
            {"h": hours, "s": state},
        )


def test_past_retention_the_worker_prunes_delivered_and_dead_but_not_pending(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account, bob: Account
) -> None:
    _aged(db_engine, alice.id, 200, "delivered")
    _aged(db_engine, alice.id, 200, "dead")
    _aged(db_engine, alice.id, 1, "delivered")  # within the 168 h retention
    _aged(db_engine, bob.id, 200, "pending")  # not delivered yet: kept whatever its age
    receiver.status = 500
    worker = make_worker(db_engine, delivery_settings(settings, receiver))
    try:
        worker.cycle()  # the first cycle prunes
    finally:
        worker.close()
    with db_engine.connect() as conn:
        left = conn.execute(
            text("SELECT user_id, state, attempts FROM task_events ORDER BY id")
        ).all()
    assert [tuple(r) for r in left] == [(alice.id, "delivered", 0), (bob.id, "pending", 1)]


def test_a_worker_cycle_purges_the_trash_past_its_days(
    db_engine: Engine, settings: Settings, receiver: Receiver, alice: Account
) -> None:
    """The worker's cycle, not the function alone: a deleted task past TRASH_DAYS is purged,
    one a day short of them is kept."""
    with db_engine.begin() as conn:
        for trash_id, age in ((900_001, f"{TRASH_DAYS} days 1 hour"), (900_002, "29 days")):
            conn.execute(
                text(
                    "INSERT INTO task_trash (id, user_id, title, deleted_by, deleted_at, snapshot) "
                    "VALUES (:id, :user, 'gone', :user, now() - CAST(:age AS interval), "
                    "'{\"tasks\": []}')"
                ),
                {"id": trash_id, "user": alice.id, "age": age},
            )
    worker = make_worker(db_engine, delivery_settings(settings, receiver))
    try:
        worker.cycle()  # the first cycle prunes and purges
    finally:
        worker.close()
    with db_engine.connect() as conn:
        left = conn.scalars(text("SELECT id FROM task_trash ORDER BY id")).all()
    assert left == [900_002]


def test_the_prune_command_keeps_undelivered_changes_only_when_a_sink_delivers_them(
    db_engine: Engine, database_url: str, alice: Account
) -> None:
    _aged(db_engine, alice.id, 200, "pending")
    _aged(db_engine, alice.id, 200, "delivered")  # after a pending one: kept (feed, no hole)
    hooks = json.dumps([{"url": "http://127.0.0.1:9/hook", "secret": SECRET}])
    with_sink = run_cli("prune", DATABASE_URL=database_url, EVENT_WEBHOOKS=hooks)
    assert with_sink.returncode == 0, with_sink.stderr
    assert with_sink.stdout.splitlines()[1] == "pruned 0 task changes past retention"
    without = run_cli("prune", DATABASE_URL=database_url)
    assert without.stdout.splitlines()[1] == "pruned 2 task changes past retention"
    assert event_states(db_engine) == {}


def test_the_backlog_reads_partial_indexes_not_the_retained_rows(db_engine: Engine) -> None:
    # Every poll of every worker asks for it, while a week of delivered rows is kept.
    sql = outbox._BACKLOG.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    with db_engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a scan only if nothing else fits
        plan = "\n".join(conn.execute(text(f"EXPLAIN {sql}")).scalars())
    assert "Seq Scan" not in plan, plan
    assert "ix_task_events_pending_" in plan and "ix_task_events_dead_id" in plan, plan
    # And the reminder deliveries' pending and dead, beside them in the same statement.
    assert "ix_reminder_deliveries_next_attempt_at" in plan, plan
    assert "ix_reminder_deliveries_dead_id" in plan, plan


def test_a_second_worker_on_the_same_metrics_port_says_so(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli(
            "worker",
            DATABASE_URL=database_url,
            DAPR_HTTP_ENDPOINT="http://127.0.0.1:9",
            WORKER_METRICS_PORT=port,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "WORKER_METRICS_PORT" in result.stderr


def test_requeue_of_an_event_that_is_not_dead_fails(database_url: str) -> None:
    result = run_cli("events", "requeue", "987654", DATABASE_URL=database_url)
    assert result.returncode == 1
    assert result.stdout.strip() == "requeued 0 events"
    assert "1 of the named events are not dead" in result.stderr


def test_dead_reminder_deliveries_are_listed_counted_and_requeued(
    db_engine: Engine, database_url: str, alice: Account
) -> None:
    # The engine's other queue: `events dead|requeue|status` cover it too, as `d<id>`.
    with db_engine.begin() as conn:
        row_id = conn.execute(
            text(
                "INSERT INTO reminder_deliveries (user_id, event_id, task_id, channel, payload, "
                "state, attempts, last_error) VALUES (:u, gen_random_uuid(), 42, 'email', "
                "'{}', 'dead', 12, 'email: SMTP 451') RETURNING id"
            ),
            {"u": alice.id},
        ).scalar_one()
    status = run_cli("events", "status", DATABASE_URL=database_url)
    assert "reminder deliveries: pending 0, dead 1" in status.stdout, status.stdout
    listed = run_cli("events", "dead", DATABASE_URL=database_url)
    assert listed.returncode == 0, listed.stderr
    [line] = [x for x in listed.stdout.splitlines() if x.startswith("d")]
    assert line.split("\t")[0] == f"d{row_id}" and line.split("\t")[2:5] == [
        "email",
        "task 42",
        "12 attempts",
    ]
    assert line.endswith("email: SMTP 451") and "1 dead reminder delivery" in listed.stderr
    requeued = run_cli("events", "requeue", f"d{row_id}", DATABASE_URL=database_url)
    assert requeued.returncode == 0 and requeued.stdout.strip() == "requeued 1 event"
    with db_engine.connect() as conn:
        state = conn.execute(
            text("SELECT state, attempts, last_error FROM reminder_deliveries WHERE id = :i"),
            {"i": row_id},
        ).one()
    assert tuple(state) == ("pending", 0, None)
    again = run_cli("events", "requeue", f"d{row_id}", DATABASE_URL=database_url)
    assert again.returncode == 1 and "1 of the named events are not dead" in again.stderr
    typo = run_cli("events", "requeue", "dx1", DATABASE_URL=database_url)
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
