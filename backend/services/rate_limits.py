"""Rate limits whose state lives in PostgreSQL, so they hold across worker processes and
replicas.

Algorithm: fixed window per (policy, client) key, counted by one atomic statement
(`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`) on the database clock, so concurrent
requests on any process see one consistent count. The libraries that implement the
algorithms (`limits`, `pyrate-limiter`) have no PostgreSQL store on psycopg2, and the stack
allows no second driver or store, hence the one statement here.

The counter is written in its own short transaction, committed before the request's own
transaction begins on the same connection: a sign-in that fails (and rolls the request back)
must still count.

Responses carry the IETF draft headers (draft-ietf-httpapi-ratelimit-headers):
`RateLimit-Policy: "sign-in-ip";q=20;w=300` and `RateLimit: "sign-in-ip";r=19;t=241`, and a
429 adds `Retry-After`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, text

from backend.config import Settings
from backend.errors import RateLimited

# One statement for all the policies a request touches; keys sorted so that two requests
# never lock the same rows in opposite orders. About one hit in `_CLEAN_UP_ONE_IN` also deletes
# expired windows (`:clean`), so the table stays small: in the same statement, so the clean-up
# costs no round trip of its own and every request sends the same messages. It spares the keys
# being hit, so no row is both deleted and upserted by one statement.
_HIT = text(
    """
    WITH expired AS (
        DELETE FROM rate_limits
        WHERE CAST(:clean AS boolean)
          AND window_end < clock_timestamp()
          AND key <> ALL (CAST(:keys AS text[]))
    )
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
_CLEAN_UP_ONE_IN = 500


class HeaderSink(Protocol):
    """Where the rate-limit headers go: a dict, or the response's headers."""

    def update(self, other: Mapping[str, str], /) -> None: ...


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
    """The rate-limit policies, counted on the request's connection. Every checked request
    gets `RateLimit` / `RateLimit-Policy` headers (added to `headers`); one over a limit is
    `RateLimited` (429 with `Retry-After`)."""

    def __init__(
        self,
        connection: Connection,
        settings: Settings,
        client_ip: str,
        headers: HeaderSink,
    ) -> None:
        self._conn = connection
        self._settings = settings
        self._client_ip = client_ip
        self._headers = headers

    def sign_in(self, email: str) -> None:
        s = self._settings
        window = s.rate_limit_auth_window_seconds
        self._enforce(
            (Policy("sign-in-ip", s.rate_limit_sign_in_per_ip, window), self._client_ip),
            (Policy("sign-in-account", s.rate_limit_sign_in_per_account, window), _norm(email)),
        )

    def sign_up(self, email: str) -> None:
        s = self._settings
        window = s.rate_limit_auth_window_seconds
        self._enforce(
            (Policy("sign-up-ip", s.rate_limit_sign_up_per_ip, window), self._client_ip),
            (Policy("sign-up-account", s.rate_limit_sign_up_per_account, window), _norm(email)),
        )

    def write(self, user_id: str) -> None:
        """One write by `user_id` (the token's subject), against the per-user write limit."""
        s = self._settings
        policy = Policy(
            "task-writes", s.rate_limit_task_writes_per_user, s.rate_limit_task_window_seconds
        )
        self._enforce((policy, user_id))

    def _enforce(self, *checks: tuple[Policy, str]) -> None:
        outcome = self._hit(checks)
        headers = outcome.headers()
        if not outcome.allowed:
            raise RateLimited(extra_headers=headers)
        self._headers.update(headers)

    def _hit(self, checks: Sequence[tuple[Policy, str]]) -> Outcome:
        """Count one request against each (policy, client) pair, in a transaction of its own
        (committed at once): call it before anything else runs on the connection."""
        checks = [(policy, client) for policy, client in checks if policy.limit > 0]
        if not self._settings.rate_limit_enabled or not checks:
            return Outcome(())
        by_key: Mapping[str, Policy] = {_key(p, c): p for p, c in checks}
        with self._conn.begin():
            rows = self._conn.execute(
                _HIT,
                {
                    "keys": list(by_key),
                    "windows": [p.window_seconds for p in by_key.values()],
                    "clean": random.randrange(_CLEAN_UP_ONE_IN) == 0,  # noqa: S311 (not security)
                },
            ).all()
        usages = {key: Usage(by_key[key], hits, reset) for key, hits, reset in rows}
        return Outcome(tuple(usages[key] for key in by_key))


def _norm(email: str) -> str:
    return email.strip().lower()
