"""Every field of a task, declared once (CLAUDE.md, "Add a field"): the schemas, MCP arguments,
the service's column sets and the page encoders are derived from `FIELDS`, in its order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from pydantic import StrictBool

from backend.models.common import UtcDatetime
from backend.models.references import LISTS, MEMBERS, TASKS, Action, Reference
from backend.models.task_list import MAX_DEPTH, SUBTASKS_PER_TASK, ListId, TaskRef
from backend.models.text import MULTI_LINE_RULE, SINGLE_LINE_RULE
from backend.models.types import (
    INSTANT_MAX_YEAR,
    INSTANT_MIN_YEAR,
    RECURRENCE_DESCRIPTION,
    REMINDERS_DESCRIPTION,
    TAG_MAX_LENGTH,
    TAGS_MAX_COUNT,
    TIME_ZONE_DESCRIPTION,
    Assignees,
    Description,
    DueDate,
    MinutesBeforeDue,
    Priority,
    Recurrence,
    ReminderAtPublic,
    Reminders,
    StoredTimeZone,
    Tags,
    TimeZone,
    TimeZoneName,
    Title,
)
from backend.recurrence import DEFAULT_TIME_ZONE

# The MCP tools' own wording (shorter than the REST document's; agents read it in context).
DUE_DATE_DESCRIPTION = (
    "A date (2026-12-01: due on that day in the task's time_zone) or an ISO 8601 date-time "
    "with an offset (2026-12-01T17:00:00+01:00: due at that instant)."
)
MCP_RECURRENCE_DESCRIPTION = (
    "Repeat the task: an RFC 5545 RRULE (FREQ=WEEKLY;BYDAY=MO,TH) or daily, weekdays, weekly, "
    "monthly, yearly. Needs due_date (the first occurrence); completing the task creates the "
    "next one. At most hourly."
)
TIME_ZONE_ARG_DESCRIPTION = (
    "IANA time zone the rule's times are local to (Europe/Berlin); default UTC."
)
REMINDERS_ARG_DESCRIPTION = (
    'Up to 5: {"minutes_before_due": 0-40320} (needs due_date) or {"at": "<ISO 8601>"}.'
)

LIST_ID_DESCRIPTION = (
    "The list the task is in (its id); null: in no list. A subtask is always in its "
    "parent's list: with `parent_id`, omit it (or send the parent's). On PUT, omitted keeps "
    "the task's list and parent."
)
PARENT_ID_DESCRIPTION = (
    f"The task this one is a subtask of; null: top level. At most {MAX_DEPTH} levels of "
    f"subtasks, {SUBTASKS_PER_TASK} under one top-level task; a subtask does not recur. On "
    "PUT, omitted keeps it."
)

# No default: the field is required when a task is created.
REQUIRED: Any = ...


@dataclass(frozen=True)
class Doc:
    """A field's text in one schema; None leaves it out (`examples=[None]` is an example)."""

    description: str | None = None
    examples: list[Any] | None = None


@dataclass(frozen=True)
class Writable:
    """A field the client sets (REST; MCP unless `mcp` is False). `nullable`: PATCH null clears
    it (else null is refused). `default`/`default_factory`: an omitted field's on create."""

    type: Any
    create: Doc
    patch: Doc
    default: Any = None
    default_factory: Callable[[], Any] | None = None
    nullable: bool = False
    validate_default: bool = False
    mcp: bool = True
    mcp_type: Any = None  # when the tool argument differs from the REST type
    mcp_add: str | None = None  # the tool argument's description (default: create's)
    mcp_update: str | None = None  # (default: patch's)


@dataclass(frozen=True)
class TaskField:
    """One field of a task. `public`: its response type; `writable` None: server-owned (sent
    back, dropped). `copied_to_successor`: the next occurrence keeps it, exactly the columns
    outside `tasks_not_copied()` (migration 0022; tested). `derived`: kept by the database from
    other rows (null in change events). `missing`: what an event recorded before a read-only
    column existed reads (a writable one's: its create default)."""

    name: str
    public: Any
    doc: Doc
    writable: Writable | None = None
    copied_to_successor: bool = False
    derived: bool = False
    missing: Any = None


FIELDS: tuple[TaskField, ...] = (
    TaskField("id", int, Doc(examples=[42])),
    TaskField("user_id", str, Doc(examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"])),
    TaskField(
        "title",
        str,
        Doc(examples=["Buy milk"]),
        Writable(
            Title,
            create=Doc(f"1-200 characters, trimmed; {SINGLE_LINE_RULE}.", ["Buy milk"]),
            patch=Doc(examples=["Buy oat milk"]),
            default=REQUIRED,
            mcp_add="What to do: one line of 1-200 characters (trimmed).",
            mcp_update="New title, 1-200.",
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "description",
        str | None,
        Doc(examples=["2 litres, semi-skimmed"]),
        Writable(
            Description,
            create=Doc(f"Up to 2000 characters; {MULTI_LINE_RULE}.", ["2 litres, semi-skimmed"]),
            patch=Doc(examples=[None]),
            nullable=True,
            mcp_add="Up to 2000 characters.",
            mcp_update="New description; null clears it.",
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "completed",
        bool,
        Doc(examples=[False]),
        Writable(
            StrictBool,
            create=Doc(examples=[False]),
            patch=Doc(examples=[True]),
            default=False,
            mcp=False,  # complete_task / reopen_task
        ),
    ),
    TaskField("completed_at", UtcDatetime | None, Doc(examples=[None])),
    TaskField(
        "priority",
        Priority,
        Doc(examples=["high"]),
        Writable(
            Priority,
            create=Doc(examples=["high"]),
            patch=Doc(examples=["medium"]),
            default=Priority.none,
            mcp_add="Default none.",
            mcp_update="New priority.",
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "due_date",
        UtcDatetime | date | None,
        Doc(
            "A day (`YYYY-MM-DD`: due on that day in the task's `time_zone`, overdue once it "
            "has ended there) or an instant (ISO 8601, UTC).",
            ["2026-12-01T16:00:00Z"],
        ),
        Writable(
            DueDate,
            create=Doc(
                "A plain date (`YYYY-MM-DD`) for a task due on a day, read on the task's "
                "`time_zone` clock; or ISO 8601 with an offset for an instant. The year "
                f"{INSTANT_MIN_YEAR}-{INSTANT_MAX_YEAR}, as written and in UTC.",
                ["2026-12-01T17:00:00+01:00", "2026-12-01"],
            ),
            patch=Doc(
                "As for create; `null` clears it. A day stays the same day when `time_zone` "
                "changes.",
                ["2026-12-01"],
            ),
            nullable=True,
            mcp_add=DUE_DATE_DESCRIPTION,
            mcp_update=f"New due date; null clears it. {DUE_DATE_DESCRIPTION}",
        ),
    ),
    TaskField(
        "all_day",
        bool,
        Doc(
            "True when the task is due on a day (`due_date` is `YYYY-MM-DD`), false for an "
            "instant or no due date. Set by sending `due_date`.",
            [False],
        ),
        missing=False,
    ),
    TaskField(
        "tags",
        list[str],
        Doc(examples=[["errands"]]),
        Writable(
            Tags,
            create=Doc(
                f"Up to {TAGS_MAX_COUNT} tags of 1-{TAG_MAX_LENGTH} characters; trimmed, "
                f"lower-cased, de-duplicated after NFC normalization; each {SINGLE_LINE_RULE}.",
                [["errands", "home"]],
            ),
            patch=Doc("Replaces the whole list."),
            default_factory=list,
            mcp_add="Up to 20 tags of 1-32 characters; trimmed, lower-cased, de-duplicated "
            "(in NFC: é is é however it is encoded).",
            mcp_update="Replaces the whole tag list.",
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "assignees",
        list[str],
        Doc(
            "Who the task is for: user ids of its owner or of members of its list (a task in "
            "no list: only its owner).",
            [["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"]],
        ),
        Writable(
            Annotated[Assignees, Reference(MEMBERS, Action.TASK_WRITE)],
            create=Doc(
                "Up to 20 user ids, each the task's owner or a member of its list (editor or "
                "above to change).",
                [[]],
            ),
            patch=Doc("Replaces the whole list; a removed member is unassigned by the server."),
            default_factory=list,
            mcp_add="User ids to assign (each a member of the task's list, or yourself).",
            mcp_update="Replaces the whole assignee list.",
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "recurrence",
        str | None,
        Doc(
            "The RRULE (without `RRULE:`), or null for a task that does not recur.",
            ["FREQ=WEEKLY;BYDAY=MO,TH"],
        ),
        Writable(
            Recurrence,
            create=Doc(RECURRENCE_DESCRIPTION, ["FREQ=WEEKLY;BYDAY=MO,TH"]),
            patch=Doc(
                "As for create; `null` ends the series (no next occurrence). A new rule "
                "or time zone starts the series again at the task's due date.",
                ["daily"],
            ),
            nullable=True,
            mcp_add=MCP_RECURRENCE_DESCRIPTION,
            mcp_update=f"New rule; null ends the series. {MCP_RECURRENCE_DESCRIPTION}",
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "time_zone",
        StoredTimeZone,
        Doc("The rule's time zone.", ["Europe/Berlin"]),
        Writable(
            TimeZone,
            create=Doc(TIME_ZONE_DESCRIPTION, ["Europe/Berlin"]),
            patch=Doc(TIME_ZONE_DESCRIPTION, ["America/New_York"]),
            default=DEFAULT_TIME_ZONE,
            validate_default=True,  # the enum member, as a sent value would be
            mcp_type=TimeZoneName,
            mcp_add=TIME_ZONE_ARG_DESCRIPTION,
            mcp_update=TIME_ZONE_ARG_DESCRIPTION,
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "next_due_date",
        UtcDatetime | None,
        Doc(
            "The occurrence after this one: the due date completing this task gives "
            "its successor. Null when the task does not recur or its series has ended.",
            ["2026-12-03T16:00:00Z"],
        ),
    ),
    TaskField(
        "reminders",
        list[MinutesBeforeDue | ReminderAtPublic],
        Doc(
            "The caller's own reminders: on a task of a shared list, its owner's for the owner "
            "and each member's own for that member (`[]` until it sets some).",
            [[{"minutes_before_due": 30}]],
        ),
        Writable(
            Reminders,
            create=Doc(REMINDERS_DESCRIPTION, [[{"minutes_before_due": 30}]]),
            patch=Doc("Replaces the caller's own list (`[]` removes them)."),
            default_factory=list,
            mcp_add=REMINDERS_ARG_DESCRIPTION,
            mcp_update=f"Replaces the reminders. {REMINDERS_ARG_DESCRIPTION}",
        ),
    ),
    TaskField(
        "series_id",
        uuid.UUID | None,
        Doc(
            "Shared by every occurrence of a series; null when not recurring.",
            ["0b6f3b1e-8f7a-4d58-9a4c-2f3c9a1d7e55"],
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "series_start",
        UtcDatetime | None,
        Doc(
            "The series' first due date (the rule's DTSTART; COUNT counts from it).",
            ["2026-12-01T16:00:00Z"],
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "previous_task_id",
        int | None,
        Doc("The occurrence whose completion created this one, if any.", [41]),
    ),
    TaskField(
        "list_id",
        int | None,
        Doc("The task's list; null: in no list.", [7]),
        Writable(
            Annotated[ListId, Reference(LISTS, Action.TASK_WRITE)],
            create=Doc(LIST_ID_DESCRIPTION, [7]),
            patch=Doc(
                "Moves the task (with its subtasks) to the end of that list's top level; null: "
                "out of any list. `POST /api/tasks/{task_id}/move` places it exactly.",
                [7],
            ),
            nullable=True,
            mcp_add="The list to add it to, by id (or give `list`, its name).",
            mcp_update="Move it (with its subtasks) to this list, by id; null: out of any "
            "list (or give `list`, its name).",
        ),
        copied_to_successor=True,
    ),
    TaskField(
        "parent_id",
        int | None,
        Doc("The task this one is a subtask of; null: top level.", [None]),
        Writable(
            Annotated[TaskRef, Reference(TASKS, Action.TASK_WRITE)],
            create=Doc(PARENT_ID_DESCRIPTION, [41]),
            patch=Doc(
                "Makes it a subtask of that task (last among its subtasks, in its list); "
                "null: top level. Moves its own subtasks with it.",
                [41],
            ),
            nullable=True,
            mcp_add="Make it a subtask of this task (by id); it joins that task's list.",
            mcp_update="Make it a subtask of this task (by id); null: top level.",
        ),
        # Only top-level tasks recur: a successor's parent is always null.
        copied_to_successor=True,
    ),
    TaskField(
        "position",
        int,
        Doc(
            "Its place among its siblings (same list and parent), ascending: `sort=position`. "
            "Integers with gaps: compare them, never compute with them. Set by the server "
            "(a new top-level task goes first, a new subtask last) and by "
            "`POST /api/tasks/{task_id}/move`.",
            [65536],
        ),
        missing=0,
    ),
    TaskField(
        "subtask_count",
        int | None,
        Doc(
            "How many subtasks it has (direct ones). Null in change-feed entries and events, "
            "which hold the task's own fields.",
            [3],
        ),
        derived=True,
    ),
    TaskField(
        "open_subtask_count",
        int | None,
        Doc("Of those, how many are not completed (null where `subtask_count` is).", [1]),
        derived=True,
    ),
    TaskField("created_at", UtcDatetime, Doc(examples=["2026-11-22T17:00:00Z"])),
    TaskField("updated_at", UtcDatetime, Doc(examples=["2026-11-22T17:00:00Z"])),
)

BY_NAME = {f.name: f for f in FIELDS}
# The fields a client sets, in schema order.
WRITABLE: tuple[str, ...] = tuple(f.name for f in FIELDS if f.writable is not None)
# Server-owned (sent back, dropped); `is_overdue` is computed (TaskPublic).
READ_ONLY: frozenset[str] = frozenset(
    {f.name for f in FIELDS if f.writable is None} | {"is_overdue"}
)
# The values the database derives from a task's subtasks (null in change events).
DERIVED: tuple[str, ...] = tuple(f.name for f in FIELDS if f.derived)
# The stored values a recurring task's next occurrence is created with.
COPIED_TO_SUCCESSOR: tuple[str, ...] = tuple(f.name for f in FIELDS if f.copied_to_successor)
# The fields the MCP tools add_task / update_task take.
MCP_EDITABLE: tuple[str, ...] = tuple(
    f.name for f in FIELDS if f.writable is not None and f.writable.mcp
)
# One valid value per writable field, for tests (the create example).
EXAMPLES: dict[str, Any] = {
    f.name: f.writable.create.examples[0]
    for f in FIELDS
    if f.writable is not None and f.writable.create.examples
}


def event_defaults() -> dict[str, Any]:
    """What an event stored before a column existed reads: its create default, or `missing`."""
    defaults: dict[str, Any] = {}
    for f in FIELDS:
        w = f.writable
        if w is not None and w.default_factory is not None:
            defaults[f.name] = w.default_factory()
        elif w is not None and w.default is not REQUIRED:
            defaults[f.name] = w.default
        else:
            defaults[f.name] = f.missing
    return defaults
