"""Imports (specs/import-export.md): every statement on `imports` and `import_items`. A request
queues an import with its file; a runner (backend/transfer/runner.py) takes it (`claim`: every
user's, the one statement outside a caller's scope), then works as its owner, through this
service in a unit of work per chunk, each write conditioned on the lease it holds, so a runner
whose lease another took over writes nothing more."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    Float,
    Integer,
    LargeBinary,
    Text,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Scoped, owned
from backend.errors import Conflict, NotFound
from backend.models.imports import IMPORTS_PENDING_MAX, Import, ImportItem

_I = Import.__table__.c  # type: ignore[attr-defined]
_ITEMS = ImportItem.__table__  # type: ignore[attr-defined]
_K = _ITEMS.c
IMPORT_NOT_FOUND = "Import not found"

# What an import's answer reads (never the file).
VIEW = (
    _I.id,
    _I.source,
    _I.state,
    _I.progress_done,
    _I.progress_total,
    _I.counts,
    _I.warnings,
    _I.lossy,
    _I.error,
    _I.created_at,
    _I.finished_at,
)
_IMPORT_ID = bindparam("import_id", type_=BigInteger)
_RUNNER = bindparam("runner", type_=Text)
_HELD = (_I.id == _IMPORT_ID, _I.lease_owner == _RUNNER, _I.state == "running")

# The caller's imports not yet ended: a new one is queued only while they are fewer than
# IMPORTS_PENDING_MAX (one statement: nothing inserted, the caller told to wait).
_PENDING = owned(
    select(func.count())
    .select_from(Import.__table__)  # type: ignore[attr-defined]
    .where(or_(_I.state == "queued", _I.state == "running")),
    _I.user_id,
).scalar_subquery()
_QUEUE = (
    insert(Import)
    .from_select(
        ["user_id", "source", "file", "file_name", "time_zone", "list_id"],
        select(
            bindparam(OWNER, type_=Text),
            bindparam("source", type_=Text),
            bindparam("file", type_=LargeBinary),
            bindparam("file_name", type_=Text),
            bindparam("time_zone", type_=Text),
            bindparam("list_id", type_=BigInteger),
        ).where(_PENDING < IMPORTS_PENDING_MAX),
    )
    .returning(*VIEW)
)
PENDING_MESSAGE = (
    f"You have {IMPORTS_PENDING_MAX} imports queued or running, the most there can be at once: "
    "wait for one to end"
)
_GET = owned(select(*VIEW).where(_I.id == _IMPORT_ID), _I.user_id)
_PAGE = owned(
    select(*VIEW)
    .where(_I.id < bindparam("before", type_=BigInteger))
    .order_by(_I.id.desc())
    .limit(bindparam("limit", type_=Integer)),
    _I.user_id,
)
# The import a runner holds, with its file and options.
_HELD_ONE = owned(
    select(*VIEW, _I.file, _I.file_name, _I.time_zone, _I.list_id).where(*_HELD), _I.user_id
)
_PROGRESS = (
    owned(update(Import), _I.user_id)
    .where(*_HELD)
    .values(
        progress_done=bindparam("done", type_=Integer),
        progress_total=bindparam("total", type_=Integer),
        counts=bindparam("counts", type_=JSONB),
        warnings=bindparam("warnings", type_=JSONB),
        lossy=bindparam("lossy", type_=JSONB),
        lease_until=func.now()
        + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("lease", type_=Float)),
    )
    .returning(_I.id)
)
_FINISH = (
    owned(update(Import), _I.user_id)
    .where(*_HELD)
    .values(
        state=bindparam("state", type_=Text),
        error=bindparam("error", type_=Text),
        file=None,
        lease_owner=None,
        lease_until=None,
        finished_at=func.now(),
    )
    .returning(*VIEW)
)


def _created(kind: str, *only: Any) -> Any:
    """The ids of the rows of `kind` the import read with it created (an undo's)."""
    rows = (
        select(_K.row_id)
        .where(_K.user_id == bindparam(OWNER), _K.import_id == _I.id, _K.kind == kind, *only)
        .correlate(Import.__table__)  # type: ignore[attr-defined]
    )
    return func.array(rows.scalar_subquery())


# The import with its top-level tasks, its lists and filters (what an undo removes), in one
# statement.
_UNDOING = owned(
    select(
        *VIEW,
        _created("task", _K.root.is_(True)).label("roots"),
        _created("list").label("lists"),
        _created("filter").label("filters"),
    ).where(_I.id == _IMPORT_ID),
    _I.user_id,
)
# Undone, with what the undo could not remove added to its warnings.
_UNDONE = (
    owned(update(Import), _I.user_id)
    .where(_I.id == _IMPORT_ID, _I.state == "done")
    .values(state="undone", warnings=_I.warnings.op("||")(bindparam("undo_warnings", type_=JSONB)))
    .returning(*VIEW)
)
# The keys of `source` among `keys` that an earlier import already created.
_KNOWN = owned(
    select(_K.key, _K.kind, _K.row_id).where(
        _K.source == bindparam("source", type_=Text),
        _K.key == func.any(bindparam("keys", type_=ARRAY(Text))),
    ),
    _K.user_id,
)
# An import's items of a kind (what this import created).
_MINE = owned(
    select(_K.key, _K.row_id, _K.root).where(
        _K.import_id == _IMPORT_ID, _K.kind == bindparam("kind", type_=Text)
    ),
    _K.user_id,
)
# Many items at once: one statement over arrays.
_ITEM_ROWS = (
    func.unnest(
        bindparam("keys", type_=ARRAY(Text)),
        bindparam("kinds", type_=ARRAY(Text)),
        bindparam("row_ids", type_=ARRAY(BigInteger)),
        bindparam("roots", type_=ARRAY(Boolean)),
    )
    .table_valued("key", "kind", "row_id", "root")
    .render_derived(name="items")
)
_RECORD_MANY = (
    pg_insert(ImportItem)
    .from_select(
        ["user_id", "import_id", "source", "key", "kind", "row_id", "root"],
        select(
            bindparam(OWNER, type_=Text),
            _IMPORT_ID,
            bindparam("source", type_=Text),
            _ITEM_ROWS.c.key,
            _ITEM_ROWS.c.kind,
            _ITEM_ROWS.c.row_id,
            _ITEM_ROWS.c.root,
        ),
    )
    .on_conflict_do_nothing(constraint="uq_import_items_user_id_source_key")
    .returning(_K.id)
)
_FORGET = owned(delete(ImportItem), _K.user_id).where(_K.import_id == _IMPORT_ID)


@dataclass(frozen=True)
class Known:
    """An item an earlier import created: its kind and row."""

    kind: str
    row_id: int


class ImportService(Scoped):
    def queue(
        self, source: str, data: bytes, file_name: str, time_zone: str | None, list_id: int | None
    ) -> Any:
        """A new import, `queued`, holding its file until a runner has written it; 409 when
        the caller has IMPORTS_PENDING_MAX not yet ended."""
        rows = self._write(
            _QUEUE,
            source=source,
            file=data,
            file_name=file_name,
            time_zone=time_zone,
            list_id=list_id,
            last=True,
        )
        if not rows:
            raise Conflict(PENDING_MESSAGE)
        return rows[0]

    def get(self, import_id: int) -> Any:
        row = self._read(_GET, import_id=import_id).first()
        if row is None:
            raise NotFound(IMPORT_NOT_FOUND)
        return row

    def page(self, before: int | None, limit: int) -> Sequence[Any]:
        """The caller's imports, newest first, below `before` (an id); `limit + 1` read."""
        before_id = before if before is not None else 2**63 - 1
        return self._read(_PAGE, before=before_id, limit=limit + 1).all()

    def known(self, source: str, keys: Iterable[str]) -> dict[str, Known]:
        """Which of `keys` an earlier import of `source` created."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        rows = self._read(_KNOWN, source=source, keys=wanted)
        return {row.key: Known(row.kind, int(row.row_id)) for row in rows}

    def held(self, import_id: int, runner: str) -> Any | None:
        """The import with its file, while `runner` holds its lease (else None)."""
        return self._read(_HELD_ONE, import_id=import_id, runner=runner).first()

    def progress(
        self,
        import_id: int,
        runner: str,
        *,
        done: int,
        total: int,
        counts: dict[str, int],
        warnings: list[dict[str, Any]],
        lossy: list[dict[str, Any]],
        lease_seconds: float,
    ) -> bool:
        """Record progress and renew the lease; False: the lease is no longer `runner`'s."""
        rows = self._write(
            _PROGRESS,
            import_id=import_id,
            runner=runner,
            done=done,
            total=total,
            counts=counts,
            warnings=warnings,
            lossy=lossy,
            lease=lease_seconds,
        )
        return bool(rows)

    def record_many(
        self, import_id: int, source: str, items: Sequence[tuple[str, str, int, bool]]
    ) -> int:
        """Key created rows (key, kind, row id, root) by where they came from, in one statement;
        how many it keyed (fewer: another import keyed the rest first)."""
        if not items:
            return 0
        keys, kinds, row_ids, roots = (list(column) for column in zip(*items, strict=True))
        return len(
            self._write(
                _RECORD_MANY,
                import_id=import_id,
                source=source,
                keys=keys,
                kinds=kinds,
                row_ids=row_ids,
                roots=roots,
            )
        )

    def created(self, import_id: int, kind: str) -> list[Any]:
        """The rows of `kind` this import created (key, row id, root)."""
        return self._read(_MINE, import_id=import_id, kind=kind).all()

    def finish(self, import_id: int, runner: str, state: str, error: str | None = None) -> Any:
        """`done` or `failed`, the file dropped; None: the lease is no longer `runner`'s."""
        rows = self._write(_FINISH, import_id=import_id, runner=runner, state=state, error=error)
        return rows[0] if rows else None

    def undoing(self, import_id: int) -> Any:
        """The import and the ids of its top-level tasks (`roots`), its lists and filters, in
        one read; else 404."""
        row = self._read(_UNDOING, import_id=import_id).first()
        if row is None:
            raise NotFound(IMPORT_NOT_FOUND)
        return row

    def forget(self, import_id: int) -> None:
        """Drop the keys of what `import_id` created (failed or undone: it may run again)."""
        self._write(_FORGET, import_id=import_id)

    def forget_ahead(self, import_id: int) -> None:
        """Forget a done import's items (the same file imports again), in the message of the
        next statement (the undo's delete of its tasks)."""
        self._ahead(_FORGET, import_id=import_id)

    def undone(self, import_id: int, warnings: list[dict[str, Any]]) -> Any:
        """Mark a done import undone, `warnings` (what the undo left) added to its own; the
        request's last statement. None: it was no longer `done`."""
        rows = self._write(_UNDONE, import_id=import_id, undo_warnings=warnings, last=True)
        return rows[0] if rows else None


# A runner's claim: the oldest queued import, or a running one whose lease ran out (its runner
# died), every user's. SKIP LOCKED: two runners never take the same one.
_CLAIM = text(
    """
    WITH next AS MATERIALIZED (
        SELECT id FROM imports
        WHERE (state = 'queued' OR (state = 'running' AND lease_until < now()))
          AND (CAST(:only AS BIGINT) IS NULL OR id = :only)
        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
    )
    UPDATE imports AS i
    SET state = 'running', lease_owner = :runner,
        lease_until = now() + make_interval(secs => :lease), attempts = i.attempts + 1
    FROM next WHERE i.id = next.id
    RETURNING i.id, i.user_id, i.attempts
    """
).bindparams(
    bindparam("runner", type_=Text),
    bindparam("lease", type_=Float),
    bindparam("only", type_=BigInteger),
)


@dataclass(frozen=True)
class Claimed:
    import_id: int
    user_id: str
    attempts: int


def claim(
    engine: Engine, runner: str, lease_seconds: float, only: int | None = None
) -> Claimed | None:
    """Take the next import to run (`only` that one) for `lease_seconds`, every user's."""
    with engine.begin() as conn:
        values = {"runner": runner, "lease": lease_seconds, "only": only}
        row = conn.execute(_CLAIM, values).first()
    if row is None:
        return None
    return Claimed(int(row.id), cast(str, row.user_id), int(row.attempts))
