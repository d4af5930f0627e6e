"""A bounded wait for every answer of the database, and a breaker that stops new requests
from queueing behind one that stopped answering: client-side, because `statement_timeout`
cannot fire on a stuck server or a silent network (specs/reliability.md, R7 "Mechanism").
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, ClassVar

import psycopg2
import psycopg2.extensions
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from backend.errors import DatabaseTimeout, DatabaseUnresponsive

logger = logging.getLogger(__name__)

# How late past its deadline a timed-out round trip may be answered.
WATCHDOG_TICK_SECONDS = 0.05
# While the breaker is open, the next probe at most this long after the last one failed.
BREAKER_PROBE_INTERVAL_SECONDS = 0.2
# A failed connect this slow was a timeout (a stuck server: trip); a refused one is quick.
SLOW_CONNECT_FAILURE_SECONDS = 0.5


class Breaker:
    """Open after a timeout or a slow failed connect; while open one checkout at a time probes
    (at most every `probe_interval`), and the first answer closes it."""

    def __init__(self, probe_interval: float = BREAKER_PROBE_INTERVAL_SECONDS) -> None:
        self.probe_interval = probe_interval
        self.lock = threading.Lock()
        self.open = False
        self._next_probe = 0.0
        self._probe_thread: int | None = None  # the probe under way, if any

    def trip(self, reason: str) -> None:
        with self.lock:
            me = threading.get_ident()
            if not self.open:
                logger.warning("database breaker open: %s", reason)
                self._next_probe = time.monotonic() + self.probe_interval
            elif self._probe_thread == me:
                # The probe failed: the next one a moment later.
                self._next_probe = time.monotonic() + self.probe_interval
            if self._probe_thread == me:
                self._probe_thread = None
            self.open = True

    def admit(self) -> bool:
        """Raise `DatabaseUnresponsive` while open, unless this checkout is the probe (True)."""
        if not self.open:  # the common case, without the lock
            return False
        with self.lock:
            if not self.open:
                return False
            now = time.monotonic()
            if self._probe_thread is not None or now < self._next_probe:
                raise DatabaseUnresponsive("the database stopped answering; not tried")
            self._probe_thread = threading.get_ident()
            return True

    def check_connect(self) -> None:
        """Before opening a connection: while open, only the probe may try (a checkout
        admitted before the breaker opened must not wait out a connect timeout either)."""
        if self.open and self._probe_thread != threading.get_ident():
            raise DatabaseUnresponsive("the database stopped answering; not tried")

    def close(self) -> None:
        with self.lock:
            if self.open:
                logger.warning("database breaker closed: the database answers again")
            self.open = False
            self._probe_thread = None


class _Watchdog:
    """One thread per process: shuts the socket of every round trip past its deadline (under
    the lock a round trip takes to disarm, so a connection is never touched after it ended)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed: dict[int, tuple[float, GuardedConnection]] = {}
        self.running = False

    def start(self) -> None:
        with self.lock:
            if not self.running:
                threading.Thread(target=self._run, name="db-watchdog", daemon=True).start()
                self.running = True

    def _after_fork(self) -> None:
        # A forked child has the parent's registrations but not its thread.
        self.lock = threading.Lock()
        self.armed = {}
        self.running = False

    def _run(self) -> None:
        while True:
            time.sleep(WATCHDOG_TICK_SECONDS)
            now = time.monotonic()
            # A copy: a round trip may be armed meanwhile (without the lock).
            for key, entry in list(self.armed.items()):
                if entry[0] > now:
                    continue
                with self.lock:
                    # Still the same round trip, and it cannot end while its socket is shut.
                    if self.armed.get(key) is entry:
                        del self.armed[key]
                        entry[1]._shut_down()


_watchdog = _Watchdog()
os.register_at_fork(after_in_child=_watchdog._after_fork)


class GuardedConnection(psycopg2.extensions.connection):
    """psycopg2's connection with a deadline on every round trip (an engine's subclass sets
    `timeout`, seconds, 0: none, and `breaker`)."""

    timeout: ClassVar[float] = 0.0
    breaker: ClassVar[Breaker | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = GuardedCursor
        self.timed_out = False

    def _guarded(self, call: Any, *args: Any) -> Any:
        timeout = self.timeout
        if timeout <= 0:
            return call(*args)
        watchdog = _watchdog
        if not watchdog.running:
            watchdog.start()
        # Armed: one dict store (atomic under the GIL); disarmed under the watchdog's lock.
        watchdog.armed[id(self)] = (time.monotonic() + timeout, self)
        try:
            return call(*args)
        except psycopg2.OperationalError as exc:
            if self.timed_out:
                raise DatabaseTimeout(
                    f"no answer from the database within {timeout:g} s; connection closed"
                ) from exc
            raise
        finally:
            with watchdog.lock:
                watchdog.armed.pop(id(self), None)

    def _shut_down(self) -> None:
        """Called by the watchdog, with the round trip still registered."""
        self.timed_out = True
        if self.breaker is not None:
            self.breaker.trip(f"no answer within {self.timeout:g} s")
        try:
            # Shut down through a duplicate: closing it leaves libpq's own descriptor alone.
            sock = socket.socket(fileno=os.dup(self.fileno()))
        except (OSError, psycopg2.Error):
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()

    def commit(self) -> None:
        self._guarded(super().commit)

    def rollback(self) -> None:
        self._guarded(super().rollback)


class GuardedCursor(psycopg2.extensions.cursor):
    connection: GuardedConnection

    def execute(self, query: Any, vars: Any = None) -> None:
        self.connection._guarded(super().execute, query, vars)

    def executemany(self, query: Any, vars_list: Any) -> None:
        self.connection._guarded(super().executemany, query, vars_list)


def guarded_connection_class(timeout: float, breaker: Breaker) -> type[GuardedConnection]:
    return type("GuardedConnection", (GuardedConnection,), {"timeout": timeout, "breaker": breaker})


class BreakerPool(QueuePool):
    """QueuePool whose checkouts pass the breaker (a subclass per engine survives `recreate`)."""

    breaker: ClassVar[Breaker]

    def connect(self) -> PoolProxiedConnection:
        if not self.breaker.open or not self.breaker.admit():  # closed: no lock, no call
            return super().connect()
        connection = None
        try:
            connection = super().connect()
            # An answer from the server itself: a pooler connects while the server is stuck.
            dbapi = connection.dbapi_connection
            if dbapi is None:  # never: a checked-out connection has one
                raise DatabaseUnresponsive("the probe got no connection")
            cursor = dbapi.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi.rollback()
        except BaseException:
            if connection is not None:
                connection.invalidate()
                connection.close()
            self.breaker.trip("the probe got no answer")
            raise
        self.breaker.close()
        return connection


def breaker_pool_class(breaker: Breaker) -> type[BreakerPool]:
    return type("BreakerPool", (BreakerPool,), {"breaker": breaker})
