"""Quick add (specs/api-contract.md, "Quick add"): a typed line read into a task for every door; the
grammar is `backend/quickadd/`, this looks up what it names in one read, only when there is
something to look up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Text,
    any_,
    bindparam,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from backend.db.scope import OWNER, Scoped, owned
from backend.errors import InvalidRequest, NotFound
from backend.models import TaskCreate
from backend.models.names import name_key
from backend.models.notification_settings import NotificationSettings
from backend.models.quick_add import QuickAddPreview, QuickAddRequest, QuickAddTask
from backend.models.references import Action
from backend.models.sharing import ListMember
from backend.models.task_list import TaskList
from backend.models.user import User
from backend.quickadd import (
    Directory,
    Names,
    NowOutOfRange,
    QuickAddError,
    Reading,
    names_in,
    read,
)
from backend.quickadd.sent import Offsets, offsets
from backend.recurrence import DEFAULT_TIME_ZONE, time_zone
from backend.services.statements.access import denied, may, role_in

_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_MEMBERS = ListMember.__table__  # type: ignore[attr-defined]
_USERS = User.__table__  # type: ignore[attr-defined]
_L, _M, _U = _LISTS.c, _MEMBERS.c, _USERS.c
_N = NotificationSettings.__table__.c  # type: ignore[attr-defined]
_KEYS = bindparam("list_keys", type_=ARRAY(Text))
_DEFAULT = bindparam("default_list", type_=BigInteger)
LIST_NOT_FOUND = "List not found"


_NONE_ID, _NONE_TEXT, _NONE_BOOL = null().cast(BigInteger), null().cast(Text), null().cast(Boolean)


def _row(kind: str, *values: Any, role: Any = _NONE_TEXT, writable: Any = _NONE_BOOL) -> Any:
    """One arm's columns: every arm of the look-up reads these, NULL where it has none."""
    named = zip(("list_id", "key", "user_id", "name", "email"), values, strict=True)
    columns = (*(value.label(name) for name, value in named), role.label("role"))
    return (literal(kind, Text).label("kind"), *columns, writable.label("writable"))


# The lists the line or the body names that the caller can read, with its role in each.
_NAMED = or_(_L.name_key == any_(_KEYS), _L.id == _DEFAULT)
_LIST_ROWS = select(
    *_row(
        "list",
        _L.id,
        _L.name_key,
        _L.user_id,
        _NONE_TEXT,
        _NONE_TEXT,
        role=role_in(_LISTS),
        writable=may(_LISTS, Action.TASK_WRITE),
    )
).where(_NAMED, may(_LISTS, Action.LIST_READ))
# Who may be assigned a task in those lists: each list's owner and members.
_OWNER_ROWS = (
    select(*_row("member", _L.id, _NONE_TEXT, _U.id, _U.name, _U.email))
    .select_from(_LISTS.join(_USERS, _U.id == _L.user_id))
    .where(_NAMED, may(_LISTS, Action.LIST_READ))
)
_MEMBER_ROWS = (
    select(*_row("member", _M.list_id, _NONE_TEXT, _U.id, _U.name, _U.email))
    .select_from(_MEMBERS.join(_USERS, _U.id == _M.member_id))
    .where(
        may(_MEMBERS, Action.LIST_READ),
        _M.list_id.in_(select(_L.id).where(_NAMED, may(_LISTS, Action.LIST_READ))),
    )
)
# The caller (a task in no list is assigned to its owner only), and its zone.
_ME = select(*_row("me", _NONE_ID, _NONE_TEXT, _U.id, _U.name, _U.email)).where(
    _U.id == bindparam(OWNER)
)
_ZONE = owned(
    select(*_row("zone", _NONE_ID, _N.time_zone, _NONE_TEXT, _NONE_TEXT, _NONE_TEXT)), _N.user_id
)


@dataclass(frozen=True)
class QuickAdd:
    """A line read: the preview REST and MCP show, and the task a quick add creates."""

    preview: QuickAddPreview
    task: TaskCreate


def handles(name: str | None, email: str | None) -> set[str]:
    """What `+handle` names a person by: a one-word name, their email's local part (casefolded)."""
    found = set()
    if name and len(name.split()) == 1:
        found.add(name.strip().casefold())
    if email and "@" in email:
        found.add(email.rsplit("@", 1)[0].casefold())
    return found


def _people(rows: Iterable[Any]) -> dict[str, str]:
    """Handle -> user id; a handle two people share names neither (it stays in the title)."""
    seen: dict[str, set[str]] = {}
    for row in rows:
        for handle in handles(row.name, row.email):
            seen.setdefault(handle, set()).add(row.user_id)
    return {handle: next(iter(ids)) for handle, ids in seen.items() if len(ids) == 1}


class QuickAddService(Scoped):
    def read(self, body: QuickAddRequest) -> QuickAdd:
        """The task `body.text` makes for the caller (422: only tokens, or an invalid title)."""
        where = offsets(body.sent, body.text)  # tokens' offsets are of the text as sent
        ignore = where.normalized(set(body.ignore))
        names = names_in(body.text, ignore)
        rows = self._look_up(names, body)
        zone = str(body.time_zone) if body.time_zone is not None else None
        if zone is None:
            zone = next((r.key for r in rows if r.kind == "zone" and r.key), DEFAULT_TIME_ZONE)
        directory = self._directory(names, body.list_id, rows)
        now = body.now or datetime.now(UTC)
        try:
            reading = read(
                body.text,
                now=now,
                zone=time_zone(zone),
                directory=directory,
                default_list=body.list_id,
                ignore=ignore,
            )
        except QuickAddError as error:
            raise InvalidRequest.at("body.text", str(error)) from None
        except NowOutOfRange as error:
            raise InvalidRequest.at("body.now", str(error)) from None
        if reading.list_id is not None and reading.list_id == body.list_id:
            self._check_default(body.list_id, rows)
        task = _task(reading, zone)
        return QuickAdd(_preview(reading, task, zone, where), task)

    def _look_up(self, names: Names, body: QuickAddRequest) -> list[Any]:
        """One read of what the line names, or none when it names nothing to look up."""
        arms: list[Any] = []
        if names.lists or body.list_id is not None:
            arms.append(_LIST_ROWS)
        if names.people:
            arms.extend((_OWNER_ROWS, _MEMBER_ROWS, _ME))
        if body.time_zone is None:
            arms.append(_ZONE)
        if not arms:
            return []
        keys = sorted({name_key(name) for name in names.lists})
        # It commits with the caller's entry: no transaction is held while the line is read.
        rows = self._read(union_all(*arms), last=True, list_keys=keys, default_list=body.list_id)
        self._next_transaction()
        return list(rows)

    def _directory(self, names: Names, default: int | None, rows: list[Any]) -> Directory:
        me, lists = self.user_id, dict[str, int]()
        for name in names.lists:
            key = name_key(name)
            writable = [r for r in rows if r.kind == "list" and r.key == key and r.writable]
            if writable:  # the caller's own list first, then the oldest
                lists[name] = min(writable, key=lambda r: (r.user_id != me, r.list_id)).list_id
        members: dict[int | None, dict[str, str]] = {
            None: _people(r for r in rows if r.kind == "me")
        }
        for list_id in {*lists.values(), *([default] if default is not None else [])}:
            members[list_id] = _people(
                r for r in rows if r.kind == "member" and r.list_id == list_id
            )
        return Directory(lists=lists, members=members)

    @staticmethod
    def _check_default(list_id: int, rows: list[Any]) -> None:
        missing = NotFound.at("body.list_id", LIST_NOT_FOUND)
        role = next((r.role for r in rows if r.kind == "list" and r.list_id == list_id), None)
        if role is None:
            raise missing
        refused = denied(role, Action.TASK_WRITE, missing)
        if refused is not None:
            raise refused


def _task(reading: Reading, zone: str) -> TaskCreate:
    fields: dict[str, Any] = {
        "title": reading.title,
        "due_date": reading.due,
        "time_zone": zone,
        "tags": list(reading.tags),
        "list_id": reading.list_id,
        "recurrence": reading.recurrence,
        "assignees": list(reading.assignees),
    }
    if reading.priority is not None:
        fields["priority"] = reading.priority
    try:
        return TaskCreate.model_validate(fields)
    except ValidationError as error:
        # A title over 200 characters, a tag over 32: the text's to shorten.
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest.at("body.text", f"{where}: {first['msg']}") from None


def _preview(reading: Reading, task: TaskCreate, zone: str, where: Offsets) -> QuickAddPreview:
    """What the text makes, as the create will store it, and the tokens it was read from (their
    offsets and text of the text as sent)."""
    fields = task.model_dump(include=set(QuickAddTask.model_fields) - {"time_zone"})
    tokens = []
    for t in reading.tokens:
        start, end = where.span(t.start, t.end)
        value = t.value.astimezone(UTC) if isinstance(t.value, datetime) else t.value
        tokens.append(
            {**vars(t), "start": start, "end": end, "text": where.sent[start:end], "value": value}
        )
    return QuickAddPreview.model_validate({"task": {**fields, "time_zone": zone}, "tokens": tokens})
