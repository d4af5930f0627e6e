"""The reusable types of task fields and the listing enums (`task_fields.py` builds on them)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from sqlalchemy import Text, TypeDecorator
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect

from backend.models.common import JsonInt, UtcDatetime
from backend.models.text import MultiLineText, SingleLineText
from backend.recurrence import (
    RULE_MAX_LENGTH,
    RULE_PATTERN,
    SHORTHANDS,
    TIME_ZONE_MAX_LENGTH,
    TIME_ZONES,
    check_time_zone,
    normalize_rule,
)

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
# BIGINT identities capped at 2^53-1: every JSON client (JavaScript) reads them exactly.
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
    """`text[]` as psycopg2 returns it: ARRAY's per-item processor was a measurable part of a
    listing (specs/benchmark.md); a TypeDecorator, as the dialect swaps an ARRAY subclass."""

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


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH),
    SingleLineText,
]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH), MultiLineText]


def to_instant(value: datetime | date) -> datetime:
    """An aware datetime in UTC (a plain date: midnight UTC), its year in range both as written
    (the OpenAPI pattern) and in UTC (what is stored and sent back)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    _check_year(value)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range") from None
    _check_year(value)
    return value


def _check_year(value: date) -> None:
    if not INSTANT_MIN_YEAR <= value.year <= INSTANT_MAX_YEAR:
        raise ValueError(f"year must be between {INSTANT_MIN_YEAR} and {INSTANT_MAX_YEAR}")


class _InstantSchema:
    """The year range as a `pattern` on each ISO 8601 form."""

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
    """Only ISO 8601 text: pydantic's lax mode would read numbers as seconds since 1970."""
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date or date-time string")
    if _NUMERIC.fullmatch(value.strip()):
        raise ValueError("must be an ISO 8601 date or date-time, not a number")
    return value


def to_due(value: datetime | date) -> datetime | date:
    """A due date: a plain date is a day (kept as the date), a date-time an instant in UTC."""
    if isinstance(value, datetime):
        return to_instant(value)
    _check_year(value)
    return value


def _iso_text(after: Any) -> Any:
    """ISO 8601 text only, then `after`, with the year range in the schema."""
    iso = AwareDatetime | date
    return Annotated[iso, BeforeValidator(iso_text_only), AfterValidator(after), _InstantSchema()]


# Naive date-times are refused by both; type checkers see what validation gives.
if TYPE_CHECKING:
    Instant = datetime
    DueDate = datetime | date
else:
    Instant = _iso_text(to_instant)
    DueDate = _iso_text(to_due)
Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=1, max_length=TAG_MAX_LENGTH
    ),
    SingleLineText,
]


def _unique(items: list[Any]) -> list[Any]:
    """Each item once, the first first (a `Tag` is lower-cased and NFC by now)."""
    return list(dict.fromkeys(items))


Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX_COUNT), AfterValidator(_unique)]

ASSIGNEES_MAX_COUNT = 20
# A user id as the API hands it out (a UUID, or an external issuer's subject).
AssigneeId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), SingleLineText
]
Assignees = Annotated[
    list[AssigneeId], Field(max_length=ASSIGNEES_MAX_COUNT), AfterValidator(_unique)
]

# An RRULE or a shorthand, stored as its RRULE (backend/recurrence.py refuses and says why).
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


# The IANA zones of the locked `tzdata`: an enum, so the OpenAPI document lists them.
_TimeZoneEnum = StrEnum("TimeZone", [(name, name) for name in TIME_ZONES])  # type: ignore[misc]
if TYPE_CHECKING:
    TimeZone = str
    StoredTimeZone = str
else:
    TimeZone = Annotated[_TimeZoneEnum, BeforeValidator(_known_time_zone)]
    # A stored zone, in a response: always one of the names, so the enum alone.
    StoredTimeZone = _TimeZoneEnum
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


Reminders = Annotated[
    list[MinutesBeforeDue | ReminderAt],
    Field(max_length=REMINDERS_MAX_COUNT),
    AfterValidator(_unique),
]
REMINDERS_DESCRIPTION = (
    f'Up to {REMINDERS_MAX_COUNT} reminders, each `{{"minutes_before_due": 0-'
    f"{MINUTES_BEFORE_DUE_MAX}}}` (up to four weeks before `due_date`, which it needs) or "
    '`{"at": "<ISO 8601 instant>"}`; duplicates are dropped. The caller\'s own: on a shared '
    "list's task each user sets and reads only its own. A recurring task's next occurrence "
    "gets them too, `at` moved with the due date."
)


def reminders_json(reminders: list[MinutesBeforeDue | ReminderAt]) -> list[dict[str, Any]]:
    """Reminders as stored (JSONB) and returned."""
    return [reminder.model_dump(mode="json") for reminder in reminders]


# The MCP tools' (~600 names are too long for a model's context); the same check.
TimeZoneName = Annotated[
    str, StringConstraints(max_length=TIME_ZONE_MAX_LENGTH), AfterValidator(check_time_zone)
]


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
    position = "position"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"
