"""A task's upload (backend/models/attachment.py; list, get and delete are the child's generic
service). The route stores the bytes first under a new key, before its unit of work takes a
connection, so no connection waits on bytes; `record` then inserts the row under the per-task cap
and the uploader's quota, which holds under concurrent uploads because the caller's change lock is
taken ahead of the insert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, NoReturn

from sqlalchemy import ARRAY, BigInteger, Text, bindparam, func, insert, select, text
from sqlalchemy.engine import Engine

from backend.config import Settings
from backend.db.scope import OWNER, Scoped
from backend.errors import Conflict, LimitReached, NotFound
from backend.models import Task
from backend.models.attachment import TASK_ATTACHMENTS
from backend.services.statements.access import may, require
from backend.services.tasks.child_rows import TASK_NOT_FOUND
from backend.services.tasks.task_children import TaskAttachmentService
from backend.storage import ObjectStorage
from backend.storage.app import StoredUpload

_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
_ROWS = TaskAttachmentService.rows
_TABLE: Any = TASK_ATTACHMENTS.table.__table__  # type: ignore[attr-defined]
_C = _TABLE.c
_WRITE = TASK_ATTACHMENTS.action(writes=True)
_TASK_ID = bindparam("task", type_=BigInteger)
_SIZE = bindparam("new_size", type_=BigInteger)
_QUOTA = bindparam("quota", type_=BigInteger)
# Every stored child's bytes the caller uploaded, here and in a trash (migration 0079).
_USED = func.task_stored_used(bindparam(OWNER, type_=Text), type_=BigInteger)

_KEPT = select(func.count()).where(_C.task_id == _TASK_ID, may(_TABLE, _WRITE))
_INSERT = (
    insert(_TABLE)
    .from_select(
        [
            "user_id",
            "task_id",
            "list_id",
            "uploaded_by",
            "storage_key",
            "filename",
            "content_type",
            "size",
            "sha256",
        ],
        select(
            _T.user_id,
            _T.id,
            _T.list_id,
            bindparam(OWNER),
            bindparam("new_key", type_=Text),
            bindparam("new_filename", type_=Text),
            bindparam("new_type", type_=Text),
            _SIZE,
            bindparam("new_sha256", type_=Text),
        ).where(
            _T.id == _TASK_ID,
            may(_TASKS, _WRITE),
            _KEPT.scalar_subquery() < TASK_ATTACHMENTS.per_task,
            _USED + _SIZE <= _QUOTA,
        ),
    )
    .returning(*_ROWS.view)
)
_USED_NOW = select(_USED.label("used"))
# Of those, the ones no stored child's row names any more (read after the deletion).
_FORGOTTEN = text("SELECT unnest(:keys) AS key EXCEPT SELECT task_stored_known(:keys)").bindparams(
    bindparam("keys", type_=ARRAY(Text))
)


# Without numbers, so the documented example is the answer (the numbers: the limits route).
QUOTA_REACHED = (
    "This file would take your uploads past your quota (your use and quota: "
    "GET /api/attachments/limits)"
)


class AttachmentService(Scoped):
    def record(self, task_id: int, stored: StoredUpload, *, quota: int) -> Any:
        """Add the row naming `stored`'s bytes to the task under the cap and the quota (else
        the task's 404/403, or 422 `LIMIT_REACHED`); once it returns, the row has committed."""
        measured = stored.measured
        rows = self._write(
            _INSERT,
            task=task_id,
            quota=quota,
            new_key=stored.key,
            new_filename=stored.filename,
            new_type=measured.content_type,
            new_size=measured.size,
            new_sha256=measured.sha256,
            last=True,
        )
        if not rows:
            self._refuse(task_id, measured.size, quota)
        stored.recorded = True
        return rows[0]

    def forgotten(self, keys: list[str]) -> list[str]:
        """Of `keys`, those no stored child's row names any more, here or in a trash."""
        if not keys:
            return []
        return [row.key for row in self._read(_FORGOTTEN, keys=keys)]

    def used(self) -> int:
        """The bytes the caller's uploads hold that count against its quota."""
        return int(self._read(_USED_NOW).scalar() or 0)

    def _refuse(self, task_id: int, size: int, quota: int) -> NoReturn:
        found = self._read(_ROWS.create_refusal, task=task_id).first()
        if found is None:
            raise NotFound(TASK_NOT_FOUND)
        role, count = tuple(found)
        require(role, _WRITE, NotFound(TASK_NOT_FOUND))
        cap = TASK_ATTACHMENTS.per_task or 0
        if count >= cap:
            raise LimitReached(f"This task has {count} attachments, the most there can be ({cap})")
        if self.used() + size > quota:
            raise LimitReached(QUOTA_REACHED)
        raise Conflict("The task changed while the attachment was being added; retry")


_SWEEP_BATCH = 500
# The keys of a batch still named by a stored child's row, here or in a trash (migration 0079).
_KNOWN = text("SELECT task_stored_known(:keys) AS key").bindparams(
    bindparam("keys", type_=ARRAY(Text))
)


def orphan_cutoff(settings: Settings) -> datetime:
    """An object or unfinished upload older than this with no row is an orphan (an insert never run,
    an account's cascade); younger ones may be in flight."""
    return datetime.now(UTC) - timedelta(seconds=settings.attachments_orphan_seconds)


def sweep_orphans(engine: Engine, storage: ObjectStorage, older_than: datetime) -> int:
    """Delete unnamed objects and uploads older than `older_than` (any number of workers)."""
    removed = storage.abandon_incomplete(older_than)
    old = (found.key for found in storage.list() if found.modified < older_than)
    while batch := list(islice(old, _SWEEP_BATCH)):
        with engine.connect() as conn:
            known = {row.key for row in conn.execute(_KNOWN, {"keys": batch})}
        for key in batch:
            if key not in known:
                storage.delete(key)
                removed += 1
    return removed
