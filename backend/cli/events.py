"""`python -m backend worker` and `python -m backend events status|dead|requeue`."""

from __future__ import annotations

import argparse
import logging.config
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from backend.cli.common import DEV_HELP, load_settings, opened

if TYPE_CHECKING:
    from backend.cli.common import Subcommands


def cmd_worker(args: argparse.Namespace) -> int:
    from backend.events.health import serve
    from backend.events.sinks import configured_sinks
    from backend.events.worker import Worker
    from backend.observability.logging import logging_config

    settings = load_settings(args.dev)
    sinks = configured_sinks(settings)
    # Reminders' pushes and emails are the engine's other lane (backend/events/notify.py).
    notifies = settings.smtp_host is not None or settings.vapid_private_key is not None
    logging.config.dictConfig(logging_config(settings))
    if not sinks and not notifies:
        # Still a worker: it runs imports (a production API does not) and purges the trash.
        logging.getLogger("backend.events").warning(
            "no event sink configured (DAPR_HTTP_ENDPOINT, EVENT_WEBHOOKS, or reminders' "
            "VAPID_PRIVATE_KEY, SMTP_HOST: specs/events.md): this worker runs imports and "
            "the trash's purge, and delivers nothing"
        )
    # No transaction is open while a receiver answers (a lease commits before the sends):
    # the database's own timeouts need not outlast a delivery.
    with opened(settings) as engine:
        worker = Worker(engine, settings, sinks)
        server = None
        if settings.worker_metrics_port:
            try:
                server = serve(
                    settings.worker_metrics_host,
                    settings.worker_metrics_port,
                    worker.metrics,
                    worker.readiness,
                )
            except OSError as exc:  # the usual cause: a second worker on this machine
                worker.close()
                print(
                    f"error: cannot serve /metrics on {settings.worker_metrics_host}:"
                    f"{settings.worker_metrics_port} ({exc.strerror}); another worker on this "
                    "machine needs its own WORKER_METRICS_PORT (0: none)",
                    file=sys.stderr,
                )
                return 1
        stop = threading.Event()

        def _stop(signum: int, frame: object) -> None:
            if stop.is_set():
                # A second signal: abandon the batch. Its leased events are leased again when
                # the lease ends (the sinks that got them will get them again: at least once).
                raise _Abandon
            stop.set()  # the first one: finish the batch in progress, then exit

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _stop)
        log = logging.getLogger("backend.events")
        log.info(
            "worker started: sinks %s; reminders by %s",
            ", ".join(sink.name for sink in sinks) or "none",
            ", ".join(worker.reminders.names) or "none",
        )
        abandoned = False
        try:
            worker.run(stop)
        except _Abandon:
            abandoned = True
        finally:
            worker.close(wait=not abandoned)
            if server is not None:
                server.shutdown()
    log.info("worker stopped%s", ": batch abandoned" if abandoned else "")
    return 1 if abandoned else 0


class _Abandon(BaseException):
    """Raised by a second stop signal, through whatever the worker is doing."""


def cmd_status(args: argparse.Namespace) -> int:
    from backend.events import outbox

    settings = load_settings(args.dev)
    with opened(settings) as engine, engine.connect() as conn:
        backlog = outbox.backlog(conn)
        sinks = outbox.live_sinks(conn)
    print(
        f"pending {backlog.pending}, oldest pending {backlog.lag_seconds:.1f} s, "
        f"dead {backlog.dead}"
    )
    # The same engine's other queue: reminders' pushes and emails, address confirmations.
    print(
        f"reminder deliveries: pending {backlog.deliveries_pending}, dead {backlog.deliveries_dead}"
    )
    # What an event waits for: every sink a running worker registered (none: nothing to send).
    named = [f"{s.name} ({s.workers} workers, {s.seen_seconds_ago:.0f} s ago)" for s in sinks]
    print(f"sinks: {', '.join(named) or 'none registered'}")
    # The same threshold as the worker's /health/ready unless the caller names another.
    max_lag = settings.worker_max_lag_seconds if args.max_lag is None else args.max_lag
    if backlog.lag_seconds > max_lag:
        print(f"behind: the oldest pending event is older than {max_lag:g} s", file=sys.stderr)
        return 1
    return 0


def _subject(row: Any) -> str:
    """What an event is about: a task, or a list (list events, migration 0019)."""
    return f"task {row.task_id}" if row.task_id is not None else f"list {row.list_id}"


# A reminder delivery's id in `events dead` and `events requeue`: `d` and its row id (the
# outbox's events are their row ids alone, as before).
DELIVERY_PREFIX = "d"


def cmd_dead(args: argparse.Namespace) -> int:
    from backend.events import deliveries, outbox

    with opened(load_settings(args.dev)) as engine, engine.connect() as conn:
        rows = outbox.dead_letters(conn, args.limit)
        dead = deliveries.dead_letters(conn, args.limit)
    for row in rows:
        print(
            f"{row.id}\t{row.event_id}\t{row.type}\t{_subject(row)}\t"
            f"{row.attempts} attempts\t{row.occurred_at.isoformat()}\t{row.last_error or ''}"
        )
    for row in dead:  # never the address or the endpoint: the row's channel and its task
        subject = "an address" if row.task_id is None else f"task {row.task_id}"
        print(
            f"{DELIVERY_PREFIX}{row.id}\t{row.event_id}\t{row.channel}\t{subject}\t"
            f"{row.attempts} attempts\t{row.created_at.isoformat()}\t{row.last_error or ''}"
        )
    print(f"{len(rows)} dead event{'s' if len(rows) != 1 else ''}", file=sys.stderr)
    if dead:
        print(
            f"{len(dead)} dead reminder deliver{'ies' if len(dead) != 1 else 'y'}", file=sys.stderr
        )
    return 0


def _dead_id(value: str) -> tuple[str, int]:
    """`17` (an outbox event) or `d17` (a reminder delivery), as `events dead` shows them."""
    queue = "deliveries" if value.startswith(DELIVERY_PREFIX) else "outbox"
    digits = value.removeprefix(DELIVERY_PREFIX)
    if not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError(f"not an id from `events dead`: {value!r}")
    return queue, int(digits)


def cmd_requeue(args: argparse.Namespace) -> int:
    from backend.events import deliveries, outbox

    if not args.all and not args.ids:
        print(
            "name the events to requeue (their ids from `events dead`), or --all", file=sys.stderr
        )
        return 2
    events = sorted({i for queue, i in args.ids if queue == "outbox"})
    named = sorted({i for queue, i in args.ids if queue == "deliveries"})
    with opened(load_settings(args.dev)) as engine, engine.begin() as conn:
        count = outbox.requeue(conn, None) if args.all else outbox.requeue(conn, events)
        if args.all or named:
            count += deliveries.requeue(conn, None if args.all else named)
    print(f"requeued {count} event{'s' if count != 1 else ''}")
    missed = 0 if args.all else len(events) + len(named) - count
    if missed:
        # A typo, or an event already requeued or pruned: a script must not take it as done.
        print(f"{missed} of the named events are not dead (see `events dead`)", file=sys.stderr)
        return 1
    return 0


def add_worker(sub: Subcommands) -> None:
    worker = sub.add_parser(
        "worker",
        help="deliver task events and reminders to the event sinks",
        description="Relay the outbox (every task change, and due reminders) to Dapr pub/sub "
        "and signed webhooks: at least once, in order per task, with retries and "
        "dead-lettering. Several may run. Metrics and /health/ready on WORKER_METRICS_PORT.",
    )
    worker.add_argument("--dev", action="store_true", help=DEV_HELP)
    worker.set_defaults(func=cmd_worker)


def add_events(sub: Subcommands) -> None:
    events = sub.add_parser("events", help="event delivery: status, dead letters, requeue")
    actions = events.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="backlog and dead letters; exit 1 when behind")
    status.add_argument(
        "--max-lag",
        type=float,
        default=None,
        help="seconds the oldest pending event may wait (default WORKER_MAX_LAG_SECONDS)",
    )
    status.set_defaults(func=cmd_status)
    dead = actions.add_parser(
        "dead", help="list dead-lettered events and reminder deliveries (ids d<n>)"
    )
    dead.add_argument("--limit", type=int, default=100)
    dead.set_defaults(func=cmd_dead)
    requeue = actions.add_parser("requeue", help="send dead events again")
    requeue.add_argument(
        "ids",
        nargs="*",
        type=_dead_id,
        help="event row ids, or d<n> for a reminder delivery (from `events dead`)",
    )
    requeue.add_argument(
        "--all", action="store_true", help="every dead event and reminder delivery"
    )
    requeue.set_defaults(func=cmd_requeue)
    for parser in (status, dead, requeue):
        parser.add_argument("--dev", action="store_true", help=DEV_HELP)
