"""A task's child's statements and refusals, built once from its declaration
(backend/models/task_children.py). A child's row lives in its task's space and list, so every
statement reaches it through the access relation with the child's declared actions; one statement a
request, and a write that matched nothing reads why in the contract's order."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, NoReturn

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Scoped
from backend.errors import Conflict, Forbidden, LimitReached, NotFound
from backend.models import Task
from backend.models.task_children import TaskChild, with_article
from backend.services.statements.access import (
    least_role,
    may,
    may_shared,
    members_may,
    require,
    role_in,
)

TASK_NOT_FOUND = "Task not found"

_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
# Named unlike any column (an INSERT or UPDATE takes a column's name as its value's).
_TASK_ID = bindparam("task", type_=BigInteger)
_ROW_ID = bindparam("child", type_=BigInteger)
_AFTER = bindparam("after", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)
# A row's given creation time (`TaskChildService.add(created_at=...)`: an import's).
CREATED_AT = "given_created_at"
# Columns no answer shows: the space and the copy of the task's list.
_HIDDEN = frozenset({"user_id", "list_id"})


def _value(name: str) -> str:
    """The bind a written field's value is sent as."""
    return f"new_{name}"


def _sent(name: str) -> str:
    """The bind saying whether a change sent the field (one not sent keeps its value)."""
    return f"sent_{name}"


class ChildRows:
    """The statements of `child` (its `fields` written by a client) and their errors."""

    def __init__(self, child: TaskChild) -> None:
        self.child = child
        table: Any = child.table.__table__  # type: ignore[attr-defined]
        c = table.c
        read, write = child.action(writes=False), child.action(writes=True)
        self.view = tuple(column for column in c if column.name not in _HIDDEN)
        values = {name: bindparam(_value(name), type_=c[name].type) for name in child.fields}

        def with_task(rows: Any) -> Any:
            """The task with `rows` (a lateral of its rows): no row is an unseen task, a row with
            NULL `id` no row."""
            return (
                select(_T.id.label("found_task_id"), *(rows.c[col.name] for col in self.view))
                .select_from(_TASKS.outerjoin(rows, true()))
                .where(_T.id == _TASK_ID, may(_TASKS, read))
            )

        page = (
            select(*self.view)
            .where(c.task_id == _T.id, c.id > _AFTER, may(table, read))
            .order_by(c.id)
            .limit(_LIMIT)
            .lateral("c")
        )
        self.page = with_task(page).order_by(page.c.id)
        self.one = with_task(
            select(*self.view)
            .where(c.id == _ROW_ID, c.task_id == _T.id, may(table, read))
            .lateral("c")
        )
        # A new row only where the caller may write it, under the cap (else why is read afterwards).
        kept = select(func.count()).where(c.task_id == _TASK_ID, may(table, write))
        columns = ["user_id", "task_id", "list_id", *child.fields]
        chosen: list[Any] = [_T.user_id, _T.id, _T.list_id, *values.values()]
        if child.author:
            columns.append(child.author)
            chosen.append(bindparam(OWNER))
        room = [kept.scalar_subquery() < child.per_task] if child.per_task else []

        def creating(columns: list[str], chosen: list[Any]) -> Any:
            return (
                pg_insert(table)
                .from_select(
                    columns, select(*chosen).where(_T.id == _TASK_ID, may(_TASKS, write), *room)
                )
                .returning(*self.view)
            )

        self.create = creating(columns, chosen)
        # The same insert with the row's time given (an import keeps a comment's time), its
        # `updated_at` too: a row as it was written then (None: the child has no such time).
        self.create_dated: Any = None
        if "created_at" in c:
            stamped = [name for name in ("created_at", "updated_at") if name in c]
            dated = bindparam(CREATED_AT, type_=c.created_at.type)
            self.create_dated = creating([*columns, *stamped], [*chosen, *(dated for _ in stamped)])
        this = (c.id == _ROW_ID, c.task_id == _TASK_ID, may(table, write))
        changed: dict[str, Any] = {
            name: case((bindparam(_sent(name), type_=Boolean), value), else_=c[name])
            for name, value in values.items()
        }
        if "updated_at" in c:
            changed["updated_at"] = func.now()
        # With an author, only the author changes a row (while it may still write).
        own = [c[child.author] == bindparam(OWNER)] if child.author else []
        self.edit = update(table).where(*this, *own).values(changed).returning(*self.view)
        # With an author: the author's own row, the space owner's, or any for a member who may
        # `delete_any`; else any row the caller may write.
        anyones: list[Any] = []
        if child.author and child.delete_any is not write:
            # An owner-only `delete_any` (no member role has it) adds no member arm: the space
            # owner's clause is it (an empty role list compiled to an unsendable `IN ()`).
            others = (
                [may_shared(table, child.delete_any)]
                if child.delete_any and members_may(child.delete_any)
                else []
            )
            anyones = [or_(own[0], c.user_id == bindparam(OWNER), *others)]
        self.delete = delete(table).where(*this, *anyones).returning(*self.view)

        # Why a write matched nothing: the role (no row: unseen), the count, the row and its author.
        role = role_in(_TASKS)
        self.create_refusal = select(
            role.label("role"),
            select(func.count())
            .where(c.task_id == _T.id, may(table, read))
            .scalar_subquery()
            .label("count"),
        ).where(_T.id == _TASK_ID, may(_TASKS, read))
        author = c[child.author] if child.author else c.user_id
        named = (
            select(c.id, author.label("author"))
            .where(c.id == _ROW_ID, c.task_id == _T.id, may(table, read))
            .lateral("named")
        )
        self.write_refusal = (
            select(role.label("role"), named.c.id.label("found"), named.c.author)
            .select_from(_TASKS.outerjoin(named, true()))
            .where(_T.id == _TASK_ID, may(_TASKS, read))
        )

    def not_found(self) -> NotFound:
        return NotFound(f"{self.child.noun.capitalize()} not found")

    def not_the_author(self, *, deleting: bool) -> Forbidden:
        """A member who may write the child, but not another's row (its author, `delete_any`)."""
        a_noun = self.child.a_noun
        if deleting and self.child.delete_any:
            role = with_article(least_role(self.child.delete_any))
            return Forbidden(f"Only {a_noun}'s author, or {role} of the list, may delete it")
        return Forbidden(f"Only {a_noun}'s author may {'delete' if deleting else 'edit'} it")


class TaskChildService(Scoped):
    """A task's child's whole service, `rows` built from its declaration."""

    rows: ClassVar[ChildRows]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        SERVICES[cls.rows.child.name] = cls

    def page(self, task_id: int, limit: int, after: int | None) -> tuple[list[Any], bool]:
        """A page of the task's rows after `after`, oldest first; whether more follow."""
        rows = self._read(self.rows.page, task=task_id, after=after or 0, limit=limit + 1)
        if not rows:
            raise NotFound(TASK_NOT_FOUND)
        found = sorted((row for row in rows if row.id is not None), key=lambda row: row.id)
        return found[:limit], len(found) > limit

    def get(self, task_id: int, row_id: int) -> Any:
        """One row of the task (an unseen task is the 404 of a missing one)."""
        found = self._read(self.rows.one, task=task_id, child=row_id).first()
        if found is None:
            raise NotFound(TASK_NOT_FOUND)
        if found.id is None:
            raise self.rows.not_found()
        return found

    def add(
        self, task_id: int, fields: Mapping[str, Any], created_at: datetime | None = None
    ) -> Any:
        """Add a row to the task (the child's `write`, or the task's owner); `created_at`: the
        time it was written where it comes from (an import's; else now), a statement choice."""
        values = {_value(name): value for name, value in fields.items()}
        statement = self.rows.create
        if created_at is not None:
            if self.rows.create_dated is None:
                raise LookupError(f"{self.rows.child.name} has no created_at")
            statement, values[CREATED_AT] = self.rows.create_dated, created_at
        rows = self._write(statement, task=task_id, last=True, **values)
        if rows:
            return rows[0]
        child = self.rows.child
        found = self._read(self.rows.create_refusal, task=task_id).first()
        if found is None:
            raise NotFound(TASK_NOT_FOUND)
        role, count = tuple(found)
        require(role, child.action(writes=True), NotFound(TASK_NOT_FOUND))
        if child.per_task is not None and count >= child.per_task:
            raise LimitReached(
                f"This task has {count} {child.path or child.noun + 's'}, "
                f"the most there can be ({child.per_task})"
            )
        raise Conflict(f"The task changed while the {child.noun} was being added; retry")

    def change(self, task_id: int, row_id: int, fields: Mapping[str, Any]) -> Any:
        """Change a row's `fields` given, the others kept (with an author: the caller's own row)."""
        declared = self.rows.child.fields
        values = {_value(name): fields.get(name) for name in declared}
        values |= {_sent(name): name in fields for name in declared}
        rows = self._write(self.rows.edit, task=task_id, child=row_id, last=True, **values)
        if rows:
            return rows[0]
        self._refuse(task_id, row_id, deleting=False)

    def remove(self, task_id: int, row_id: int) -> Any:
        """Delete a row (with an author: one's own, any for a moderator); return it as it was."""
        rows = self._write(self.rows.delete, task=task_id, child=row_id, last=True)
        if rows:
            return rows[0]
        self._refuse(task_id, row_id, deleting=True)

    def _refuse(self, task_id: int, row_id: int, *, deleting: bool) -> NoReturn:
        """A write matched nothing: say why, membership before role before authorship."""
        child = self.rows.child
        found = self._read(self.rows.write_refusal, task=task_id, child=row_id).first()
        if found is None:
            raise NotFound(TASK_NOT_FOUND)
        role, row_found, author = tuple(found)
        require(role, child.action(writes=True), NotFound(TASK_NOT_FOUND))
        if row_found is None:
            raise self.rows.not_found()
        if child.author and author != self.user_id:
            if not deleting or child.delete_any is None:
                raise self.rows.not_the_author(deleting=deleting)
            missing = NotFound(TASK_NOT_FOUND)
            forbidden = str(self.rows.not_the_author(deleting=True))
            require(role, child.delete_any, missing, forbidden=forbidden)
        raise Conflict(f"The {child.noun} changed while it was being written; retry")


SERVICES: dict[str, type[TaskChildService]] = {}
