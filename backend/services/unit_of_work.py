"""One request's work: a connection from the pool, one transaction, the caller, and the
services bound to them.

`backend.api.door` builds one per request and enters it inside the route's single thread-pool
hop: entering counts a write against the caller's limit (its own committed transaction) and
resolves the caller's account; leaving commits, or rolls back on any error. The route returns
only after the commit, so a 2xx is always durable. Services never commit.
"""

from __future__ import annotations

from contextlib import suppress
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.services.changes import ChangeFeed
from backend.services.idempotency import IdempotencyService
from backend.services.rate_limits import HeaderSink, RateLimiter
from backend.services.tasks import TaskService
from backend.services.users import UserService

# The execution option naming the caller a connection serves during a unit of work.
CALLER_KEY = "task_api_caller_id"


class UnitOfWork:
    caller_id: str
    tasks: TaskService
    changes: ChangeFeed
    idempotency: IdempotencyService
    users: UserService
    limits: RateLimiter

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        claims: TokenClaims | None = None,
        counts_write: bool = False,
        client_ip: str = "unknown",
        response_headers: HeaderSink | None = None,
    ) -> None:
        """`claims`: the verified token (None for sign-up and sign-in); `counts_write`: the
        request is a write, counted against the caller's per-user limit on entry."""
        self._engine = engine
        self._settings = settings
        self._claims = claims
        self._counts_write = counts_write
        self._client_ip = client_ip
        # Where the rate-limit headers for the response go (the door passes the response's).
        self.response_headers: HeaderSink = {} if response_headers is None else response_headers
        self._conn: Connection | None = None

    def __enter__(self) -> Self:
        conn = self._conn = self._engine.connect()
        try:
            self.users = UserService(conn)
            self.limits = RateLimiter(conn, self._settings, self._client_ip, self.response_headers)
            if self._claims is not None:
                if self._counts_write:
                    # Keyed on the token's subject, before the account is read: a refused
                    # or failing write still counts.
                    self.limits.write(self._claims.subject)
                self.act_as(self._claims)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        return self

    def act_as(self, claims: TokenClaims) -> None:
        """Resolve the account `claims` speak for (401 if revoked or deleted; an external
        identity is provisioned) and bind the caller's services to it."""
        conn = self._connection()
        self.caller_id = self.users.resolve_id(claims, writes=self._counts_write)
        # Whom this connection now serves: every statement on it must be scoped to this id
        # (tests/scoping.py checks each one the test run sends). An execution option lives
        # and dies with this Connection, not with the pooled database connection under it.
        conn.execution_options(**{CALLER_KEY: self.caller_id})
        self.tasks = TaskService(conn, self.caller_id)
        self.changes = ChangeFeed(conn, self.caller_id)
        self.idempotency = IdempotencyService(
            conn, self.caller_id, self._settings.idempotency_key_ttl_seconds
        )

    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if exc_type is None:
                conn.commit()
            else:
                # A connection the server dropped cannot roll back; the error that brought
                # us here is the one to report, and closing discards the connection anyway.
                with suppress(SQLAlchemyError):
                    conn.rollback()
        finally:
            conn.close()

    def count_refused_write(self) -> None:
        """Count a write refused before it ran (invalid input): it counts like any other.
        Raises `RateLimited` when that write was over the limit."""
        if self._claims is None or not self._counts_write:
            return
        with self._engine.connect() as conn:
            limits = RateLimiter(conn, self._settings, self._client_ip, self.response_headers)
            limits.write(self._claims.subject)
