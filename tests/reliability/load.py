"""A small recording HTTP client for the load and fault tests: every request's send time,
latency and outcome, so a test can assert on each one and report the figures."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Outcome:
    method: str
    path: str
    sent: float  # time.monotonic() when sent
    latency: float
    status: int | None  # None: no HTTP answer (transport error or client timeout)
    error: str = ""
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Recorder:
    """Thread-safe list of outcomes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []

    def send(self, http: httpx.Client, method: str, path: str, **kwargs: Any) -> Outcome:
        sent = time.monotonic()
        try:
            response = http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            outcome = Outcome(
                method, path, sent, time.monotonic() - sent, None, f"{type(exc).__name__}: {exc}"
            )
        else:
            try:
                body = response.json() if response.content else None
            except ValueError:
                body = response.text
            outcome = Outcome(
                method,
                path,
                sent,
                time.monotonic() - sent,
                response.status_code,
                body=body,
                headers=dict(response.headers),
            )
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def wait_for_recovery(
        self, since: float, *, after: int, gap: float = 0.0, timeout: float = 60
    ) -> None:
        """Until a request sent at or after `since` has succeeded and `after` more requests,
        sent more than `gap` seconds after that success was answered, have been answered too;
        at most `timeout` seconds (the test's own assertions then say what was missing). A
        test waits on this after its fixed observation time: a slow machine that recovers
        within the test's bound, but later than that time, is still seen to recover."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = sorted((o for o in self.outcomes if o.sent >= since), key=lambda o: o.sent)
            ok = [o for o in seen if o.status is not None and 200 <= o.status < 300]
            if ok:
                answered = ok[0].sent + ok[0].latency + gap
                if sum(1 for o in seen if o.sent > answered) >= after:
                    return
            time.sleep(0.1)

    def statuses(self) -> Counter[int | None]:
        with self._lock:
            return Counter(o.status for o in self.outcomes)

    def summary(self) -> str:
        counts = self.statuses()
        total = sum(counts.values())
        ok = sum(n for s, n in counts.items() if s is not None and 200 <= s < 300)
        client = sum(n for s, n in counts.items() if s is not None and 400 <= s < 500)
        server = sum(n for s, n in counts.items() if s is not None and s >= 500)
        latencies = sorted(o.latency for o in self.outcomes)
        p50 = latencies[len(latencies) // 2] if latencies else 0.0
        return (
            f"requests={total} 2xx={ok} 4xx={client} 5xx={server} "
            f"no-answer={counts.get(None, 0)} by-status={dict(sorted(counts.items(), key=str))} "
            f"p50={p50 * 1000:.0f}ms max={(latencies[-1] if latencies else 0) * 1000:.0f}ms"
        )
