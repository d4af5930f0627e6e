"""One request's work: a connection from the pool, one transaction, the caller, and the
services bound to them.

`backend.api.door` builds one per request and enters it inside the route's single thread-pool
hop. A signed-in caller's request costs as few round trips as PostgreSQL allows
(specs/statements.md): the connection is in autocommit, and the caller's entry (a write's
count against the caller's limit, the account check, a write's change lock: `task_api_enter`,
migration 0014) travels in the same message as the route's first statement.

- A read is one message: `SET LOCAL`s, the entry, the statement, as one implicit transaction;
  a further statement is a message (and a transaction) of its own.
- A write sends `BEGIN`, the `SET LOCAL`s and the entry with its first statement. A write that
  nothing follows commits in that same message (`Scoped._run_last`: one round trip); one that
  decides more from its answer commits in a second message, with what it deferred to the
  COMMIT. After a rollback the write is counted again in the `ROLLBACK`'s message (a refused
  or failing write counts).

The route returns only after the commit, so a 2xx is always durable. Services never commit.
"""

from __future__ import annotations

from contextlib import suppress
from types import TracebackType
from typing import Any, Self

import psycopg2.extensions
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.db.engine import (
    autocommit,
    begin_deferring,
    committed_before,
    deferred_message,
    end_autocommit,
    enter_again_with,
    finished,
    hold_commit,
    notices,
    send_with_next_statement,
    take_unsent,
    transaction_locals,
)
from backend.db.notices import Notices
from backend.error_mapping import NO_ANSWER_MESSAGE
from backend.errors import ServiceUnavailable, Unauthorized
from backend.services.changes import ChangeFeed
from backend.services.chatkit import ChatKitService
from backend.services.conversations import ConversationService
from backend.services.idempotency import IdempotencyService
from backend.services.lists import ListService
from backend.services.rate_limits import HeaderSink, RateLimiter, WriteCount
from backend.services.tasks import TaskService
from backend.services.users import UserService

# The execution option naming the caller a connection serves during a unit of work.
CALLER_KEY = "task_api_caller_id"
# The caller's entry (migrations 0014, 0020), and what its account refusals say.
_ENTER = (
    "SELECT task_api_enter(%(subject)s, %(version)s, %(local)s, %(email)s, %(name)s, "
    "%(write)s, %(limit_key)s, %(window)s, %(limit)s, %(clean)s); "
)
_REFUSED_ACCOUNT = {
    "gone": "The account for this token no longer exists",
    "revoked": "This token was revoked",
}
_TOO_LATE = "TA504"  # a write run after its deadline (`engine.finish`): not committed


class UnitOfWork:
    caller_id: str
    tasks: TaskService
    lists: ListService
    changes: ChangeFeed
    conversations: ConversationService
    chatkit: ChatKitService
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
        # A signed-in caller's request: its entry and its write count (None: not counted).
        self._entry: tuple[str, dict[str, Any]] | None = None
        self._count: WriteCount | None = None
        # The transaction was ended by the route (`roll_back`).
        self._ended = False

    def __enter__(self) -> Self:
        conn = self._conn = self._engine.connect()
        try:
            self.users = UserService(conn)
            self.limits = RateLimiter(conn, self._settings, self._client_ip, self.response_headers)
            if self._claims is not None:
                self._enter_as(conn, self._claims)
        except BaseException:
            self._conn = None
            end_autocommit(conn)  # as every other way back to the pool
            conn.close()
            raise
        return self

    def _enter_as(self, conn: Connection, claims: TokenClaims) -> None:
        """Queue the caller's entry to go with the route's first statement; bind the services
        to the token's subject (the account's id: the entry refuses any other)."""
        write = self._counts_write
        autocommit(conn, every_statement_locals=not write)
        # The entry reports in notices (backend/db/notices.py): only this request's are read.
        conn.connection.dbapi_connection.notices.clear()  # type: ignore[union-attr]
        settings = self._settings
        locals_ = transaction_locals(
            settings.db_statement_timeout_ms, settings.effective_db_response_timeout_ms
        )
        # Keyed on the token's subject, before the account is read: a write refused for its
        # account still counts.
        self._count = self.limits.write_count(claims.subject) if write else None
        values: dict[str, Any] = {
            "subject": claims.subject,
            "version": claims.token_version,
            "local": claims.local,
            "email": claims.email,
            "name": claims.name,
            "write": write,
            **dict.fromkeys(("limit_key", "window", "limit"), None),
            "clean": False,
            **(self._count.entry_arguments() if self._count is not None else {}),
        }
        self._entry = (locals_ + _ENTER, values)
        # What the entry (and an Idempotency-Key's check) said is settled as soon as the first
        # message is answered, before anything reads that message's rows: a route that builds
        # its own response copies the rate-limit headers before it returns.
        if write:
            send_with_next_statement(conn, "BEGIN; " + locals_ + _ENTER, values, self._settle)
            # A further transaction (`begin_again`) is entered the same way, counted once.
            uncounted = {**values, **dict.fromkeys(("limit_key", "window", "limit"), None)}
            enter_again_with(conn, "BEGIN; " + locals_ + _ENTER, uncounted, self._settle)
            # What a write runs but nobody reads (a recurring task's next occurrence, an
            # Idempotency-Key's record) rides with the COMMIT (`_leave`).
            begin_deferring(conn)
        else:
            send_with_next_statement(conn, locals_ + _ENTER, values, self._settle)
        self._bind(conn, claims.subject)

    def _settle(self, said: Notices) -> None:
        """What the entry and the key's check said of this request: the count's headers (or
        `RateLimited`), an account refusal (`Unauthorized`), an Idempotency-Key's replay or
        mismatch. A refused request's message wrote nothing (migration 0020)."""
        if self._count is not None:
            self._count.settle(said)
        refusal = said.refusal
        if refusal is None:
            return
        if refusal.code == "TA401":
            raise Unauthorized(_REFUSED_ACCOUNT.get(refusal.reason or "", "Invalid token"))
        IdempotencyService.refused(said)

    def act_as(self, claims: TokenClaims) -> None:
        """Resolve the account `claims` speak for (401 if revoked or deleted; an external
        identity is provisioned) and bind the caller's services to it."""
        conn = self._connection()
        self._bind(conn, self.users.resolve_id(claims, writes=self._counts_write))

    def _bind(self, conn: Connection, caller_id: str) -> None:
        self.caller_id = caller_id
        # Whom this connection now serves: every statement on it must be scoped to this id
        # (tests/scoping.py checks each one the test run sends). An execution option lives
        # and dies with this Connection, not with the pooled database connection under it.
        conn.execution_options(**{CALLER_KEY: self.caller_id})
        self.tasks = TaskService(conn, self.caller_id)
        self.lists = ListService(conn, self.caller_id)
        self.changes = ChangeFeed(conn, self.caller_id)
        self.conversations = ConversationService(conn, self.caller_id)
        self.chatkit = ChatKitService(conn, self.caller_id)
        self.idempotency = IdempotencyService(
            conn, self.caller_id, self._settings.idempotency_key_ttl_seconds
        )

    @property
    def claims(self) -> TokenClaims | None:
        """The verified token this unit of work enters with (None: sign-up, sign-in): what a
        later unit of work for the same caller needs (a chat turn's tool calls)."""
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
            # The server dropped the connection mid-request (a restart, a pooler): nothing to
            # commit or roll back, and its `info` is gone. The error that did it (a 503) is the
            # one to report; a request that swallowed it must not answer 2xx uncommitted.
            conn.close()
            if exc is None:
                raise ServiceUnavailable()
            return
        try:
            if self._entry is not None:
                self._leave(conn, self._entry, exc)
            elif exc_type is None:
                conn.commit()
            else:
                # A connection the server dropped cannot roll back; the error that brought
                # us here is the one to report, and closing discards the connection anyway.
                with suppress(SQLAlchemyError):
                    conn.rollback()
        finally:
            if self._entry is not None:
                end_autocommit(conn)
            conn.close()

    def hold_commit(self) -> None:
        """This request writes more than once (or adds to the transaction after its write):
        no service's write may commit it as its last statement (`Scoped._run_last`)."""
        hold_commit(self._connection())

    def roll_back(self) -> None:
        """End the request's transaction now, with a rollback instead of a commit, its
        response standing (an Idempotency-Key's replay: the key's check stopped the write).
        It still counts: the count's headers (or `RateLimited`) are settled here, before the
        route builds its response."""
        conn = self._connection()
        self._ended = True
        if not finished(conn):  # a message that committed (the count) is not counted again
            self._refused(conn, None)

    def _leave(
        self, conn: Connection, entry: tuple[str, dict[str, Any]], exc: BaseException | None
    ) -> None:
        """End a signed-in caller's request: send the entry if no statement carried it (the
        account is checked and a write counted all the same), commit a write (with what was
        deferred to its COMMIT) or roll it back and count it again, and turn the entry's
        refusals into their errors."""
        if self._ended or finished(conn):
            return  # ended by the route (`roll_back`) or committed by its last statement
        open_transaction = self._counts_write
        unsent_sent = False
        if take_unsent(conn) is not None:
            if committed_before(conn):
                return  # a further transaction that sent nothing: the first was counted
            # No statement ran: the entry alone, as one implicit transaction.
            open_transaction = False
            conn.exec_driver_sql(*entry)
            unsent_sent = True
        elif exc is not None:
            self._refused(conn, exc)
            return
        if open_transaction:
            deferred, params = deferred_message(conn)
            try:
                conn.exec_driver_sql(deferred + "COMMIT", params)
            except DBAPIError as error:
                self._refused(conn, error)
                raise
        if unsent_sent:
            self._settle(notices(conn))

    def _refused(self, conn: Connection, exc: BaseException | None) -> None:
        """After a failed request: roll back the transaction if one is still open, and count
        the write again (the rollback took its count), in one message (`RateLimited` from the
        count); a write given up on before it committed is 503; else let `exc` propagate."""
        if conn.invalidated:
            return  # dropped by the server: nothing to roll back, nowhere to count
        dbapi = conn.connection.dbapi_connection
        idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
        in_transaction = dbapi is not None and dbapi.info.transaction_status != idle
        parts = ["ROLLBACK"] if in_transaction else []
        recount = None
        if self._count is not None and not committed_before(conn):
            recount = self._count.recount_sql()
        if recount is not None:
            parts.append(recount[0])
        if parts:
            try:
                result = conn.exec_driver_sql("; ".join(parts), recount[1] if recount else None)
            except SQLAlchemyError:
                # A connection the server dropped cannot roll back; the error that brought
                # us here is the one to report, and closing discards the connection anyway.
                result = None
            if result is not None and self._count is not None:
                self._count.settle_row(result.one())
        code = getattr(getattr(exc, "orig", None), "pgcode", None)
        if code == _TOO_LATE:
            raise ServiceUnavailable(NO_ANSWER_MESSAGE) from None

    def count_refused_write(self) -> None:
        """Count a write refused before it ran (invalid input): it counts like any other.
        Raises `RateLimited` when that write was over the limit."""
        if self._claims is None or not self._counts_write:
            return
        with self._engine.connect() as conn:
            limits = RateLimiter(conn, self._settings, self._client_ip, self.response_headers)
            limits.write(self._claims.subject)
