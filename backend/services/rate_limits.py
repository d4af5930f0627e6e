"""Rate limits whose state lives in PostgreSQL, so they hold across worker processes and
replicas.

Algorithm: fixed window per (policy, client) key, counted by one atomic statement
(`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`) on the database clock, so concurrent
requests on any process see one consistent count. The libraries that implement the
algorithms (`limits`, `pyrate-limiter`) have no PostgreSQL store on psycopg2, and the stack
allows no second driver or store, hence the one statement here.

The counter is written in its own short transaction on the engine, not in the request's
session: a sign-in that fails (and rolls the request back) must still count.

Responses carry the IETF draft headers (draft-ietf-httpapi-ratelimit-headers):
`RateLimit-Policy: "sign-in-ip";q=20;w=300` and `RateLimit: "sign-in-ip";r=19;t=241`, and a
429 adds `Retry-After`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, text

# One statement for all the policies a request touches; keys sorted so that two requests
# never lock the same rows in opposite orders.
_HIT = text(
    """
    INSERT INTO rate_limits AS r (key, window_start, window_end, hits)
    SELECT k, s, s + make_interval(secs => w), 1
    FROM (
        SELECT k, w,
               date_bin(make_interval(secs => w), clock_timestamp(),
                        TIMESTAMPTZ '2000-01-01 00:00:00+00') AS s
        FROM unnest(CAST(:keys AS text[]), CAST(:windows AS integer[])) AS t(k, w)
        ORDER BY k
    ) AS windows
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
        window_start = EXCLUDED.window_start,
        window_end = EXCLUDED.window_end
    RETURNING key, hits,
              greatest(1, ceil(extract(epoch FROM window_end - clock_timestamp())))::integer
    """
)
_CLEAN_UP = text("DELETE FROM rate_limits WHERE window_end < clock_timestamp()")
# About one hit in this many also deletes expired windows, so the table stays small.
_CLEAN_UP_ONE_IN = 500


@dataclass(frozen=True)
class Policy:
    name: str
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class Usage:
    policy: Policy
    hits: int
    reset_seconds: int

    @property
    def remaining(self) -> int:
        return max(0, self.policy.limit - self.hits)

    @property
    def exceeded(self) -> bool:
        return self.hits > self.policy.limit


@dataclass(frozen=True)
class Outcome:
    usages: tuple[Usage, ...]

    @property
    def allowed(self) -> bool:
        return not any(u.exceeded for u in self.usages)

    @property
    def retry_after(self) -> int:
        return max((u.reset_seconds for u in self.usages if u.exceeded), default=0)

    def headers(self) -> dict[str, str]:
        if not self.usages:
            return {}
        headers = {
            "RateLimit-Policy": ", ".join(
                f'"{u.policy.name}";q={u.policy.limit};w={u.policy.window_seconds}'
                for u in self.usages
            ),
            "RateLimit": ", ".join(
                f'"{u.policy.name}";r={u.remaining};t={u.reset_seconds}' for u in self.usages
            ),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def _key(policy: Policy, client: str) -> str:
    digest = hashlib.sha256(client.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{policy.name}:{digest}"


class RateLimiter:
    def __init__(self, engine: Engine, *, enabled: bool = True) -> None:
        self.engine = engine
        self.enabled = enabled

    def hit(self, checks: Sequence[tuple[Policy, str]]) -> Outcome:
        """Count one request against each (policy, client) pair; report every policy's use."""
        checks = [(policy, client) for policy, client in checks if policy.limit > 0]
        if not self.enabled or not checks:
            return Outcome(())
        by_key: Mapping[str, Policy] = {_key(p, c): p for p, c in checks}
        with self.engine.begin() as conn:
            rows = conn.execute(
                _HIT,
                {"keys": list(by_key), "windows": [p.window_seconds for p in by_key.values()]},
            ).all()
            if random.randrange(_CLEAN_UP_ONE_IN) == 0:  # noqa: S311 (not security-relevant)
                conn.execute(_CLEAN_UP)
        usages = {key: Usage(by_key[key], hits, reset) for key, hits, reset in rows}
        return Outcome(tuple(usages[key] for key in by_key))
