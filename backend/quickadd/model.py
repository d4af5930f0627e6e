"""What a quick-add reading is made of: the caller's directory in, the reading and its tokens
out. Plain frozen dataclasses, so a reading can be cached, compared and shown as chips."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime


class QuickAddError(ValueError):
    """Text that reads as no task (only tokens): message says why."""


class NowOutOfRange(ValueError):
    """`now`, read in the zone, is not a day of years 1-9999 (valid as sent, as
    `9999-12-31T23:00-12:00` read in UTC): no `today` can be read from it, whatever the text."""


@dataclass(frozen=True)
class Token:
    """One recognised phrase: `text[start:end] == token.text` (offsets in code points)."""

    kind: str  # due, recurrence, list, tag, priority or assignee: a chip the user may reject
    start: int
    end: int
    text: str
    value: str | int | date | datetime


@dataclass(frozen=True)
class Names:
    """The names a text types (casefolded), for the caller to look up in one round trip."""

    lists: frozenset[str]
    people: frozenset[str]


@dataclass(frozen=True)
class Directory:
    """What the caller may name: lists it may add tasks to (casefolded name -> id), and per
    list (None: no list, the caller alone) its members (casefolded handle -> user id)."""

    lists: Mapping[str, int]
    members: Mapping[int | None, Mapping[str, str]]


@dataclass(frozen=True)
class Reading:
    """A task as read from a line: a `date` due is a day, a `datetime` due an aware instant."""

    title: str
    due: date | datetime | None
    recurrence: str | None
    priority: str | None
    tags: tuple[str, ...]
    list_id: int | None
    assignees: tuple[str, ...]
    tokens: tuple[Token, ...]
