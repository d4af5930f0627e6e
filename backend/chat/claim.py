"""An attempt's claim on its chat turn, kept alive by heartbeats (specs/chat.md, "Idempotency").

A running attempt renews its claim every `CHAT_HEARTBEAT_SECONDS` (`ConversationService.beat`);
a retry takes the turn over only once the last beat is older than the lease (`turn.lease`), so a
live attempt keeps its turn and a dead one's key is free within seconds. When beats do not get
through, the attempt starts a tool call only within two beats of its newest confirmed one
(`Claim.check`); the call ends within a database wait, before that lease runs out, so a retry
finds every call it committed. The answer is stored only over the attempt's own record.
"""

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
        # When the newest beat the database confirmed was sent (first: the claim itself,
        # stored just after `since`). The database's lease counts from a later instant.
        self.confirmed = since
        self.lost = False

    def confirm(self, sent: float) -> None:
        self.confirmed = max(self.confirmed, sent)

    def check(self) -> None:
        """Raise `ClaimEnded` unless a tool call may start now (any thread)."""
        if self.lost:
            # A retry took the turn over (or it ended): what this attempt would do is its.
            raise ClaimEnded(IdempotencyKeyInUse())
        if time.monotonic() >= self.confirmed + USABLE_BEATS * self.period:
            # The beats did not get through in time: the database is not answering.
            raise ClaimEnded(ServiceUnavailable())
