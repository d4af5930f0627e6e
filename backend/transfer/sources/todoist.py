"""Todoist: a project CSV ("Export as CSV", also each file of a backup), or a backup zip of
them. Columns are read by header name in any order; only `TYPE` and `CONTENT` are needed.
Dates are Todoist's natural language, read with quick add's grammar (`backend.quickadd`): what
it cannot read whole is kept as the description's last line. The CSV has no ids: a task's key
is what the row says (its list, its ancestors' contents, its content and how many rows before
it said the same), so the same file read again gives the same keys."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from backend.models.types import Tag
from backend.quickadd import Directory, QuickAddError
from backend.quickadd import read as read_line
from backend.transfer.plan import NotThisSource, Plan, PlannedComment, PlannedList, PlannedTask
from backend.transfer.sources import zips
from backend.transfer.sources.common import (
    arrange,
    head_text,
    known_zone,
    records,
    text_of,
)

PRIORITIES = {"1": "high", "2": "medium", "3": "low", "4": "none", "": "none"}
INBOX = "Inbox"
_BRACKETED = re.compile(r"^(?P<name>.*?)\s*\[(?P<id>[^\[\]]+)\]$")
_LABEL = re.compile(r"(?<!\S)@([^\s@]+)")
_FILE = re.compile(r"\[\[file\s*(\{.*?\})\s*\]\]", re.DOTALL)
_TAG = TypeAdapter(Tag)
_NO_NAMES = Directory(lists={}, members={})
_PLACEHOLDER = "task"  # the title a date phrase is read after (quick add needs one)

LOST_DATE = "Todoist date phrase kept as text in the description"
LOST_LANGUAGE = "Todoist date in a language other than English (kept as text in the description)"
LOST_AUTHOR = "Todoist author (not a user here)"
LOST_RESPONSIBLE = "Todoist assignee (not a user here)"
LOST_DEADLINE = "Todoist deadline"
LOST_DURATION = "Todoist duration"
LOST_FILE = "Todoist file attachment (link kept)"
# `every!` repeats from the day a task is completed; a series here repeats on its own schedule.
LOST_FROM_COMPLETION = "Todoist `every!` (from completion) read as `every` (on schedule)"
_FROM_COMPLETION = "every!"


def looks_like(data: bytes, file_name: str) -> bool:
    if zips.is_zip(data):
        try:
            found = [n for n in zips.names(data) if n.lower().endswith(".csv")]
            if not found:
                return False
            first = zips.members(data, wanted=lambda name: name == found[0])[found[0]]
        except NotThisSource:
            return False
        return _has_header(head_text(first))
    return _has_header(head_text(data))


def _has_header(head: str) -> bool:
    first = head.splitlines()[0] if head.strip() else ""
    columns = {c.strip().strip('"').upper() for c in first.split(",")}
    return {"TYPE", "CONTENT"} <= columns


def read(data: bytes, file_name: str, zone: str, *, now: datetime | None = None) -> Plan:
    """`now`: when relative phrases (`every monday`) are counted from (default: now)."""
    plan = Plan(source="todoist")
    zone = known_zone(zone) or "UTC"
    clock = now or datetime.now(UTC)
    tasks: list[PlannedTask] = []
    if zips.is_zip(data):
        files = zips.members(data, wanted=lambda name: name.lower().endswith(".csv"))
        if not files:
            raise NotThisSource("file", "The zip holds no Todoist project CSV")
        for member, content in files.items():
            base = member.rsplit("/", 1)[-1]
            _read_csv(plan, tasks, content, base, f"{member}: ", zone, clock)
    else:
        _read_csv(plan, tasks, data, file_name, "", zone, clock)
    arrange(plan, tasks)
    return plan


def list_of(file_name: str) -> tuple[str, str] | None:
    """The list a file is (key, name): `Name [id].csv` is `Name` (key `id`), `Inbox.csv` none,
    any other file its name without `.csv`."""
    base = file_name.rsplit("/", 1)[-1]
    stem = base[:-4] if base.lower().endswith(".csv") else base
    stem = stem.strip()
    if stem == INBOX or not stem:
        return None
    bracketed = _BRACKETED.match(stem)
    if bracketed and bracketed["name"].strip():
        return bracketed["id"].strip(), bracketed["name"].strip()
    return stem, stem


def _read_csv(
    plan: Plan,
    tasks: list[PlannedTask],
    data: bytes,
    file_name: str,
    prefix: str,
    zone: str,
    now: datetime,
) -> None:
    where = prefix.removesuffix(": ") or "file"
    text = text_of(data, where)
    rows = records(text)
    header: list[str] | None = None
    header_line = 1
    for line, row in rows:
        if any(cell.strip() for cell in row):
            header, header_line = [cell.strip().upper() for cell in row], line
            break
    if header is None:
        raise NotThisSource(where, "The file is empty")
    if "TYPE" not in header or "CONTENT" not in header:
        raise NotThisSource(
            f"{prefix}line {header_line}", "No TYPE and CONTENT columns: not a Todoist CSV"
        )
    columns = {name: index for index, name in reversed(list(enumerate(header)))}
    listed = list_of(file_name)
    list_key = None
    if listed is not None:
        list_key = listed[0]
        if all(existing.key != list_key for existing in plan.lists):
            plan.lists.append(PlannedList(key=listed[0], name=listed[1]))
    reader = _Rows(plan, tasks, columns, list_key, prefix, zone, now)
    for line, row in rows:
        reader.row(line, row)


class _Rows:
    """One CSV's rows, read in order: the section they are under, the tasks above (by indent)."""

    def __init__(
        self,
        plan: Plan,
        tasks: list[PlannedTask],
        columns: dict[str, int],
        list_key: str | None,
        prefix: str,
        zone: str,
        now: datetime,
    ) -> None:
        self.plan, self.tasks, self.columns = plan, tasks, columns
        self.list_key, self.prefix, self.zone, self.now = list_key, prefix, zone, now
        self.section: str | None = None
        # (indent, task, its content path's running hash): a path is never held whole (rows
        # nested thousands deep would hold each ancestor's content once per descendant).
        self.above: list[tuple[int, PlannedTask, Any]] = []
        self.last: PlannedTask | None = None
        self.seen: dict[str, int] = {}
        self.order = 0

    def cell(self, row: list[str], name: str) -> str:
        index = self.columns.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    def row(self, line: int, row: list[str]) -> None:
        if not any(cell.strip() for cell in row):
            return
        item = f"{self.prefix}line {line}"
        kind = self.cell(row, "TYPE").lower()
        content = self.cell(row, "CONTENT")
        if kind == "meta":
            return
        if kind == "section":
            self.section = content or None
            self.above = []
            self.last = None
            return
        if kind == "note":
            self.note(item, content)
            return
        if kind != "task":
            self.plan.warn(item, "TYPE", "unknown_type", f"A row of TYPE {kind!r} is not read")
            self.plan.skipped += 1
            return
        self.task(item, row, content)

    def note(self, item: str, content: str) -> None:
        if self.last is None:
            self.plan.warn(item, "CONTENT", "note_without_task", "A note with no task above it")
            self.plan.skipped += 1
            return
        if not content:
            return
        body = _FILE.sub(lambda found: self.attachment(found[1]), content)
        key = f"{self.last.key}/note/{len(self.last.comments)}"
        self.last.comments.append(PlannedComment(key=key, body=body))

    def attachment(self, raw: str) -> str:
        self.plan.lose(LOST_FILE, raw)
        try:
            described = json.loads(raw)
        except ValueError:
            return f"[[file {raw}]]"
        if not isinstance(described, dict):
            return f"[[file {raw}]]"
        parts = [str(described.get(k) or "") for k in ("file_name", "file_url")]
        return " ".join(part for part in parts if part) or f"[[file {raw}]]"

    def task(self, item: str, row: list[str], content: str) -> None:
        indent_text = self.cell(row, "INDENT")
        indent = 1
        if indent_text:
            # ASCII digits, few of them (`int` refuses `²`, and more than 4300 digits).
            short = indent_text.isascii() and indent_text.isdigit() and len(indent_text) <= 9
            if short and int(indent_text) >= 1:
                indent = int(indent_text)
            else:
                self.plan.warn(
                    item, "INDENT", "invalid_indent", f"INDENT {indent_text!r}: read as 1"
                )
        while self.above and self.above[-1][0] >= indent:
            self.above.pop()
        parent = self.above[-1] if self.above else None
        path = _extended(parent[2] if parent else None, self.list_key or "", content)
        named = path.hexdigest()
        occurrence = self.seen.get(named, 0)
        self.seen[named] = occurrence + 1
        key = _keyed(path, occurrence)

        labels = _LABEL.findall(content)
        title = " ".join(_LABEL.sub(" ", content).split())
        fields: dict[str, Any] = {"title": title}
        description = self.cell(row, "DESCRIPTION")
        tags = list(dict.fromkeys(labels))
        if self.section is not None:
            if self.valid_tag(self.section):
                tags.append(self.section)
            else:
                self.plan.warn(
                    item,
                    "tags",
                    "section_not_a_tag",
                    f"Its section {self.section!r} is not a valid tag: not kept",
                )
        if tags:
            fields["tags"] = tags
        priority = self.cell(row, "PRIORITY")
        if priority in PRIORITIES:
            fields["priority"] = PRIORITIES[priority]
        else:
            self.plan.warn(item, "PRIORITY", "invalid_priority", f"PRIORITY {priority!r}: none")
        kept_date = self.date(item, row, fields)
        if kept_date:
            description = f"{description}\n{kept_date}" if description else kept_date
        if description:
            fields["description"] = description
        for column, what in (("AUTHOR", LOST_AUTHOR), ("RESPONSIBLE", LOST_RESPONSIBLE)):
            if self.cell(row, column):
                self.plan.lose(what, self.cell(row, column))
        if self.cell(row, "DEADLINE"):
            self.plan.lose(LOST_DEADLINE, self.cell(row, "DEADLINE"))
        if self.cell(row, "DURATION"):
            unit = self.cell(row, "DURATION_UNIT")
            self.plan.lose(LOST_DURATION, f"{self.cell(row, 'DURATION')} {unit}".strip())
        task = PlannedTask(
            key=key,
            item=item,
            fields=fields,
            list_key=self.list_key,
            parent_key=parent[1].key if parent else None,
            order=float(self.order),
        )
        self.order += 1
        self.tasks.append(task)
        self.above.append((indent, task, path))
        self.last = task

    def valid_tag(self, name: str) -> bool:
        try:
            _TAG.validate_python(name)
        except ValidationError:
            return False
        return True

    def date(self, item: str, row: list[str], fields: dict[str, Any]) -> str | None:
        """Sets the due and recurrence `DATE` says; returns the line to keep in the description
        when it cannot be read."""
        phrase = " ".join(self.cell(row, "DATE").split())
        named = self.cell(row, "TIMEZONE")
        zone = known_zone(named) or self.zone
        if named and known_zone(named) is None:
            self.plan.warn(item, "TIMEZONE", "unknown_zone", f"TIMEZONE {named!r}: read in {zone}")
        fields["time_zone"] = zone
        if not phrase:
            return None
        language = self.cell(row, "DATE_LANG").lower()
        if language not in ("", "en"):
            self.plan.lose(LOST_LANGUAGE, f"{phrase} ({language})")
            return f"Todoist date: {phrase}"
        from_completion = phrase.lower().startswith(_FROM_COMPLETION)
        said = "every" + phrase[len(_FROM_COMPLETION) :] if from_completion else phrase
        read = _reading(said, zone, self.now)
        if read is None:
            self.plan.lose(LOST_DATE, phrase)
            return f"Todoist date: {phrase}"
        if from_completion:
            self.plan.lose(LOST_FROM_COMPLETION, phrase)
        due, recurrence = read
        fields["due_date"] = due
        if recurrence is not None:
            fields["recurrence"] = recurrence
        return None


def _extended(parent: Any, list_key: str, content: str) -> Any:
    """The running hash of a content path (its ancestors' contents and its own, joined by
    `\x1e`) as `digest(list_key, path, ...)` hashes it, from the parent's in time linear in
    `content` (`digest`'s escaping of `\x1f` is per character, so it extends)."""
    if parent is None:
        path = hashlib.sha256(_escaped(list_key).encode() + b"\x1f")
    else:
        path = parent.copy()
        path.update(b"\x1e")
    path.update(_escaped(content).encode())
    return path


def _keyed(path: Any, occurrence: int) -> str:
    """`digest(list_key, path, str(occurrence))` from the path's running hash."""
    whole = path.copy()
    whole.update(b"\x1f" + _escaped(str(occurrence)).encode())
    return str(whole.hexdigest()[:32])


def _escaped(part: str) -> str:
    return part.replace("\x1f", "\x1f\x1f")


def _reading(phrase: str, zone: str, now: datetime) -> tuple[date | datetime, str | None] | None:
    """The due and rule of a whole phrase as quick add reads it, or None when any of it is not
    a date, time or rule."""
    try:
        reading = read_line(
            f"{_PLACEHOLDER} {phrase}", now=now, zone=ZoneInfo(zone), directory=_NO_NAMES
        )
    except QuickAddError:
        return None
    kinds = {token.kind for token in reading.tokens}
    if reading.title != _PLACEHOLDER or not kinds <= {"due", "recurrence"} or reading.due is None:
        return None
    return reading.due, reading.recurrence
