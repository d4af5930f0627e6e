"""Rate limits kept in PostgreSQL, so they hold across processes and replicas: a fixed window per
(policy, client), one atomic upsert on the database clock (`limits` and `pyrate-limiter` have no
PostgreSQL store on psycopg2). Sign-in counts in its own committed transaction, so a failed one
still counts; a write is counted in its own message (`Count`)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, text

from backend.config import Settings
from backend.errors import RateLimited

# One statement for all the policies a request touches; about one hit in 500 also cleans.
_HIT_SQL = "SELECT key, hits, reset_seconds FROM task_api_hit({keys}, {windows}, {clean})"
_HIT = text(
    _HIT_SQL.format(
        keys="CAST(:keys AS text[])", windows="CAST(:windows AS integer[])", clean=":clean"
    )
)
_CLEAN_UP_ONE_IN = 500
# A hit, then another only when the first is within its limit (`RateLimiter._hit_then`): the
# second call's filter reads no column of it, so PostgreSQL runs it as a one-time filter and
# never calls the function when it is false.
_HIT_THEN = text(
    "WITH first AS MATERIALIZED (SELECT key, hits, reset_seconds FROM task_api_hit("
    "CAST(:keys AS text[]), CAST(:windows AS integer[]), false)) "
    "SELECT key, hits, reset_seconds FROM first UNION ALL "
    "SELECT key, hits, reset_seconds FROM task_api_hit("
    "CAST(:then_keys AS text[]), CAST(:then_windows AS integer[]), false) "
    "WHERE (SELECT max(hits) FROM first) <= :limit"
)
# An address's confirmation mails an hour: this many accounts' bounds, so that no one account
# (a stranger typing someone's address) can spend it alone and lock its owner out.
ADDRESS_ACCOUNTS = 3


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
    """One policy's count for one client: `hits` in the window, which ends in `reset_seconds`."""

    policy: Policy
    hits: int
    reset_seconds: int


def settle_usages(usages: Sequence[Usage], sink: HeaderSink) -> None:
    """Add `usages`' `RateLimit` headers to `sink`; over a limit, `RateLimited` (`Retry-After`)."""
    if not usages:
        return
    headers = {
        "RateLimit-Policy": ", ".join(
            f'"{u.policy.name}";q={u.policy.limit};w={u.policy.window_seconds}' for u in usages
        ),
        "RateLimit": ", ".join(
            f'"{u.policy.name}";r={max(0, u.policy.limit - u.hits)};t={u.reset_seconds}'
            for u in usages
        ),
    }
    # Other policies' items a request was counted against already stay; this call's replace theirs.
    get = getattr(sink, "get", None)
    if get is not None:
        names = {f'"{u.policy.name}"' for u in usages}
        for header in ("RateLimit-Policy", "RateLimit"):
            prior = get(header)
            if prior:
                kept = [i for i in prior.split(", ") if i.split(";", 1)[0] not in names]
                if kept:
                    headers[header] = ", ".join([*kept, headers[header]])
    over = [u.reset_seconds for u in usages if u.hits > u.policy.limit]
    if over:
        headers["Retry-After"] = str(max(over))
        raise RateLimited(extra_headers=headers)
    sink.update(headers)


def limit_key(policy: Policy, client: str) -> str:
    """The `rate_limits` key of `policy`'s count for `client`."""
    digest = hashlib.sha256(client.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{policy.name}:{digest}"


class RateLimiter:
    """The rate-limit policies, counted on the request's connection, with their headers."""

    def __init__(
        self,
        connection: Connection,
        settings: Settings,
        client_ip: str,
        headers: HeaderSink,
        with_entry: Callable[[Count], None] | None = None,
    ) -> None:
        """`with_entry`: where a signed-in route's own limit is counted with the caller's entry."""
        self._conn = connection
        self._settings = settings
        self._client_ip = client_ip
        self._headers = headers
        self._with_entry = with_entry

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

    def mail_link(self) -> None:
        """A mail link opened, counted per address as sign-in is: guessing tokens is slowed too."""
        s = self._settings
        window = s.rate_limit_auth_window_seconds
        self._enforce(
            (Policy("mail-link-ip", s.rate_limit_mail_links_per_ip, window), self._client_ip)
        )

    def confirmation_mail(self, user_id: str, address: str) -> None:
        """One confirmation mail about to be made for `address` by `user_id`, before the
        settings' write, in one statement: counted per account, and only when the account's
        bound admits it, per address (`mailbox_key`: its forms are one), whose bound is
        `ADDRESS_ACCOUNTS` accounts' (an hour each); over either, 429. So a stranger's requests,
        refused or not, never use up the address's bound: its owner can still ask."""
        limit = self._settings.rate_limit_confirmation_mails_per_hour
        account = Policy("confirmation-mail-account", limit, 3600)
        mailbox = Policy("confirmation-mail-address", limit * ADDRESS_ACCOUNTS, 3600)
        settle_usages(
            self._hit_then((account, user_id), (mailbox, mailbox_key(address))), self._headers
        )

    def chat(self, user_id: str) -> None:
        """One chat turn by `user_id`: model calls cost money, so chat has its own budget."""
        s = self._settings
        self._enforce(
            (Policy("chat", s.chat_rate_limit_per_user, s.chat_rate_limit_window_seconds), user_id)
        )

    def invitations(self, user_id: str) -> None:
        """One invitation created by `user_id`: `route` with its limit."""
        self.route(invitation_limit, user_id)

    def dav_failure(self, username: str) -> None:
        """One failed CalDAV sign-in with `username` (`dav_failure_checks`)."""
        self._enforce(*dav_failure_checks(self._settings, self._client_ip, username))

    def route(self, limit: RouteLimit, user_id: str) -> None:
        """A request of a route with its own per-user limit, counted with the caller's entry."""
        policy = limit(self._settings)
        if self._with_entry is None:
            self._enforce((policy, user_id))
        elif self._settings.rate_limit_enabled and policy.limit > 0:
            self._with_entry(Count(self._headers, policy, limit_key(policy, user_id), clean=False))

    def write(self, user_id: str, route: RouteLimit | None = None) -> None:
        """One write against the write limit and `route`'s own, in a transaction of its own."""
        count = write_count(self._settings, user_id, self._headers)
        checks = [] if count is None else [(count.policy, user_id)]
        if route is not None:
            checks.append((route(self._settings), user_id))
        # Counted in the order the entry locks their rows in: the write's, then the route's.
        usages = self._hit(checks)
        writes = [u for u in usages if count is not None and u.policy == count.policy]
        own = [u for u in usages if u not in writes]
        over = [u for u in own if u.hits > u.policy.limit]
        if own and not over:
            settle_usages(own, self._headers)
        settle_usages(writes, self._headers)
        settle_usages(over, {})

    def _enforce(self, *checks: tuple[Policy, str]) -> None:
        settle_usages(self._hit(checks), self._headers)

    def _hit_then(self, first: tuple[Policy, str], then: tuple[Policy, str]) -> list[Usage]:
        """Count against `first`, and against `then` only if `first` is within its limit."""
        if not self._settings.rate_limit_enabled or first[0].limit <= 0:
            return self._hit([then])
        if then[0].limit <= 0:
            return self._hit([first])
        (policy, client), (then_policy, then_client) = first, then
        keys = {limit_key(policy, client): policy, limit_key(then_policy, then_client): then_policy}
        with self._conn.begin():
            rows = self._conn.execute(
                _HIT_THEN,
                {
                    "keys": [limit_key(policy, client)],
                    "windows": [policy.window_seconds],
                    "then_keys": [limit_key(then_policy, then_client)],
                    "then_windows": [then_policy.window_seconds],
                    "limit": policy.limit,
                },
            ).all()
        return [Usage(keys[key], hits, reset) for key, hits, reset in rows]

    def _hit(self, checks: Sequence[tuple[Policy, str]]) -> list[Usage]:
        """Count against each (policy, client), committed at once: before anything else runs."""
        checks = [(policy, client) for policy, client in checks if policy.limit > 0]
        if not self._settings.rate_limit_enabled or not checks:
            return []
        by_key: Mapping[str, Policy] = {limit_key(p, c): p for p, c in checks}
        with self._conn.begin():
            rows = self._conn.execute(
                _HIT,
                {
                    "keys": list(by_key),
                    "windows": [p.window_seconds for p in by_key.values()],
                    "clean": _clean_up(),
                },
            ).all()
        usages = {key: Usage(by_key[key], hits, reset) for key, hits, reset in rows}
        return [usages[key] for key in by_key]


def dav_failure_checks(
    settings: Settings, client_ip: str, username: str
) -> tuple[tuple[Policy, str], tuple[Policy, str]]:
    """Failed CalDAV sign-ins, per address and per username from it; never per username alone, or
    anyone could lock its owner's devices out."""
    window = settings.rate_limit_auth_window_seconds
    return (
        (Policy("dav-auth-ip", settings.rate_limit_dav_failures_per_ip, window), client_ip),
        (
            Policy("dav-auth-user", settings.rate_limit_dav_failures_per_username, window),
            # A username holds no space (`dav_username` encodes it), so the pair is one key.
            f"{username} {client_ip}",
        ),
    )


@dataclass(frozen=True)
class Count:
    """A count made by another statement (the entry, a route's, a recount); headers to `headers`."""

    headers: HeaderSink
    policy: Policy
    key: str
    clean: bool  # also deletes expired windows (`_clean_up`)

    def bound(self, prefix: str) -> dict[str, Any]:
        """Its key, window and limit as a counting statement's values (`<prefix>key`, ...)."""
        window, limit = self.policy.window_seconds, self.policy.limit
        return {f"{prefix}key": self.key, f"{prefix}window": window, f"{prefix}limit": limit}


def recount_sql(counts: Sequence[Count]) -> tuple[str, dict[str, Any]]:
    """The hits of `counts` as SQL for a message after a `ROLLBACK`, in the entry's lock order."""
    parts: list[str] = []
    values: dict[str, Any] = {}
    for index, count in enumerate(counts):
        parts.append(
            _HIT_SQL.format(
                keys=f"%(k{index})s::text[]", windows=f"%(w{index})s::integer[]", clean="false"
            )
        )
        values[f"k{index}"], values[f"w{index}"] = [count.key], [count.policy.window_seconds]
    return " UNION ALL ".join(parts), values


# A route's own per-user limit, from the settings (`RateLimiter.route`).
RouteLimit = Callable[[Settings], Policy]


def invitation_limit(settings: Settings) -> Policy:
    """`POST /api/lists/{list_id}/invitations`'s own limit: an hour's window."""
    return Policy("invitations", settings.rate_limit_invitations_per_hour, 3600)


def calendar_feed_count(settings: Settings, token: str, headers: HeaderSink) -> Count | None:
    """A feed's fetch, counted per token an hour: a leaked URL polled hard costs one statement."""
    limit = settings.rate_limit_calendar_feed_per_hour
    if not settings.rate_limit_enabled or limit <= 0:
        return None
    policy = Policy("calendar-feed", limit, 3600)
    return Count(headers, policy, limit_key(policy, token), clean=False)


def write_count(settings: Settings, user_id: str, headers: HeaderSink) -> Count | None:
    """The count of a write by `user_id`, for the caller's entry; None when not limited."""
    limit = settings.rate_limit_task_writes_per_user
    if not settings.rate_limit_enabled or limit <= 0:
        return None
    policy = Policy("task-writes", limit, settings.rate_limit_task_window_seconds)
    return Count(headers, policy, limit_key(policy, user_id), _clean_up())


def _clean_up() -> bool:
    """Whether this hit also deletes expired windows (about one in `_CLEAN_UP_ONE_IN`)."""
    return random.randrange(_CLEAN_UP_ONE_IN) == 0  # noqa: S311 (not security-relevant)


def _norm(email: str) -> str:
    return email.strip().lower()


def mailbox_key(address: str) -> str:
    """What counts an address's mails: one key for the forms of one mailbox (its domain as
    Unicode or as its IDNA A-label, any case; the local part's case too, as sign-in's)."""
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return _norm(address)
    return f"{checked.local_part}@{checked.ascii_domain}".lower()
