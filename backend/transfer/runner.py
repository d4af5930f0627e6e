"""Running imports off the request: a runner takes a queued import (or one whose runner died:
its lease ran out) with `FOR UPDATE SKIP LOCKED`, reads its stored file again, analyses it and
writes its tasks in chunks, one unit of work each, as its owner (the door's entry: the write
count and the change lock). Each chunk first renews the lease on the import's row (which it
locks until the chunk commits), so a runner whose lease was taken over writes nothing, and a
chunk is all or nothing; the items' keys make a chunk run again add nothing. A failure
trashes what the import created and marks it `failed`. It runs in the event worker (`python
-m backend worker`) and in the API process (a thread of the app's lifespan), any number of
them at once."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.errors import AppError, RateLimited, ServiceUnavailable, database_error, loggable
from backend.services.delivery.notification_settings import NotificationSettingsService
from backend.services.sharing.lists import ListService
from backend.services.tasks.saved_filters import SavedFilterService
from backend.services.tasks.service import TaskService
from backend.services.transfer.imports import ImportService, claim
from backend.services.unit_of_work import UnitOfWork
from backend.transfer import sources
from backend.transfer.importer import (
    LIST,
    TASK,
    Analysis,
    KeysTaken,
    Written,
    analyse,
    standing_of,
    store_attachment,
    trash_roots,
    write_chunk,
    write_lists,
)
from backend.transfer.plan import NotThisSource

logger = logging.getLogger(__name__)
# Past this many claims of one import (each a runner that died or a database away), it fails.
MAX_ATTEMPTS = 5
# A chunk refused by the owner's write rate limit is tried again after this wait, this often.
RATE_LIMITED_WAIT = 5.0
RATE_LIMITED_TRIES = 12


class LeaseLost(Exception):
    """Another runner took the import over (this one was too slow): stop, write nothing."""


class Transient(Exception):
    """The database went away or the owner's write limit was reached: try again later."""


@dataclass(frozen=True)
class Outcome:
    import_id: int
    state: str  # done, failed, or `left` (lease lost or a transient failure: it runs again)


class ImportRunner:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        name: str | None = None,
        after_chunk: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Called after each committed chunk with its number (tests stop a runner there).
        self._after_chunk = after_chunk

    def run_once(self, only: int | None = None) -> Outcome | None:
        """Claim one import and run it; None: none was waiting."""
        settings = self._settings
        claimed = claim(self._engine, self.name, settings.import_lease_seconds, only)
        if claimed is None:
            return None
        claims = TokenClaims(subject=claimed.user_id, local=False)
        if claimed.attempts > MAX_ATTEMPTS:
            return self._fail(claimed.import_id, claims, "Gave up after repeated interruptions")
        try:
            return self._run(claimed.import_id, claims)
        except LeaseLost:
            logger.warning("import %d: lease lost, left to its new runner", claimed.import_id)
            return Outcome(claimed.import_id, "left")
        except Transient as exc:
            logger.warning("import %d: %s; it runs again", claimed.import_id, exc)
            return Outcome(claimed.import_id, "left")

    def loop(self, stop: threading.Event) -> None:
        """Run imports until `stop` is set, waiting IMPORT_POLL_SECONDS when none waits. While
        the database is away it backs off (doubling, up to 30 s), logging the 1st, 2nd, 4th...
        failure only, as the worker's loop does."""
        poll, away = self._settings.import_poll_seconds, 0
        while not stop.is_set():
            try:
                outcome = self.run_once()
            except Exception as exc:  # the database away: wait, try again
                away += 1
                if away & (away - 1) == 0:
                    logger.error(
                        "import runner cycle failed (%d in a row)", away, exc_info=loggable(exc)
                    )
                stop.wait(min(poll * 2.0 ** min(away - 1, 20), max(poll, 30.0)))
                continue
            if away:
                logger.info("import runner cycles succeed again after %d failed", away)
                away = 0
            if outcome is None:
                stop.wait(poll)

    def _unit(self, claims: TokenClaims, *, write: bool = True) -> UnitOfWork:
        return UnitOfWork(self._engine, self._settings, claims=claims, counts_write=write)

    def _run(self, import_id: int, claims: TokenClaims) -> Outcome:
        try:
            with self._unit(claims, write=False) as work:
                row = work.service(ImportService).held(import_id, self.name)
            if row is None:
                raise LeaseLost()
            with self._unit(claims, write=False) as work:
                zone = row.time_zone or (
                    work.service(NotificationSettingsService).get().time_zone or "UTC"
                )
                plan = sources.read(row.source, bytes(row.file or b""), row.file_name, zone)
                standing = standing_of(
                    work.service(ImportService),
                    work.service(ListService),
                    work.service(SavedFilterService),
                    plan,
                    import_id,
                )
            analysis = analyse(plan, standing, zone, row.list_id)
        except NotThisSource as exc:
            return self._fail(import_id, claims, f"{exc.where}: {exc.message}")
        except AppError as exc:
            if isinstance(exc, ServiceUnavailable | RateLimited):
                raise Transient(exc.message) from None
            return self._fail(import_id, claims, exc.message)
        except OperationalError as exc:
            raise Transient(f"database: {type(exc).__name__}") from None
        written = Written()
        for key, known in {**standing.known, **standing.mine}.items():
            kind, _, source_key = key.partition(":")
            if kind == TASK:
                written.task_ids[source_key] = known.row_id
            elif kind == LIST:
                written.list_ids[source_key] = known.row_id
        try:
            self._write(import_id, claims, analysis, written, len(plan.tasks))
        except (LeaseLost, Transient):
            raise
        except KeysTaken:
            raise Transient("another import keyed some of its items first") from None
        except (ServiceUnavailable, RateLimited) as exc:
            raise Transient(exc.message) from None
        except Exception as exc:
            if database_error(exc) and isinstance(exc, OperationalError):
                raise Transient(f"database: {type(exc).__name__}") from None
            message = exc.message if isinstance(exc, AppError) else "The import failed"
            if not isinstance(exc, AppError):
                logger.error("import %d failed", import_id, exc_info=loggable(exc))
            return self._fail(import_id, claims, message)
        return Outcome(import_id, "done")

    def _write(
        self,
        import_id: int,
        claims: TokenClaims,
        analysis: Analysis,
        written: Written,
        total: int,
    ) -> None:
        settings = self._settings
        size = settings.import_chunk_tasks
        ready = analysis.tasks
        chunks = [ready[i : i + size] for i in range(0, len(ready), size)] or [[]]
        done = total - len(ready)
        store = store_attachment(settings) if analysis.counts.attachments else None
        counts = analysis.counts.model_dump()
        for number, chunk in enumerate(chunks):
            done += len(chunk)
            for attempt in range(RATE_LIMITED_TRIES):
                try:
                    with self._unit(claims) as work:
                        work.hold_commit()
                        imports: ImportService = work.service(ImportService)
                        held = imports.progress(
                            import_id,
                            self.name,
                            done=done,
                            total=total,
                            lease_seconds=settings.import_lease_seconds,
                            counts=counts,
                            warnings=analysis.warnings,
                            lossy=analysis.lossy,
                        )
                        if not held:
                            raise LeaseLost()
                        if number == 0:
                            write_lists(work, import_id, analysis, written)
                        write_chunk(work, import_id, analysis, chunk, written, store)
                    break
                except RateLimited:
                    # The owner's write limit, counted at the chunk's entry (nothing written):
                    # wait within the lease, then the same chunk again.
                    if attempt == RATE_LIMITED_TRIES - 1:
                        raise
                    time.sleep(min(RATE_LIMITED_WAIT, settings.import_lease_seconds / 3))
            if self._after_chunk is not None:
                self._after_chunk(number)
        with self._unit(claims) as work:
            if work.service(ImportService).finish(import_id, self.name, "done") is None:
                raise LeaseLost()

    def _fail(self, import_id: int, claims: TokenClaims, error: str) -> Outcome:
        """All or nothing: trash what the import created, forget its keys, mark it failed."""
        with self._unit(claims) as work:
            work.hold_commit()
            imports: ImportService = work.service(ImportService)
            tasks: TaskService = work.service(TaskService)
            trash_roots(tasks, imports, import_id)
            imports.forget(import_id)
            if imports.finish(import_id, self.name, "failed", error[:1000]) is None:
                raise LeaseLost()
        return Outcome(import_id, "failed")


class RunnerThread:
    """An `ImportRunner` on a daemon thread (the API process's, the worker's)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.runner = ImportRunner(engine, settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.runner.loop, args=(self._stop,), name="imports", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        """Stop after the chunk in flight (an unfinished import resumes when its lease ends)."""
        self._stop.set()
        self._thread.join(wait)
