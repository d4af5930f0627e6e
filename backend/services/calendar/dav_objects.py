"""A collection's CalDAV objects (issue 62; specs/caldav.md): its tasks with their kept
objects (backend/models/dav_object.py), read through the access relation, and the kept object
written beside a task's write.

A collection is a list the caller may read (`list_id`) or the caller's own tasks in no list
(None). Every read is one statement: the tasks, each with its kept object (a lateral read of
the child, through `may` as the child's own statements read it), the UID its parent is
served with, and whether its object is not served (`shadowed`: a restore, or a move, brought
it where another object held its name or UID: migration 0069, `task_dav_objects_serve`).

A write by href takes the change locks of the collection's space ahead of anything it reads or
locks, as REST's writes do: a create then checks in its own message that the name and the UID
are still free (`claim`; the unique keys back it), an update keeps the object only at the
version its write names (`keep_ahead`), and no two writers of one object wait for each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from backend.db.scope import Bound
from backend.errors import Taken
from backend.models import TaskRow
from backend.services.calendar.dav_statements import (
    ALL,
    BY_NAME,
    CHANGED,
    CLAIM,
    CLAIM_NO_LIST,
    DELETE_NAMED,
    KEEP,
    KEEP_AT_VERSION,
    KEEP_FROM_WRITE,
    KEEP_NAMED,
    KEEP_SUCCEEDED,
    KEEP_SUCCEEDING,
    LISTED,
    LOCK_LIST,
    LOOKED,
    LOOKED_ALL,
    LOOKUP,
    LOOKUP_NO_LIST,
    NAME_PLAIN,
    NAME_TASK,
    UNSERVE_AT_VERSION,
    VOUCH,
    collection_values,
    update_at_version,
    update_named,
)
from backend.services.calendar.dav_tags import WRITTEN_TAG
from backend.services.history.changes import HOLD
from backend.services.statements.rules import Rule, fires
from backend.services.tasks.task_bulk import LOCK_TASKS
from backend.services.tasks.task_sending import TaskSending, Then, decoded

# What an update by href that neither places the task nor touches a rule may fire (the plain
# PUT's values, `object_writes._plain`): its completion down its subtree (their counts, its
# reminders), and a member's reminders kept its own.
PLAIN_UPDATE_RULES = (
    Rule.COMPLETE_SUBTASKS,
    Rule.SUBTASK_COUNTS,
    Rule.REMINDERS,
    Rule.PRIVATE_REMINDERS,
)


class DavObjectService(TaskSending):
    """The caller's view of one collection's objects, and the kept object's write."""

    def lookup(self, sought: Sought, *, commit: bool = True) -> tuple[Any | None, Sequence[Any]]:
        """What a write by href needs, in one statement: the list as the caller sees it (as
        `listed`; None: one it cannot read; for no list, a stand-in with the owner's role) and
        the tasks that may be served under the name (`named`'s), that hold the UID or the
        parent's, or whose derived name is the parent's (`Sought`). In a write's first
        message it commits with the caller's entry (no lock held while the caller decides:
        the write then names the version it read); not `commit`, it opens the write's
        transaction (the entry's change lock held until its COMMIT)."""
        statement, values = _looking(sought)
        return _seen(sought.list_id, self._read(statement, last=commit, **values))

    def looked(self, list_id: int | None, refused: Taken | None) -> Looked | None:
        """What the message a `name_plain` or a `claim` `refused` read under its change locks
        (its reason's further lines: `dav_statements.LOOKED`): `lookup`'s answer, as `lookup`
        gives it, and with `every`, `all`'s rows (each row as the driver types it:
        `decoded`); None: nothing read."""
        read = refused.read if refused else ()
        if not read:
            return None
        columns = (LOOKUP_NO_LIST if list_id is None else LOOKUP).selected_columns
        # Each read's order (the JSON array promises none): `lookup`'s, the newest kept
        # object first; `all`'s, by id.
        rows = sorted(read[0], key=lambda row: -(row["kept_id"] or 0))
        seen, found = _seen(list_id, [decoded(columns, row) for row in rows])
        every = None
        if len(read) > 1:
            columns = ALL[list_id is None].selected_columns
            every = [decoded(columns, row) for row in sorted(read[1], key=lambda row: row["id"])]
        return Looked(seen, found, every)

    def claim(self, sought: Sought) -> None:
        """Ahead of a create in the collection: its space's change locks (the caller's and the
        list owner's, before any row lock), then, seeing every write committed under them,
        the request refused (`Taken`, `task_api_refuse`: no error in the server's log, nothing
        written) when an object of the collection holds the name or the UID. Refused, the
        message reads `lookup`'s answer too (`looked`): a create that lost its name to a
        concurrent one is that one's update, in the next message."""
        list_id = sought.list_id
        self.lock(LOCK_LIST if list_id is not None else None, **collection_values(list_id))
        _, values = _looking(sought)
        self._ahead(CLAIM_NO_LIST if list_id is None else CLAIM, **values)
        self._ahead(LOOKED[list_id is None], **values)

    def lock_task(self, task_id: int) -> None:
        """Ahead of a write of the task: the change locks of the caller's space and the
        task's, before any row lock (an owner and an editor writing one object cannot
        deadlock)."""
        self.lock(LOCK_TASKS, task_ids=[task_id])

    def lock(self, statement: Any, **values: Any) -> None:
        """`statement`'s change locks ahead of the next statement: instead of the entry's
        (the caller's) where the entry is still to be sent; with it, where the request's
        transaction holds the caller's already (a locking retry). None: the caller's alone
        (the entry's)."""
        if statement is None:
            return
        if self._send.entry is not None:
            self._lock_spaces(statement, first=False, **values)
        else:
            self._ahead(statement, **values)

    def begin_write(self) -> None:
        """The write after `lookup`: a further transaction of the request where the lookup
        committed the first (its entry uncounted)."""
        self._next_transaction()

    def keep_ahead(self, task_id: int, version: int, uid: str, name: str, body: str) -> None:
        """Keep `body` as the task's object in the message of the task's write, ahead of it,
        only while the task is still `version` (the write names it too: a stale write keeps
        nothing) and the caller may write it."""
        self._ahead(
            KEEP_AT_VERSION,
            dav_task=task_id,
            dav_version=version,
            dav_uid=uid,
            dav_name=name,
            dav_body=body,
        )

    def vouch(
        self,
        list_id: int | None,
        name: str,
        task_id: int,
        tag: str,
        uid: str | None = None,
        uid_task: int = 0,
    ) -> None:
        """Ahead of an update by href whose `If-Match` names one tag, after its change locks:
        the request refused (`TA412`, nothing written) unless the object served under `name`
        (a kept object's, else the task `task_id` a derived name names) is one the caller
        may write, with the tag `tag` now, holding `uid` if given (a kept object's, else the
        derived UID of `uid_task`: a PUT's; a DELETE names none). The reason: "tag" when
        that object is there, writable, with another tag (the `412` a lookup would answer
        too); "look" otherwise (the request is looked up, to answer as a lookup does: a
        missing object or list, a role, a UID)."""
        uids = {} if uid is None else {"dav_uid": uid, "dav_uid_task": uid_task}
        self._ahead(
            VOUCH[list_id is None, uid is not None],
            dav_name=name,
            dav_task=task_id,
            dav_tag=tag,
            **uids,
            **collection_values(list_id),
        )

    def name_task(self, list_id: int | None, name: str, task_id: int) -> None:
        """Ahead of a write of the object served under `name` that names no version (a
        DELETE without If-Match): the collection's change locks (the caller's and the list
        owner's, whose space holds its tasks), then that object's task named to the write
        (`dav_statements.NAMED_TASK`), or the request refused (`TA412`, reason "look",
        nothing written) where no object the caller may write is served there."""
        self.lock(LOCK_LIST if list_id is not None else None, **collection_values(list_id))
        statement = NAME_TASK[list_id is None]
        self._ahead(statement, dav_name=name, dav_task=task_id, **collection_values(list_id))

    def name_plain(
        self,
        list_id: int | None,
        name: str,
        task_id: int,
        uid: str,
        uid_task: int,
        zone: str,
        *,
        every: bool = False,
    ) -> None:
        """Ahead of an update by href that names no version and assumes its task has no rule,
        no parent and the time zone `zone` (a PUT with no precondition): the collection's
        change locks, as `name_task`'s, then the task served under `name` named to the write
        (`dav_statements.NAMED_TASK`) where it is one the caller may write, holding `uid`
        (a kept object's, else the derived UID of `uid_task`), with no rule, no parent and
        that zone; else the request refused (`TA412`, nothing written): the reason "free"
        where nothing is served under `name` (and it is no derived name: the PUT may create
        it, its claim then says), "look" otherwise. Refused, the message reads `lookup`'s
        answer too, and with `every`, `all`'s (a completed copy's occurrence is found among
        them): `looked`."""
        self.lock(LOCK_LIST if list_id is not None else None, **collection_values(list_id))
        # Where the guess is refused, the lookup that answers the PUT instead comes back in
        # this message, in the refusal (read under the change locks: run only then).
        _, values = _looking(Sought(list_id, name, task_id, uid))
        self._ahead(NAME_PLAIN[list_id is None], **values, dav_uid_task=uid_task, dav_zone=zone)
        self._ahead(LOOKED[list_id is None], **values)
        if every:
            self._ahead(LOOKED_ALL[list_id is None], **collection_values(list_id))

    def keep_named(self, uid: str, name: str, body: str) -> None:
        """Keep `body` as the object of the task a statement ahead named (`name_plain`), in
        the message of its write, ahead of it, where the caller may write it."""
        self._ahead(KEEP_NAMED, dav_uid=uid, dav_name=name, dav_body=body)

    @fires(*PLAIN_UPDATE_RULES)
    def write_named(self, values: dict[str, Any]) -> TaskRow | None:
        """`values` written over the task a statement ahead named (`name_plain`), committing
        the request in this message; None: no such task the caller may write."""
        rows = self._write(update_named(values), last=True)
        return rows[0] if rows else None

    @fires(*PLAIN_UPDATE_RULES)
    def write_at_version(
        self, task_id: int, version: int, values: dict[str, Any]
    ) -> TaskRow | None:
        """`values` written over the task at `version` (a tag vouched for it ahead: `vouch`),
        committing the request in this message; None: not that version, or not writable."""
        rows = self._write(
            update_at_version(values), task_id=task_id, dav_version=version, last=True
        )
        return rows[0] if rows else None

    @fires(Rule.SUBTREE_CASCADE, Rule.SUBTASK_COUNTS)
    def delete_named(self) -> str | None:
        """The task a statement ahead named (`name_task`) into the trash, its subtree with it,
        committing the request; the title it had (None: nothing deleted)."""
        rows = self._write(DELETE_NAMED, last=True)
        return str(rows[0].title) if rows else None

    def tag_written(self, body: str) -> None:
        """The next write's rows answer, as `dav_tag`, the tag of `body` kept fresh on each
        (`dav_tags.WRITTEN_TAG`: the database's, in the write's message)."""
        self._send.beside(WRITTEN_TAG, {"dav_body": body}, "dav_tag")

    def can_finish(self) -> bool:
        """Whether the next write commits the request in its own message (no transaction of
        ours open, nothing held for after it)."""
        return self._send.can_finish

    def keep_with_create(self, uid: str, name: str, body: str) -> Then:
        """Keep `body` as the object of the task a create writes, in the create's statement
        (from its row, `w`)."""
        values = {"dav_uid": uid, "dav_name": name, "dav_body": body}
        return Then(Bound(KEEP_FROM_WRITE, values), Bound(KEEP_FROM_WRITE, values))

    def all(self, list_id: int | None) -> Sequence[Any]:
        """Every task of the collection the caller may read, with its kept object."""
        return self._read(ALL[list_id is None], **collection_values(list_id)).all()

    def listed(
        self, list_id: int, *, position: bool = False, depth: int = 1
    ) -> tuple[Any | None, Sequence[Any]]:
        """A list's collection in one statement: the list as the caller sees it (`list_id`,
        `list_name`, `list_color`, `list_role`; None: one it cannot read) and, at Depth 1, its
        tasks with their objects; with `position`, the list's position for its sync
        token (`position`, read behind the feed's hold, sent ahead in the same message)."""
        if position:
            self._ahead(HOLD)
        rows = self._read(LISTED[position, depth], dav_list=list_id).all()
        if not rows:
            return None, []
        return rows[0], [row for row in rows if depth and row.id is not None]

    def named(self, list_id: int | None, name: str, task_id: int) -> Sequence[Any]:
        """The tasks that may be served under `name`, in one statement: those whose kept
        object has it (newest first), and the task `task_id` (a derived name's; 0: none)."""
        return self._read(
            BY_NAME[list_id is None], dav_name=name, dav_task=task_id, **collection_values(list_id)
        ).all()

    def keep(self, task_id: int, uid: str, name: str, body: str) -> None:
        """Keep `body` as the task's object (replacing its previous one), in the message that
        commits the task's write: only on a task the caller may write. No transaction open
        (nothing else written: a completed copy of an occurrence completed already, found
        among rows read in a refused message), it is the write, committing."""
        values = {"dav_task": task_id, "dav_uid": uid, "dav_name": name, "dav_body": body}
        if self._send.can_finish:
            self._write(KEEP, last=True, **values)
        else:
            self._at_commit(KEEP, **values)

    def give_up_ahead(self, task_id: int, version: int, *, within: bool = False) -> None:
        """Ahead of the write completing the occurrence `task_id` at `version` (the write names
        it too), under its change locks: its object no longer served where the task is still
        that version and the caller may write it, so that the name and the UID are free for
        the next occurrence the completion inserts (`hand_on`, in the same message). The
        completed one is served under its derived name, or, `within`, inside the series'
        object alone (the client sent its completion there)."""
        self._ahead(UNSERVE_AT_VERSION[within], dav_task=task_id, dav_version=version)

    def hand_on(self, task_id: int, uid: str, name: str, body: str) -> Then:
        """`body` kept as the object of the next occurrence completing `task_id` inserts,
        after that insert (`recurrence_forms.apply`'s `after`): in the completion's statement,
        from the inserted row (`SUCCEEDED`), else with the COMMIT, from the stored one. The
        series' object, whose name and UID a statement ahead gave up (`give_up_ahead`, or
        a completed copy's object kept on the occurrence), goes on with its series in the
        completion's message."""
        values = {"dav_uid": uid, "dav_name": name, "dav_body": body, "dav_task": task_id}
        return Then(Bound(KEEP_SUCCEEDED, values), Bound(KEEP_SUCCEEDING, values))

    def changed(self, list_id: int | None, task_ids: list[int], names: list[str]) -> Sequence[Any]:
        """A sync's changed members in one statement: the tasks `task_ids` still in the
        collection, and those served under one of `names` (a name a gone object had may be
        another's now)."""
        statement = CHANGED[list_id is None]
        values = {"dav_tasks": task_ids, "dav_names": names, **collection_values(list_id)}
        return self._read(statement, **values).all()


@dataclass(frozen=True)
class Sought:
    """What a write by href looks up (`lookup`): its collection (None: the caller's tasks in
    no list), the object's name, the task a derived name names (0: none), the UID the body
    holds, and the parent its `RELATED-TO` names: a UID, and the task a derived one names."""

    list_id: int | None
    name: str
    task_id: int
    uid: str
    parent_uid: str | None = None
    parent_task: int = 0


@dataclass(frozen=True)
class Looked:
    """What a refused `name_plain` or `claim` read in its message
    (`DavObjectService.looked`): the list as `lookup` sees it, `lookup`'s tasks, and `all`'s
    where asked (else None)."""

    seen: Any | None
    rows: Sequence[Any]
    every: Sequence[Any] | None


def _looking(sought: Sought) -> tuple[Any, dict[str, Any]]:
    """`lookup`'s statement and values."""
    statement = LOOKUP_NO_LIST if sought.list_id is None else LOOKUP
    values = collection_values(sought.list_id) | {
        "dav_name": sought.name,
        "dav_task": sought.task_id,
        "dav_uid": sought.uid,
        "dav_parent_uid": sought.parent_uid,
        "dav_parent_task": sought.parent_task,
    }
    return statement, values


def _seen(list_id: int | None, rows: Sequence[Any]) -> tuple[Any | None, Sequence[Any]]:
    """`lookup`'s rows as it answers: the list as the caller sees it (None: one it cannot
    read) and the tasks."""
    if list_id is None:
        return _NO_LIST_SEEN, rows
    if not rows:
        return None, []
    return rows[0], [row for row in rows if row.id is not None]


# The tasks in no list are the caller's own: it owns that collection.
_NO_LIST_SEEN = SimpleNamespace(
    list_id_seen=None, list_name=None, list_color=None, list_role="owner"
)
# The list's position for its sync token (`sync-token`, `getctag`), beside the list.
