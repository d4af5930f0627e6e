"""The rules the database keeps (triggers, cascading keys), declared once where a reader of the
services looks, each with why it lives in SQL: `CHEAPER` (the request stays one message) or `SAFER`
(every writer gets it, psql too). A method whose write fires one says so with `@fires`, which only
records (a request walks no extra function); tests/test_rules.py checks the names against the
database and what requests fire."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from backend.models.task_children import CHILDREN

F = TypeVar("F", bound=Callable[..., object])
# The children whose rows record events (`TaskChild.events`).
_RECORDING = tuple(child for child in CHILDREN if child.events)


class Why(StrEnum):
    CHEAPER = "cheaper"
    SAFER = "safer"


@dataclass(frozen=True, repr=False)
class DatabaseRule:
    name: str
    table: str
    does: str
    why: tuple[Why, ...]
    because: str
    triggers: tuple[str, ...] = ()
    cascades: tuple[str, ...] = ()  # foreign keys whose ON DELETE CASCADE is the rule
    every_write: bool = False  # fires for every write of its table: not named per method
    # How specs/statements.md's table names triggers made per registered child.
    shown: tuple[str, str] | None = None

    def __repr__(self) -> str:
        return f"<rule {self.name}>"


class Rule:
    """Every rule a service's write may fire."""

    PLACE = DatabaseRule(
        "place",
        "tasks",
        "a new task without a position gets one: first at the top level, last under a parent",
        (Why.SAFER,),
        "computed under the caller's change lock in the inserting statement, so two writers "
        "never take the same place, for every inserter (create, bulk, a series' successor)",
        triggers=("tasks_place",),
    )
    COMPLETE_SUBTASKS = DatabaseRule(
        "complete subtasks",
        "tasks",
        "completing a task completes its open subtasks, all the way down (their versions change)",
        (Why.CHEAPER, Why.SAFER),
        "no read of the subtree before the write; every completing writer gets it",
        triggers=("tasks_subtasks_complete",),
    )
    REOPEN_ANCESTORS = DatabaseRule(
        "reopen ancestors",
        "tasks",
        "an open task under a completed parent (created, reopened or moved there) reopens its "
        "completed ancestors (their versions change)",
        (Why.CHEAPER, Why.SAFER),
        "no read of the ancestors before the write; every writer, a move's subtree included",
        triggers=("tasks_reopen_parent_on_insert", "tasks_reopen_parent_on_update"),
    )
    SUCCESSOR_SUBTASKS = DatabaseRule(
        "successor subtasks",
        "tasks",
        "a recurring task's next occurrence gets a pending copy of its predecessor's subtasks",
        (Why.CHEAPER,),
        "the subtree is copied inside the successor's insert, never read into Python and sent back",
        triggers=("tasks_successor_subtasks",),
    )
    SUBTASK_COUNTS = DatabaseRule(
        "subtask counts",
        "tasks",
        "a subtask's insert, delete, move or completion change updates its parent's "
        "`subtask_count`/`open_subtask_count` (no version bump, no event)",
        (Why.CHEAPER,),
        "a read pays a column instead of two subqueries (migration 0024); the `RETURNING` of a "
        "completion sees the count from before (`TASK_VIEW` answers 0 open)",
        triggers=(
            "tasks_count_subtasks_on_insert",
            "tasks_count_subtasks_on_update",
            "tasks_count_subtasks_on_delete",
        ),
    )
    REMINDERS = DatabaseRule(
        "reminders",
        "tasks, task_member_reminders",
        "a change of `due_date`, `reminders` or `completed` reschedules the task's unsent "
        "reminders in `task_reminders`, each user's (a member's own: at the commit, and when "
        "the task's due date or completion changes)",
        (Why.SAFER,),
        "the worker's schedule follows every write of a task, a successor's and its copies' too",
        triggers=(
            "tasks_schedule_reminders_on_insert",
            "tasks_schedule_reminders_on_update",
            "tasks_schedule_member_reminders",
            "task_member_reminders_schedule",
            "task_member_reminders_schedule_on_update",
        ),
    )
    PRIVATE_REMINDERS = DatabaseRule(
        "private reminders",
        "tasks",
        "a member's write of a shared task's `reminders` writes its own row of "
        "`task_member_reminders` (the task's stay its owner's); a series' next occurrence "
        "carries each member's; a task that leaves a list drops the reminders of those not in "
        "the list it is in now",
        (Why.SAFER,),
        "every writer (create, PATCH, PUT, bulk, MCP, a successor) keeps each user's reminders "
        "its own, with no read of the caller's role first",
        triggers=(
            "tasks_keep_member_reminders",
            "tasks_successor_member_reminders",
            "tasks_move_member_reminders",
        ),
    )
    FORGET_REMINDERS = DatabaseRule(
        "a removed member's reminders go",
        "list_members",
        "a member removed from a list (leaving, removed, its account deleted) loses its "
        "reminders on that list's tasks, at the commit, unless it became the list's owner",
        (Why.SAFER,),
        "every removal path drops them in the same transaction",
        triggers=("list_members_forget_reminders",),
    )
    EXCHANGE_REMINDERS = DatabaseRule(
        "a new owner's reminders",
        "task_lists",
        "a list changing owner (a transfer, an account's handover) makes the old owner's "
        "reminders on its tasks its member row and the new owner's the tasks' own (no version "
        "change, no event)",
        (Why.SAFER,),
        "before the list's rows follow the new owner, so no event of the move holds the "
        "other's reminders",
        triggers=("task_lists_exchange_reminders",),
    )
    TRASH_STAYS = DatabaseRule(
        "the trash stays with its owner",
        "task_lists",
        "a list changing owner (a transfer, an account's handover) leaves its tasks' trash "
        "with the former owner, in no list (migration 0049)",
        (Why.SAFER,),
        "a trash row's list is no key: without it, the new owner's members who are also the "
        "old owner's would still reach the old owner's rows",
        triggers=("task_lists_trash_stays",),
    )
    TRASHED_FILES = DatabaseRule(
        "trashed files counted",
        "task_trash",
        "a trash row's stored children's rows (its snapshot's attachments, ...) get a row each "
        "in `task_trash_stored`, which go with the trash row (a restore, a purge, the "
        "account's cascade; migrations 0068, 0079)",
        (Why.CHEAPER, Why.SAFER),
        "the quota counts trashed files until purged, and the sweeper and an account's deletion "
        "ask whether a key is still named: an index each, not every snapshot's JSON per upload",
        triggers=("task_trash_stored_add",),
        cascades=("fk_task_trash_stored_trash_id_task_trash",),
        every_write=True,
    )
    SUBTREE_CASCADE = DatabaseRule(
        "delete subtree",
        "tasks",
        "deleting a task deletes its subtasks, all the way down",
        (Why.CHEAPER, Why.SAFER),
        "the parent key's cascade: one statement, and no subtask is ever orphaned",
        cascades=("fk_tasks_user_id_parent_id_tasks",),
    )
    LIST_CASCADE = DatabaseRule(
        "delete a list's tasks",
        "task_lists",
        "deleting a list deletes its tasks",
        (Why.CHEAPER, Why.SAFER),
        "the list key's cascade: one statement, each task's deletion recorded by its trigger",
        cascades=("fk_tasks_user_id_list_id_task_lists",),
    )
    CHILDREN_FOLLOW = DatabaseRule(
        "a task's children follow it",
        "tasks",
        "a task that changes lists takes its children's `list_id` along (comments': the access "
        "predicate reads it), each declared child by the registry (migration 0053)",
        (Why.SAFER,),
        "every move, a cascaded one too, keeps who may read a child's row equal to who may "
        "read its task",
        triggers=("tasks_move_children",),
    )
    UNASSIGN_ON_MOVE = DatabaseRule(
        "unassign on a move",
        "tasks",
        "a task that changes lists keeps only the assignees who may be assigned there: its "
        "owner and the new list's members",
        (Why.SAFER,),
        "every move (PATCH, the move route, bulk, a subtree's rows) keeps the assignees "
        "members, in the row's own write (its answer and event show the result)",
        triggers=("tasks_unassign_on_move",),
    )
    UNASSIGN = DatabaseRule(
        "unassign a removed member",
        "list_members",
        "a member removed from a list (or whose account goes) is unassigned from that list's "
        "tasks only, at the commit, unless it became the list's owner",
        (Why.SAFER,),
        "every removal path (the route, leaving, an account's cascade) unassigns in the same "
        "transaction",
        triggers=("list_members_unassign",),
    )
    HANDOVER = DatabaseRule(
        "hand over an account's shared lists",
        "users",
        "deleting an account hands each of its lists with other members to the oldest admin, "
        "else editor, else member",
        (Why.SAFER,),
        "no shared list is lost with its owner's account, whoever deletes it",
        triggers=("users_hand_over_lists",),
    )
    ANSWER_ID = DatabaseRule(
        "answer id",
        "messages",
        "an assistant message's `public_id` is its question's (`ans_` for `msg_`)",
        (Why.CHEAPER,),
        "set in the insert itself: the question's id is not read first",
        triggers=("messages_answer_public_id",),
    )
    EVENTS = DatabaseRule(
        "change events",
        "tasks, task_lists",
        "every change of a task or list, cascaded ones too, writes its `task_events` row (the "
        "feed, the activity and the outbox), with its actor and, for an update, the changed "
        "fields' old and new values",
        (Why.SAFER,),
        "in the writing transaction, for every writer: no change goes unrecorded",
        triggers=("tasks_record_event", "tasks_record_event_on_update", "task_lists_record_event"),
        every_write=True,
    )
    SHARING_EVENTS = DatabaseRule(
        "sharing events",
        "list_members, list_invitations, task_lists, tasks",
        "every membership and invitation change writes its `task_events` row "
        "(`member.*`, `invitation.*`); gaining or losing a list (a list's "
        "deletion ends its memberships first) writes the member's `access.granted` upserts or "
        "`access.ended` tombstones, one per task of the list (an end deletes the member's "
        "upserts of the list: migration 0043); a task moved out of a list (its "
        "subtasks with it) writes a tombstone for each member of the old list that cannot "
        "read the new one",
        (Why.SAFER,),
        "in the writing transaction, for every writer (the routes, a cascade, an account's "
        "deletion, psql): the activity, the feed and the outbox miss nothing",
        triggers=(
            "list_members_record_event",
            "list_members_record_event_on_update",
            "list_invitations_record_event",
            "task_lists_end_memberships",
            "tasks_end_access_on_move",
        ),
        every_write=True,
    )
    CHILD_EVENTS = DatabaseRule(
        "child events",
        ", ".join(child.name for child in _RECORDING),
        "every row of a task's child (`CHILDREN`) added, changed (a column it edits) or "
        "removed writes its `task_events` row on its task, `<noun>.created`, `.updated`, "
        "`.deleted` (`comment.*`, ...), the row in it, by the one function the registry "
        "attaches (`task_children_register`, migration 0062); not a member's own reminders",
        (Why.SAFER,),
        "in the writing transaction, for every writer (the routes, a restore, a cascade, "
        "psql): the activity, the feed and the outbox miss nothing; a new child needs no trigger",
        triggers=tuple(
            f"{child.name}_record_event{suffix}"
            for child in _RECORDING
            for suffix in ("", "_on_update")[: 2 if child.edited else 1]
        ),
        every_write=True,
        shown=(
            "`<child>_record_event`, `<child>_record_event_on_update` (an edited child's)",
            "every child registered with its noun",
        ),
    )
    DAV_OBJECT_CHANGES = DatabaseRule(
        "CalDAV object changes",
        "task_dav_objects",
        "a kept CalDAV object added, changed (its bytes, name, UID or list) or removed writes a "
        "`dav_object.*` row on its task (the row without its body; a move's is the list it "
        "left), recorded as delivered, for `sync-collection` only (migration 0066)",
        (Why.SAFER,),
        "in the writing transaction, for every writer (a PUT, a move, the trash's cascade, a "
        "restore): a sync misses no change of a client's object and names a gone one by the "
        "href the client holds",
        triggers=("task_dav_objects_record_change", "task_dav_objects_record_change_on_update"),
        every_write=True,
    )
    DAV_OBJECT_SERVED = DatabaseRule(
        "one CalDAV object per name and UID",
        "task_dav_objects",
        "a kept CalDAV object arriving in a collection (added, moved, renamed, its UID changed) "
        "is served only when no served object of the collection holds its name or UID; else "
        "it is kept unserved, its task served under its derived name (migration 0069)",
        (Why.SAFER,),
        "under the space's change lock, for every writer (a restore, a move, a handover, a "
        "PUT): the unique keys on served objects never meet a write as an SQL error",
        triggers=("task_dav_objects_serve",),
        every_write=True,
    )


RULES: tuple[DatabaseRule, ...] = tuple(
    value for value in vars(Rule).values() if isinstance(value, DatabaseRule)
)

# The statements that set `user_id`, with the rule each fires: the scope check refuses any other
# unsent (backend/db/scope_check.py `changes_owner`; tests/test_scoping.py holds the two equal).
OWNER_CHANGES: dict[str, DatabaseRule] = {
    "backend.services.sharing.members._TRANSFER": Rule.EXCHANGE_REMINDERS
}

# Triggers and keys that are no rule: they change no row a request writes, or delete rows that exist
# only as part of the row deleted.
PLUMBING: dict[str, str] = {
    "*_admit_write": "skips a refused request's rows (migration 0020); changes nothing else",
    "tasks_check_tree_on_*": "a check (`ck_tasks_tree`): task_tree.py refuses first",
    "fk_*_user_id_users": "an account's rows go with it (UserService.delete)",
    "fk_task_reminders_user_id_task_id_tasks": "a task's reminder schedule goes with it",
    "fk_import_items_user_id_import_id_imports": "an import's keys go with it",
    "fk_messages_user_id_conversation_id_conversations": "a thread's messages go with it",
    "fk_messages_user_id_reply_to_messages": "an answer goes with its question",
    "fk_chatkit_items_user_id_conversation_id_conversations": "a thread's items go with it",
    "fk_list_members_member_id_users": "a member's memberships go with its account (which "
    "unassigns it: `list_members_unassign`)",
    "fk_list_members_user_id_list_id_task_lists": "a list's memberships go with it, and follow "
    "its owner on a transfer (ON UPDATE CASCADE)",
    "fk_list_invitations_user_id_list_id_task_lists": "a list's invitations go with it, and "
    "follow its owner on a transfer",
    # A task's child's keys need no line: tests/test_rules.py derives them from its declaration.
    "fk_task_reminders_recipient_id_users": "a member's scheduled reminders go with its account",
    "task_events_reminder_deliveries": "queues a fired reminder's pushes and mails with its "
    "event (the events worker's `fire_due`, no request's write); changes no row a request reads",
    "notification_settings_queue_confirmation*": "queues a new address's confirmation mail "
    "for the events worker (migration 0097); changes no row a request reads",
    "fk_reminder_deliveries_user_id_push_subscriptions": "a subscription's pending pushes go "
    "with it (its DELETE, or a push service's 404/410 to the worker)",
}


def fires(*rules: DatabaseRule) -> Callable[[F], F]:
    """Name the rules a method's write fires, on the function itself (no wrapper: no extra call)."""

    def declare(function: F) -> F:
        function.__rules__ = rules  # type: ignore[attr-defined]
        return function

    return declare
