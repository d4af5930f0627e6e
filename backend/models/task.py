"""The `tasks` table and its schema family: TaskCreate / TaskReplace / TaskUpdate / TaskPublic."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
    computed_field,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Text,
    TypeDecorator,
    UniqueConstraint,
    column,
    func,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.engine import Dialect
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from backend.models.common import JsonInt, UtcDatetime
from backend.models.text import (
    MULTI_LINE_RULE,
    SINGLE_LINE_RULE,
    MultiLineText,
    SingleLineText,
)
from backend.recurrence import (
    DEFAULT_TIME_ZONE,
    RULE_MAX_LENGTH,
    RULE_PATTERN,
    SHORTHANDS,
    TIME_ZONES,
    check_time_zone,
    normalize_rule,
)

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
# Task ids are BIGINT identities, capped at 2^53-1 so every JSON client (JavaScript numbers,
# float-based JSON Schema validators) reads them exactly; anything larger is a 422.
TASK_ID_MAX = 2**53 - 1
TAG_MAX_LENGTH = 32
TAGS_MAX_COUNT = 20
# Instants outside these years are refused: they cannot round-trip through every client.
INSTANT_MIN_YEAR, INSTANT_MAX_YEAR = 1900, 9998
# The same years at the start of an ISO 8601 text, for the OpenAPI document.
INSTANT_YEAR_PATTERN = "^(?:19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
REMINDERS_MAX_COUNT = 5
# A reminder relative to the due date is at most four weeks before it.
MINUTES_BEFORE_DUE_MAX = 4 * 7 * 24 * 60


class TextArray(TypeDecorator[list[str]]):
    """`text[]`, read back as psycopg2 returns it (a list of str). SQLAlchemy's ARRAY would
    copy every array through a Python item processor that does nothing for text, a
    measurable part of a 100-task listing (specs/benchmark.md). (A TypeDecorator, because
    the dialect swaps an ARRAY subclass for its own.)"""

    impl = ARRAY(Text)
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class Priority(StrEnum):
    """Declared in ascending importance; the database enum sorts the same way."""

    none = "none"
    low = "low"
    medium = "medium"
    high = "high"


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index(
            "ix_tasks_user_id_completed_created_at_id", "user_id", "completed", "created_at", "id"
        ),
        Index("ix_tasks_user_id_lower_title_id", "user_id", func.lower(text("title")), "id"),
        Index("ix_tasks_user_id_updated_at_id", "user_id", "updated_at", "id"),
        Index("ix_tasks_user_id_priority_id", "user_id", "priority", "id"),
        Index(
            "ix_tasks_user_id_due_date_asc_id",
            "user_id",
            column("due_date").asc().nulls_last(),
            column("id").asc(),
        ),
        Index(
            "ix_tasks_user_id_due_date_desc_id",
            "user_id",
            column("due_date").desc().nulls_last(),
            column("id").desc(),
        ),
        Index("ix_tasks_user_id_tags", "user_id", "tags", postgresql_using="gin"),
        # One next occurrence per completed occurrence (migration 0009).
        UniqueConstraint("previous_task_id"),
    )

    id: int | None = SQLField(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    user_id: str = SQLField(
        sa_column=Column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    title: str = SQLField(sa_column=Column(Text, nullable=False))
    description: str | None = SQLField(default=None, sa_column=Column(Text))
    completed: bool = SQLField(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    completed_at: datetime | None = SQLField(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    priority: Priority = SQLField(
        default=Priority.none,
        sa_column=Column(
            SAEnum(
                Priority,
                name="task_priority",
                create_type=False,
                values_callable=lambda members: [m.value for m in members],
            ),
            nullable=False,
            server_default="none",
        ),
    )
    due_date: datetime | None = SQLField(default=None, sa_column=Column(DateTime(timezone=True)))
    tags: list[str] = SQLField(
        default_factory=list,
        sa_column=Column(TextArray(), nullable=False, server_default=text("'{}'")),
    )
    created_at: datetime | None = SQLField(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    updated_at: datetime | None = SQLField(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    # Incremented by every UPDATE (migration 0006); the ETag is "<id>-<version>".
    version: int = SQLField(
        default=1, sa_column=Column(BigInteger, nullable=False, server_default=text("1"))
    )
    # Recurrence (migration 0009, backend/recurrence.py): the rule as stored (an RRULE without
    # the RRULE: prefix), the zone it is evaluated in, the series (its id and start, the
    # rule's DTSTART) and this occurrence's successor's due date; a spawned occurrence names
    # the one whose completion created it.
    recurrence: str | None = SQLField(default=None, sa_column=Column(Text))
    time_zone: str = SQLField(
        default=DEFAULT_TIME_ZONE,
        sa_column=Column(Text, nullable=False, server_default=text("'UTC'")),
    )
    reminders: list[dict[str, Any]] = SQLField(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    )
    series_id: str | None = SQLField(default=None, sa_column=Column(UUID(as_uuid=False)))
    series_start: datetime | None = SQLField(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    next_due_date: datetime | None = SQLField(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    previous_task_id: int | None = SQLField(default=None, sa_column=Column(BigInteger))


class TaskRow(Protocol):
    """A row of `tasks` as the service returns it: every column, read-only. Services run Core
    statements and hand back rows, never ORM entities (no identity map, no unit of work:
    a request's task is read, serialized and gone)."""

    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def completed(self) -> bool: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def priority(self) -> Priority: ...
    @property
    def due_date(self) -> datetime | None: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def version(self) -> int: ...
    @property
    def recurrence(self) -> str | None: ...
    @property
    def time_zone(self) -> str: ...
    @property
    def reminders(self) -> list[dict[str, Any]]: ...
    @property
    def series_id(self) -> str | None: ...
    @property
    def series_start(self) -> datetime | None: ...
    @property
    def next_due_date(self) -> datetime | None: ...
    @property
    def previous_task_id(self) -> int | None: ...
    # Also a tuple of the columns, in table order (`TaskService.TASK_COLUMNS`).
    def __getitem__(self, index: int) -> Any: ...


# Human-facing text follows the text rule (backend/models/text.py): NFC, no control, bidi
# override or noncharacter code points; a title or tag is one line with a visible character.
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH),
    SingleLineText,
]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH), MultiLineText]


def to_instant(value: datetime | date) -> datetime:
    """An aware datetime in UTC; a plain date means midnight UTC. The year must be in range
    both as written (what the OpenAPI pattern states) and in UTC (what is stored and sent
    back, so a task can be sent back as received)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    _check_year(value)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range") from None
    _check_year(value)
    return value


def _check_year(value: datetime) -> None:
    if not INSTANT_MIN_YEAR <= value.year <= INSTANT_MAX_YEAR:
        raise ValueError(f"year must be between {INSTANT_MIN_YEAR} and {INSTANT_MAX_YEAR}")


class _InstantSchema:
    """The year range in the OpenAPI document: a `pattern` on each ISO 8601 form (a JSON Schema
    validator or fuzzer then knows that year 0042 is refused). That a datetime on the range's
    first or last day must stay in range once converted to UTC is in the description only."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        for branch in json_schema.get("anyOf", [json_schema]):
            if branch.get("type") == "string":
                branch["pattern"] = INSTANT_YEAR_PATTERN
        return json_schema


_NUMERIC = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?")


def iso_text_only(value: Any) -> Any:
    """Only ISO 8601 text (what the schema documents): no Unix timestamps, numbers or numeric
    strings, which pydantic's lax mode would otherwise read as seconds since 1970."""
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date or date-time string")
    if _NUMERIC.fullmatch(value.strip()):
        raise ValueError("must be an ISO 8601 date or date-time, not a number")
    return value


# ISO 8601 with an offset, or a plain date (midnight UTC). Naive datetimes are refused.
# Always a UTC datetime once validated, which is what type checkers are told.
if TYPE_CHECKING:
    Instant = datetime
else:
    Instant = Annotated[
        AwareDatetime | date,
        BeforeValidator(iso_text_only),
        AfterValidator(to_instant),
        _InstantSchema(),
    ]
Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=1, max_length=TAG_MAX_LENGTH
    ),
    SingleLineText,
]


def _unique_tags(tags: list[str]) -> list[str]:
    # Tags are compared case-insensitively and in NFC (each `Tag` is both by now): "É", "é"
    # and "e" + U+0301 are one tag; the first spelling (lower-cased, NFC) wins.
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX_COUNT), AfterValidator(_unique_tags)]

# An RRULE (RFC 5545) or a shorthand, stored as its RRULE (backend/recurrence.py says which
# rules are refused and why). The pattern only says which characters a rule is written with.
Recurrence = Annotated[
    str,
    StringConstraints(max_length=RULE_MAX_LENGTH, pattern=RULE_PATTERN),
    AfterValidator(normalize_rule),
]
RECURRENCE_DESCRIPTION = (
    "An RFC 5545 RRULE, with or without the `RRULE:` prefix (`FREQ=WEEKLY;BYDAY=MO,TH`, "
    f"`FREQ=MONTHLY;BYMONTHDAY=-1`), or a shorthand: {', '.join(f'`{s}`' for s in SHORTHANDS)}; "
    "stored and returned as the RRULE. The series starts at `due_date` (required with a rule) "
    "and is evaluated in `time_zone`. Refused (422, saying why): DTSTART, several lines, "
    "MINUTELY/SECONDLY or several BYMINUTE/BYSECOND values (more often than hourly), values "
    "outside RFC 5545's ranges, COUNT with UNTIL, a rule with no occurrence after the due "
    f"date, more than {RULE_MAX_LENGTH} characters. `null`: not recurring."
)


def _known_time_zone(value: Any) -> Any:
    # Before the enum's own check, whose error would list all ~600 names (11 kB).
    if not isinstance(value, str):
        raise ValueError("must be an IANA time zone name (a string), e.g. Europe/Berlin or UTC")
    return check_time_zone(value)


# The IANA time zones of the locked `tzdata` package: an enum, so the OpenAPI document (and a
# generated client) lists the accepted names.
_TimeZoneEnum = StrEnum("TimeZone", [(name, name) for name in TIME_ZONES])  # type: ignore[misc]
if TYPE_CHECKING:
    TimeZone = str
else:
    TimeZone = Annotated[_TimeZoneEnum, BeforeValidator(_known_time_zone)]
TIME_ZONE_DESCRIPTION = (
    "IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`): the rule's local "
    "clock, so a task due at 09:00 there stays at 09:00 across daylight-saving changes."
)


class MinutesBeforeDue(BaseModel):
    """Remind this many minutes before the due date (0: at it). Needs a due date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minutes_before_due: JsonInt = Field(ge=0, le=MINUTES_BEFORE_DUE_MAX, examples=[30])


class ReminderAt(BaseModel):
    """Remind at this instant. On a recurring task, the next occurrence's reminder is moved
    with its due date (the same distance before or after it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: Instant = Field(examples=["2026-12-01T08:00:00Z"])


class ReminderAtPublic(BaseModel):
    """Remind at this instant (UTC)."""

    at: UtcDatetime = Field(examples=["2026-12-01T08:00:00Z"])


def _unique_reminders(reminders: list[MinutesBeforeDue | ReminderAt]) -> list[Any]:
    return list(dict.fromkeys(reminders))


Reminders = Annotated[
    list[MinutesBeforeDue | ReminderAt],
    Field(max_length=REMINDERS_MAX_COUNT),
    AfterValidator(_unique_reminders),
]
REMINDERS_DESCRIPTION = (
    f'Up to {REMINDERS_MAX_COUNT} reminders, each `{{"minutes_before_due": 0-'
    f"{MINUTES_BEFORE_DUE_MAX}}}` (up to four weeks before `due_date`, which it needs) or "
    '`{"at": "<ISO 8601 instant>"}`; duplicates are dropped. Stored and returned; a '
    "recurring task's next occurrence gets them too, `at` moved with the due date."
)


def reminders_json(reminders: list[MinutesBeforeDue | ReminderAt]) -> list[dict[str, Any]]:
    """Reminders as stored (JSONB) and returned: `at` in UTC, as `TaskPublic` prints it."""
    return [reminder.model_dump(mode="json") for reminder in reminders]


# Server-owned fields. Frontends often send a task object back whole, so these are accepted
# and dropped; any other unknown field is a 422.
READ_ONLY_FIELDS = frozenset(
    {
        "id",
        "user_id",
        "completed_at",
        "created_at",
        "updated_at",
        "is_overdue",
        "next_due_date",
        "series_id",
        "series_start",
        "previous_task_id",
    }
)


class _TaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
        return data


class TaskCreate(_TaskInput):
    """A new task. Only `title` is required."""

    title: Title = Field(
        description=f"1-200 characters, trimmed; {SINGLE_LINE_RULE}.", examples=["Buy milk"]
    )
    description: Description | None = Field(
        default=None,
        description=f"Up to 2000 characters; {MULTI_LINE_RULE}.",
        examples=["2 litres, semi-skimmed"],
    )
    completed: StrictBool = Field(default=False, examples=[False])
    priority: Priority = Field(default=Priority.none, examples=["high"])
    due_date: Instant | None = Field(
        default=None,
        description="ISO 8601 with an offset, or a plain date meaning midnight UTC; the year "
        f"{INSTANT_MIN_YEAR}-{INSTANT_MAX_YEAR}, as written and in UTC.",
        examples=["2026-12-01T17:00:00+01:00", "2026-12-01"],
    )
    tags: Tags = Field(
        default_factory=list,
        description=f"Up to {TAGS_MAX_COUNT} tags of 1-{TAG_MAX_LENGTH} characters; trimmed, "
        f"lower-cased, de-duplicated after NFC normalization; each {SINGLE_LINE_RULE}.",
        examples=[["errands", "home"]],
    )
    recurrence: Recurrence | None = Field(
        default=None, description=RECURRENCE_DESCRIPTION, examples=["FREQ=WEEKLY;BYDAY=MO,TH"]
    )
    time_zone: TimeZone = Field(
        default=DEFAULT_TIME_ZONE,
        validate_default=True,  # the enum member, as a sent value would be
        description=TIME_ZONE_DESCRIPTION,
        examples=["Europe/Berlin"],
    )
    reminders: Reminders = Field(
        default_factory=list,
        description=REMINDERS_DESCRIPTION,
        examples=[[{"minutes_before_due": 30}]],
    )


class TaskReplace(TaskCreate):
    """PUT body: replaces every editable field; omitted optional fields take their defaults."""


class TaskUpdate(_TaskInput):
    """PATCH body: only the fields sent change. `description: null` clears it."""

    # `None` is only the "not sent" default: null is refused for these (and not documented).
    title: Title | SkipJsonSchema[None] = Field(default=None, examples=["Buy oat milk"])
    description: Description | None = Field(default=None, examples=[None])
    completed: StrictBool | SkipJsonSchema[None] = Field(default=None, examples=[True])
    priority: Priority | SkipJsonSchema[None] = Field(default=None, examples=["medium"])
    due_date: Instant | None = Field(
        default=None,
        description="As for create; `null` clears it.",
        examples=["2026-12-01"],
    )
    tags: Tags | SkipJsonSchema[None] = Field(default=None, description="Replaces the whole list.")
    recurrence: Recurrence | None = Field(
        default=None,
        description="As for create; `null` ends the series (no next occurrence). A new rule "
        "or time zone starts the series again at the task's due date.",
        examples=["daily"],
    )
    time_zone: TimeZone | SkipJsonSchema[None] = Field(
        default=None, description=TIME_ZONE_DESCRIPTION, examples=["America/New_York"]
    )
    reminders: Reminders | SkipJsonSchema[None] = Field(
        default=None, description="Replaces the whole list (`[]` removes them)."
    )

    @model_validator(mode="after")
    def _not_null(self) -> TaskUpdate:
        for name in ("title", "completed", "priority", "tags", "time_zone", "reminders"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TaskCompletion(BaseModel):
    """Optional body of `/complete`: sets the state instead of toggling it."""

    model_config = ConfigDict(extra="forbid")

    completed: StrictBool = Field(examples=[True])


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[42])
    user_id: str = Field(examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"])
    title: str = Field(examples=["Buy milk"])
    description: str | None = Field(examples=["2 litres, semi-skimmed"])
    completed: bool = Field(examples=[False])
    completed_at: UtcDatetime | None = Field(examples=[None])
    priority: Priority = Field(examples=["high"])
    due_date: UtcDatetime | None = Field(examples=["2026-12-01T16:00:00Z"])
    tags: list[str] = Field(examples=[["errands"]])
    recurrence: str | None = Field(
        description="The RRULE (without `RRULE:`), or null for a task that does not recur.",
        examples=["FREQ=WEEKLY;BYDAY=MO,TH"],
    )
    time_zone: TimeZone = Field(description="The rule's time zone.", examples=["Europe/Berlin"])
    next_due_date: UtcDatetime | None = Field(
        description="The occurrence after this one: the due date completing this task gives "
        "its successor. Null when the task does not recur or its series has ended.",
        examples=["2026-12-03T16:00:00Z"],
    )
    reminders: list[MinutesBeforeDue | ReminderAtPublic] = Field(
        examples=[[{"minutes_before_due": 30}]]
    )
    series_id: uuid.UUID | None = Field(
        description="Shared by every occurrence of a series; null when not recurring.",
        examples=["0b6f3b1e-8f7a-4d58-9a4c-2f3c9a1d7e55"],
    )
    series_start: UtcDatetime | None = Field(
        description="The series' first due date (the rule's DTSTART; COUNT counts from it).",
        examples=["2026-12-01T16:00:00Z"],
    )
    previous_task_id: int | None = Field(
        description="The occurrence whose completion created this one, if any.",
        examples=[41],
    )
    created_at: UtcDatetime = Field(examples=["2026-11-22T17:00:00Z"])
    updated_at: UtcDatetime = Field(examples=["2026-11-22T17:00:00Z"])

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_overdue(self) -> bool:
        """Not completed and past its due date."""
        return is_overdue(self.completed, self.due_date, datetime.now(UTC))


def is_overdue(completed: bool, due_date: datetime | None, now: datetime) -> bool:
    """The rule behind `is_overdue`: not completed and due before `now`."""
    return not completed and due_date is not None and due_date < now


class TaskStatus(StrEnum):
    all = "all"
    pending = "pending"
    completed = "completed"


class TaskSort(StrEnum):
    created = "created"
    updated = "updated"
    title = "title"  # type: ignore[assignment]  # shadows str.title; the API value is "title"
    due_date = "due_date"
    priority = "priority"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"
