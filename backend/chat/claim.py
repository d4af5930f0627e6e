"""An attempt's claim on its chat turn, kept alive by heartbeats (specs/chat.md, "Idempotency"):
a retry takes the turn over once the last beat is older than the lease (`turn.lease`); an attempt
whose beats do not get through starts a call only within two beats of its newest confirmed one,
so the call ends before the lease does and a retry finds every call it committed."""

from __future__ import annotations

import time

from backend.errors import AppError, IdempotencyKeyInUse, ServiceUnavailable

# A tool call starts only this many beats after the newest confirmed one was sent.
USABLE_BEATS = 2


class ClaimEnded(Exception):
    """The attempt may no longer act for its turn: `error` is what ends the turn."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.code)
        self.error = error


class Claim:
    """One attempt's hold on its turn, as far as the attempt knows (monotonic clock)."""

    def __init__(self, period: float, since: float) -> None:
        self.period = period
        # When the newest confirmed beat was sent (first: the claim, stored just after `since`).
        self.confirmed = since
        self.lost = False

    def confirm(self, sent: float) -> None:
        self.confirmed = max(self.confirmed, sent)

    def check(self) -> None:
        """Raise `ClaimEnded` unless a tool call may start now (any thread)."""
        if self.lost:  # a retry took the turn over (or it ended)
            raise ClaimEnded(IdempotencyKeyInUse())
        if time.monotonic() >= self.confirmed + USABLE_BEATS * self.period:  # no beat got through
            raise ClaimEnded(ServiceUnavailable())
