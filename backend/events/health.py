"""The worker's own HTTP port: Prometheus `/metrics` and `/health/ready` (is it keeping up?).

A separate registry (not the API's multiprocess one): the worker is its own process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.pending = Gauge("task_events_pending", "Events waiting for delivery.", registry=r)
        self.oldest_pending = Gauge(
            "task_events_oldest_pending_seconds",
            "Age of the oldest event waiting for delivery (0 when none).",
            registry=r,
        )
        self.dead = Gauge("task_events_dead", "Dead-lettered events.", registry=r)
        self.delivered = Counter(
            "task_events_delivered", "Events a sink accepted.", ["sink"], registry=r
        )
        self.failures = Counter(
            "task_events_failed_attempts", "Delivery attempts that failed.", ["sink"], registry=r
        )
        self.dead_lettered = Counter(
            "task_events_dead_lettered",
            "Events that ran out of attempts, by the sink whose failure was the last.",
            ["sink"],
            registry=r,
        )
        self.latency = Histogram(
            "task_events_delivery_latency_seconds",
            "From the change (or the reminder's firing) to the sink's acceptance.",
            ["sink"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
            registry=r,
        )
        self.reminders = Counter(
            "task_reminders_fired", "Reminders fired, by outcome.", ["outcome"], registry=r
        )
        self.notifications = Counter(
            "reminder_deliveries",
            "Reminder pushes and emails by outcome: delivered, retried (a failed attempt "
            "to try again), dead (out of attempts, or refused for good), gone (the push "
            "service said the subscription ended), dropped (no longer for its person).",
            ["channel", "outcome"],
            registry=r,
        )
        self.deliveries_pending = Gauge(
            "reminder_deliveries_pending",
            "Reminder pushes and emails and address confirmations waiting to be sent.",
            registry=r,
        )
        self.deliveries_dead = Gauge(
            "reminder_deliveries_dead",
            "Dead-lettered reminder pushes and emails and address confirmations.",
            registry=r,
        )
        self.notification_delay = Histogram(
            "reminder_delivery_delay_seconds",
            "From a reminder's instant to its push service's or SMTP server's acceptance.",
            ["channel"],
            buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 1800),
            registry=r,
        )


@dataclass
class Readiness:
    """What the last poll saw; ready while polls succeed and the backlog is young."""

    poll_seconds: float
    max_lag_seconds: float
    # A cycle may legitimately take this long (a batch of slow deliveries): not stale yet.
    busy_seconds: float = 0.0
    last_ok: float = 0.0
    lag_seconds: float = 0.0
    error: str | None = None

    def report(self) -> tuple[bool, dict[str, Any]]:
        since = time.monotonic() - self.last_ok if self.last_ok else None
        polling = since is not None and since < max(5 * self.poll_seconds, 10) + self.busy_seconds
        keeping_up = self.lag_seconds <= self.max_lag_seconds
        ready = polling and keeping_up
        body = {
            "status": "ready" if ready else "not ready",
            "polling": polling,
            "oldest_pending_seconds": round(self.lag_seconds, 3),
            "max_lag_seconds": self.max_lag_seconds,
            "error": self.error,
        }
        return ready, body


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(host: str, port: int, metrics: WorkerMetrics, readiness: Readiness) -> WSGIServer:
    """Serve /metrics and /health/ready from a daemon thread; returns the server."""
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health/ready":
            ready, body = readiness.report()
            status = "200 OK" if ready else "503 Service Unavailable"
            start(status, [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        result: Iterable[bytes] = prometheus(environ, start)
        return result

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
    return server
