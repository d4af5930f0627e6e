"""One request's work: a connection, its `Sender`, the caller and the services bound to them, each
reached one way, `service(Kind)`. The caller's entry (the write count, the account check, the change
lock) travels with the route's first statement (backend/db/sender.py); the route returns only after
the commit, so a 2xx is durable. It sits above `backend/db/`, which imports no service."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from functools import lru_cache
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.db.sender import Entry, Outcome, Sender, Stage, render, transaction_locals
from backend.errors import NO_ANSWER_MESSAGE, ServiceUnavailable, Unauthorized
from backend.services.accounts.users import UserService
from backend.services.calendar.calendar_feeds import FEED_COUNT
from backend.services.idempotency import IdempotencyService
from backend.services.rate_limits import (
    Count,
    HeaderSink,
    RateLimiter,
    RouteLimit,
    Usage,
    calendar_feed_count,
    recount_sql,
    settle_usages,
    write_count,
)
from backend.services.statements.tokens import token_hash
from backend.services.tasks.undo import UndoService

# The caller's entry (migrations 0014, 0020), and what its account refusals say.
_ENTER = (
    "SELECT task_api_enter(%(e_subject)s, %(e_version)s, %(e_local)s, %(e_email)s, "
    "%(e_name)s, %(e_write)s, %(e_limit_key)s, %(e_window)s, %(e_limit)s, %(e_clean)s); "
)
_REFUSED_ACCOUNT = {
    "gone": "The account for this token no longer exists",
    "revoked": "This token was revoked",
}
_UNCOUNTED = dict.fromkeys(("e_limit_key", "e_window", "e_limit"))
# A write by a task's id takes its caller's and the task's space's change locks together (migration
# 0041): two members writing in each other's lists would otherwise deadlock.
_LOCK_TASK = "SELECT task_api_lock_task_spaces(%(e_subject)s, %(e_task)s); "
# A route's own limit's count, after the entry (migration 0035).
_COUNT = "SELECT task_api_count(%(c_key)s, %(c_window)s, %(c_limit)s); "
_locals = lru_cache(maxsize=8)(transaction_locals)
S = TypeVar("S")
_TOO_LATE = "TA504"  # a write run after its deadline (`task_api_in_time`): not committed


class UnitOfWork:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        claims: TokenClaims | None = None,
        counts_write: bool = False,
        client_ip: str = "unknown",
        response_headers: HeaderSink | None = None,
        transaction_locals: str | None = None,
        task_id: int | None = None,
        feed_token: str | None = None,
    ) -> None:
        """`claims`: the verified token (None: sign-up, sign-in); `counts_write`: counted on entry;
        `task_id`: its space's change lock taken too; `feed_token`: counted with its fetch."""
        self._engine = engine
        self._settings = settings
        self._claims = claims
        # The account services are bound to: the token's subject, else "" or a link's (`acts_for`).
        self.caller_id = claims.subject if claims is not None else ""
        self._services: dict[type[Any], Any] = {}
        self._counts_write = counts_write
        self._task_id = task_id
        self._client_ip = client_ip
        # Where the rate-limit headers for the response go (the door passes the response's).
        self.response_headers: HeaderSink = {} if response_headers is None else response_headers
        self._conn: Connection | None = None
        self._locals = transaction_locals
        self._count: Count | None = None  # a write's count (None: not counted)
        self._route_count: Count | None = None  # the route's own limit's (`_count_with_entry`)
        # The route's own limit: counted with the entry, and for a write refused before it ran.
        self.route_limit: RouteLimit | None = None
        self._ended = False  # the route ended the transaction (`roll_back`)
        self._feed_token = feed_token
        # A feed's `RateLimit` headers, with the feed only: every feed 404 is one answer.
        self.feed_headers: dict[str, str] = {}
        # In autocommit, the entry (or a feed's count) riding with the first statement.
        self._autocommit = claims is not None or feed_token is not None
        # A subclass's own check of the caller (SQL, values), after the entry in each transaction.
        self._checks: tuple[str, dict[str, Any]] | None = None

    def __enter__(self) -> Self:
        conn = self._conn = self._engine.connect()
        settings = self._settings
        locals_ = self._locals or _locals(
            settings.db_statement_timeout_ms, settings.effective_db_response_timeout_ms
        )
        claims = self._claims
        if claims is None:
            self.send = Sender(conn, locals_, self._anonymous_entry(conn))
            return self
        try:
            # Keyed on the subject before the account is read: a refused account's write counts.
            write = self._counts_write
            self._count = count = (
                write_count(settings, claims.subject, self.response_headers) if write else None
            )
            values: dict[str, Any] = {
                "e_subject": claims.subject,
                "e_version": claims.token_version,
                "e_local": claims.local,
                "e_email": claims.email,
                "e_name": claims.name,
                "e_write": write,
                **_UNCOUNTED,
                "e_clean": False,
            }
            if count is not None:
                values["e_limit_key"], values["e_clean"] = count.key, count.clean
                values["e_window"], values["e_limit"] = (
                    count.policy.window_seconds,
                    count.policy.limit,
                )
            # A further transaction (`begin_again`) enters the same way, counting nothing; a write
            # that takes its locks itself enters without the caller's change lock.
            unlocked: dict[str, Any] | None = {"e_write": False}
            sql = _ENTER
            if write and self._task_id is not None:
                sql, values = _ENTER + _LOCK_TASK, {**values, "e_write": False}
                values["e_task"] = self._task_id
                unlocked = None  # its locks are taken: none for a statement to take
            if self._checks is not None:
                sql, values = sql + self._checks[0], {**values, **self._checks[1]}
            entry = Entry(sql, values, {**values, **_UNCOUNTED}, write, self._settle, unlocked)
            self.send = Sender(conn, locals_, entry)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        if self.route_limit is not None:
            self.service(RateLimiter).route(self.route_limit, self.caller_id)
        return self

    def _anonymous_entry(self, conn: Connection) -> Entry | None:
        """An anonymous request's first statement carries a feed's count, else nothing."""
        if self._feed_token is None:
            return None
        return self._feed_entry(conn, self._feed_token)

    def _feed_entry(self, conn: Connection, token: str) -> Entry:
        """A feed's fetch: its count rides with its one statement (`_settle`)."""
        count = calendar_feed_count(self._settings, token, self.feed_headers)
        sql, values = "", dict[str, Any]()
        if count is not None:
            self._route_count = count
            # Only a fetch that reads a feed counts: a dead token is told nothing (`FEED_COUNT`).
            bound = {**count.bound(""), "token_hash": token_hash(token)}
            sql, values = render(conn, FEED_COUNT, bound, "c_")
            sql += "; "
        return Entry(sql, values, values, False, self._settle)

    def _settle(self, outcome: Outcome) -> None:
        """What the entry and the key's check said: headers or refusal (specs/statements.md)."""
        count, route, over = self._count, self._route_count, None
        if outcome.route_hits is not None and route is not None:
            usage = Usage(route.policy, outcome.route_hits, outcome.route_reset or 1)
            if usage.hits > route.policy.limit:
                over = usage
            else:
                settle_usages((usage,), route.headers)
        if outcome.hits is not None and count is not None:
            usage = Usage(count.policy, outcome.hits, outcome.reset or 1)
            settle_usages((usage,), count.headers)
        refused = outcome.refused
        if refused == "TA401":
            raise Unauthorized(_REFUSED_ACCOUNT.get(outcome.reason or "", "Invalid token"))
        if over is not None:
            settle_usages((over,), {})
        if refused is not None:
            IdempotencyService.refused(outcome)

    def service(self, kind: type[S]) -> S:
        """`kind` bound to this request, built once: the one way into a service."""
        services = self._services
        if kind not in services:
            build = _BUILT.get(kind)
            made = cast(Any, kind)(self.send, self.caller_id) if build is None else build(self)
            services[kind] = made
        return cast(S, services[kind])

    def _limiter(self) -> RateLimiter:
        with_entry = None if self._claims is None else self._count_with_entry
        return RateLimiter(
            self._connection(), self._settings, self._client_ip, self.response_headers, with_entry
        )

    def _count_with_entry(self, count: Count) -> None:
        """Count the route's own limit beside the entry: over it nothing else is written."""
        if self._route_count is not None:
            raise RuntimeError("a request counts against one route limit")
        self.send.count(_COUNT, count.bound("c_"))
        self._route_count = count

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def claims(self) -> TokenClaims | None:
        """The verified token (None: sign-up, sign-in), for the caller's later work."""
        return self._claims

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
        if conn.invalidated:
            # The server dropped the connection: nothing to commit; the error that did it (a 503) is
            # reported, and a request that swallowed it must not answer 2xx uncommitted.
            conn.close()
            if exc is None:
                raise ServiceUnavailable()
            return
        send = self.send
        try:
            if not self._autocommit:
                if exc_type is None:
                    conn.commit()
                else:
                    # A dropped connection cannot roll back; the error that got us here is reported.
                    with suppress(SQLAlchemyError):
                        conn.rollback()
            elif self._ended or send.stage is Stage.COMMITTED:
                pass  # ended by the route (`roll_back`) or committed by its last statement
            elif send.entry is not None:
                # No statement carried the entry: sent alone, so it is checked and counted all the
                # same.
                if not send.resumed:
                    send.send_entry()
            elif exc is not None:
                self._refused(exc)
            elif send.began:
                try:
                    send.commit()
                except DBAPIError as error:
                    self._refused(error)
                    raise
        finally:
            # Back in psycopg2's transactions, or discarded if still inside one (`_on_return`).
            conn.close()

    def acts_for(self, user_id: str) -> None:
        """No token: a mail's link names the account (its proof checked). Before entering."""
        if self._claims is not None or self._conn is not None:
            raise RuntimeError("a link's account is named before its anonymous work is entered")
        self.caller_id = user_id

    def again(self) -> UnitOfWork:
        """A new unit of work of the same caller (token, engine, settings), for reads that come
        after this one closed: a streamed body's pages (an export), each in its own short unit
        of work, so no connection is held while bytes move to the client. It counts no write;
        each entry checks the account again (revoked meanwhile: 401 ends the stream)."""
        return UnitOfWork(
            self._engine,
            self._settings,
            claims=self._claims,
            client_ip=self._client_ip,
            transaction_locals=self._locals,
        )

    def names_task(self, task_id: int) -> None:
        """The write names `task_id` in its body rather than its path (a ChatKit widget's button):
        its entry takes that task's space's change lock too (migration 0041). Before entering."""
        if self._conn is not None:
            raise RuntimeError("a write's task is named before its unit of work is entered")
        self._task_id = task_id

    @property
    def verified_email(self) -> str | None:
        """The caller's address if its identity provider says it is verified, else None."""
        claims = self._claims
        return claims.email if claims is not None and claims.email_verified else None

    def hold_commit(self) -> None:
        """The request writes more than once: no write may commit it in its own message."""
        self._connection()
        self.send.hold()

    def roll_back(self) -> None:
        """Roll back, the response standing (a replay); it still counts, settled here."""
        self._connection()
        self._ended = True
        if self.send.stage is not Stage.COMMITTED:  # a committed count is not counted again
            self._refused(None)

    def _refused(self, exc: BaseException | None) -> None:
        """After a failure: roll back, count again what it took; a write given up on is 503."""
        send = self.send
        if send.conn.invalidated:
            return  # dropped by the server: nothing to roll back, nowhere to count
        parts = ["ROLLBACK"] if send.in_transaction() else []
        send.began = False
        recount = None
        # The write's count, then the route's (the entry's lock order), if the rollback took them.
        stands = send.resumed or send.counted
        counts = [] if stands else [c for c in (self._count, self._route_count) if c]
        if counts:
            recount = recount_sql(counts)
            parts.append(recount[0])
        if parts:
            try:
                result = send.conn.exec_driver_sql(
                    "; ".join(parts), recount[1] if recount else None
                )
            except SQLAlchemyError:
                # A dropped connection cannot roll back; the error that got us here is reported.
                result = None
            if result is not None and recount is not None:
                said = {key: (hits, reset) for key, hits, reset in result.all()}
                none = (None, None)
                hits, reset = said.get(self._count.key, none) if self._count else none
                route_hits, route_reset = (
                    said.get(self._route_count.key, none) if self._route_count else none
                )
                self._settle(Outcome(hits, reset, route_hits=route_hits, route_reset=route_reset))
        code = getattr(getattr(exc, "orig", None), "pgcode", None)
        if code == _TOO_LATE:
            raise ServiceUnavailable(NO_ANSWER_MESSAGE) from None

    def count_refused_write(self) -> None:
        """Count a write refused before it ran like any other; `RateLimited` when over."""
        if self._claims is None or not self._counts_write:
            return
        with self._engine.connect() as conn:
            limits = RateLimiter(conn, self._settings, self._client_ip, self.response_headers)
            limits.write(self._claims.subject, self.route_limit)


# The services that are not `Kind(send, caller_id)`: how each is built from its unit of work.
_BUILT: dict[type[Any], Callable[[UnitOfWork], Any]] = {
    IdempotencyService: lambda work: IdempotencyService(
        work.send, work.caller_id, work.settings.idempotency_key_ttl_seconds
    ),
    UserService: lambda work: UserService(work.send),
    RateLimiter: UnitOfWork._limiter,
    UndoService: lambda work: UndoService(work.send, work.caller_id, work.service),
}
