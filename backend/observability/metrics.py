"""Prometheus metrics: HTTP requests (count, latency, in flight) and the database pool. With
`serve --workers N`, every worker writes files in PROMETHEUS_MULTIPROC_DIR that `/metrics`
sums (so the pool figures are gauges each worker samples).
"""

from __future__ import annotations

import hmac
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine
from sqlalchemy.pool import Pool, QueuePool

from backend.config import Settings
from backend.errors import Unauthorized
from backend.observability.logging import UNMATCHED

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
# A fast API: most requests take a few milliseconds; 5 s is far past any client's patience.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Requests on a path no route has (404s by routing) share one label value, `UNMATCHED`, so
# scanners cannot create label values; methods outside this set are counted as OTHER.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# How stale another worker's pool gauges may be in a scrape.
POOL_SAMPLE_SECONDS = 1.0
POOL_SAMPLER = "pool-gauges"  # the sampling thread's name
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


class HttpMetrics:
    """The app's metrics. One instance per app; label children are cached so a request
    costs two dict lookups and three value updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        labels = ("method", "route", "status")
        self.requests = Counter(
            "http_requests", "HTTP requests answered.", labels, registry=self.registry
        )
        self.tool_calls = Counter(
            "mcp_tool_calls",
            "MCP tool calls, by tool and the status their error envelope carries (200: none); "
            "the HTTP answer of a tool error is 200 all the same.",
            ("tool", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request start to the end of the response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        def live(name: str, documentation: str) -> Gauge:
            # livesum: summed over the workers that are alive (a dead worker's files are dropped).
            return Gauge(name, documentation, registry=self.registry, multiprocess_mode="livesum")

        self.in_flight = live("http_requests_in_flight", "Requests being handled.")
        self.pool_size = live(
            "db_pool_size", "Configured pooled connections (DB_POOL_SIZE), summed over workers."
        )
        self.pool_max_overflow = live(
            "db_pool_max_overflow",
            "Configured extra connections beyond the pool (DB_MAX_OVERFLOW), summed over workers.",
        )
        self.pool_checked_out = live(
            "db_pool_checked_out", "Connections checked out of the pool (in use by a request)."
        )
        self.pool_overflow = live(
            "db_pool_overflow", "Checked-out connections beyond the pool size (overflow in use)."
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._pool: Pool | None = None
        self._pool_size = 0
        self._stop = threading.Event()
        if self.multiprocess_dir is not None:
            # Exposition reads every worker's files; this process's registry is not used.
            self._exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._exposed, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            self._exposed = self.registry

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        # Keyed on label values only: odd methods must not grow the cache either.
        key = (method if method in _METHODS else "OTHER", route or UNMATCHED, status)
        children = self._children.get(key)
        if children is None:
            values = (key[0], key[1], str(status))
            children = (self.requests.labels(*values), self.latency.labels(*values))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_tool(self, tool: str, status: int) -> None:
        self.tool_calls.labels(tool, str(status)).inc()

    def exposition(self) -> bytes:
        self._sample_pool()
        return generate_latest(self._exposed)

    def watch_pool(self, engine: Engine, pool_size: int, max_overflow: int) -> None:
        """Keep the pool gauges current: sampled every `POOL_SAMPLE_SECONDS` by a daemon
        thread, and before every exposition."""
        self._pool = engine.pool
        self._pool_size = pool_size
        self.pool_size.set(pool_size)
        self.pool_max_overflow.set(max_overflow)
        self._sample_pool()
        self._drop_dead_workers()
        threading.Thread(target=self._sample_until_closed, name=POOL_SAMPLER, daemon=True).start()

    def _sample_until_closed(self) -> None:
        while not self._stop.wait(POOL_SAMPLE_SECONDS):
            self._sample_pool()

    def _sample_pool(self) -> None:
        if not isinstance(self._pool, QueuePool):
            return
        count = self._pool.checkedout()
        self.pool_checked_out.set(count)
        self.pool_overflow.set(max(0, count - self._pool_size))

    def _drop_dead_workers(self) -> None:
        """A worker that was killed never ran `close`; its live gauges would linger. Its
        replacement, starting up, drops them."""
        if self.multiprocess_dir is None:
            return
        for path in Path(self.multiprocess_dir).iterdir():
            match = _LIVE_GAUGE_FILE.match(path.name)
            if match and not psutil.pid_exists(int(match.group(1))):
                multiprocess.mark_process_dead(int(match.group(1)), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """On worker shutdown: its in-flight and pool gauges leave the sums."""
        self._stop.set()
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def metrics_endpoint(settings: Settings, metrics: HttpMetrics) -> Callable[[Request], Response]:
    """GET /metrics: the exposition, behind `Authorization: Bearer <METRICS_TOKEN>` if set."""
    token = settings.metrics_token
    expected = f"Bearer {token.get_secret_value()}".encode() if token is not None else None

    # Sync: reading the workers' files is blocking I/O, so it runs in the thread pool.
    def serve_metrics(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise Unauthorized("Missing or invalid metrics token")
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return serve_metrics


def install_metrics(app: FastAPI, settings: Settings) -> HttpMetrics | None:
    """Create the app's metrics and route /metrics, or None when metrics are off."""
    if not settings.serve_metrics:
        return None
    metrics = HttpMetrics()
    app.add_api_route(
        METRICS_PATH, metrics_endpoint(settings, metrics), methods=["GET"], include_in_schema=False
    )
    return metrics
