"""TickTick: the backup CSV. Lines before the header (a BOM, `"Date: ..."`, `"Version: ..."`,
a quoted `"Status: ..."` cell spanning lines) are skipped by finding the first record that
names `List Name` and `Title`; columns are read by name. `Repeat` is already an RRULE,
`Reminder` an ISO 8601 duration from the due date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import vDuration

from backend.models.types import MINUTES_BEFORE_DUE_MAX, REMINDERS_MAX_COUNT
from backend.recurrence import DAY_ANCHOR
from backend.transfer.plan import NotThisSource, Plan, PlannedList, PlannedTask
from backend.transfer.sources.common import arrange, head_text, known_zone, records, text_of

PRIORITIES = {"0": "none", "1": "low", "3": "medium", "5": "high", "": "none"}
PRIORITIES |= {"p1": "high", "p2": "medium", "p3": "low", "p4": "none"}
STATUSES = {"0": False, "1": True, "2": True, "": False}
_ANCHOR = timedelta(hours=DAY_ANCHOR.hour, minutes=DAY_ANCHOR.minute)
_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
)

LOST_FOLDER = "TickTick folder (its lists are kept, not the folder)"
LOST_START = "TickTick start date"
LOST_CHECKLIST = "TickTick checklist items (kept as the description's text)"
LOST_COLUMN = "TickTick kanban column"


def looks_like(data: bytes, file_name: str) -> bool:
    head = head_text(data, 16384)
    return "List Name" in head and "Title" in head and ("taskId" in head or "Is All Day" in head)


def read(data: bytes, file_name: str, zone: str) -> Plan:
    plan = Plan(source="ticktick")
    zone = known_zone(zone) or "UTC"
    rows = records(text_of(data))
    columns: dict[str, int] | None = None
    for _line, row in rows:
        names = [cell.strip() for cell in row]
        if "List Name" in names and "Title" in names:
            columns = {name: index for index, name in reversed(list(enumerate(names)))}
            break
    if columns is None:
        raise NotThisSource(
            "file", "No header line with List Name and Title: not a TickTick backup"
        )
    tasks: list[PlannedTask] = []
    lists: dict[str, PlannedList] = {}
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        task = _task(plan, f"line {line}", _Row(columns, row), zone, lists)
        if task is not None:
            tasks.append(task)
    plan.lists.extend(lists.values())
    arrange(plan, tasks)
    return plan


class _Row:
    def __init__(self, columns: dict[str, int], row: list[str]) -> None:
        self.columns, self.row = columns, row

    def __getitem__(self, name: str) -> str:
        index = self.columns.get(name)
        return self.row[index].strip() if index is not None and index < len(self.row) else ""


def _task(
    plan: Plan, item: str, row: _Row, zone: str, lists: dict[str, PlannedList]
) -> PlannedTask | None:
    fields: dict[str, Any] = {"title": row["Title"]}
    key = row["taskId"] or item
    if not row["taskId"]:
        plan.warn(item, "taskId", "no_id", "A row with no taskId: keyed by its line")
    if row["Content"]:
        fields["description"] = row["Content"]
    tags = [tag.strip() for tag in row["Tags"].split(",") if tag.strip()]
    if tags:
        fields["tags"] = list(dict.fromkeys(tags))
    named = row["Timezone"]
    task_zone = known_zone(named) or zone
    if named and known_zone(named) is None:
        plan.warn(item, "Timezone", "unknown_zone", f"Timezone {named!r}: read in {task_zone}")
    fields["time_zone"] = task_zone
    due: date | datetime | None = None
    if row["Due Date"]:
        instant = _instant(row["Due Date"], task_zone)
        if instant is None:
            plan.warn(item, "Due Date", "invalid_date", f"Due Date {row['Due Date']!r} not read")
        elif row["Is All Day"].lower() == "true":
            due = instant.astimezone(ZoneInfo(task_zone)).date()
        else:
            due = instant
    if due is not None:
        fields["due_date"] = due
    if row["Repeat"]:
        rule = row["Repeat"]
        fields["recurrence"] = rule[6:] if rule.upper().startswith("RRULE:") else rule
    reminders = _reminders(plan, item, row["Reminder"], due, task_zone)
    if reminders:
        fields["reminders"] = reminders
    priority = row["Priority"].lower()
    if priority in PRIORITIES:
        fields["priority"] = PRIORITIES[priority]
    else:
        plan.warn(item, "Priority", "invalid_priority", f"Priority {priority!r}: none")
    status = row["Status"]
    completed_at = None
    if status not in STATUSES:
        plan.warn(item, "Status", "invalid_status", f"Status {status!r}: read as open")
    elif STATUSES[status]:
        fields["completed"] = True
        if row["Completed Time"]:
            completed_at = _instant(row["Completed Time"], task_zone)
            if completed_at is None:
                plan.warn(item, "Completed Time", "invalid_date", "Completed Time not read")
    if row["Folder Name"]:
        plan.lose(LOST_FOLDER, row["Folder Name"])
    if row["Start Date"]:
        plan.lose(LOST_START, row["Start Date"])
    if row["Kind"].upper() == "CHECKLIST" or row["Is Check list"].upper() == "Y":
        plan.lose(LOST_CHECKLIST, row["Title"])
    if row["Column Name"]:
        plan.lose(LOST_COLUMN, row["Column Name"])
    list_key = None
    if row["List Name"]:
        list_key = row["List Name"]
        lists.setdefault(list_key, PlannedList(key=list_key, name=list_key))
    order = None
    if row["Order"]:
        try:
            order = float(row["Order"])
        except ValueError:
            plan.warn(item, "Order", "invalid_order", f"Order {row['Order']!r} not read")
    return PlannedTask(
        key=key,
        item=item,
        fields=fields,
        list_key=list_key,
        parent_key=row["parentId"] or None,
        order=order,
        completed_at=completed_at,
    )


def _instant(text: str, zone: str) -> datetime | None:
    """`2018-12-11T23:00:00+0000` as written; `2026-02-27 14:59:52` on `zone`'s clock."""
    for form in _FORMATS:
        try:
            value = datetime.strptime(text, form)
        except ValueError:
            continue
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(zone))
        try:
            return value.astimezone(UTC)
        except OverflowError:  # past year 9999 or before year 1 in UTC
            return None
    return None


def _reminders(
    plan: Plan, item: str, text: str, due: date | datetime | None, zone: str
) -> list[dict[str, Any]]:
    """Each duration from the due date (a day's: from its start) as `minutes_before_due` when
    it is before the due within the limit (a day's: before 09:00), else as an instant."""
    found: list[dict[str, Any]] = []
    for one in (part.strip() for part in text.split(",")):
        if not one:
            continue
        try:
            offset = vDuration.from_ical(one)  # type: ignore[no-untyped-call]
        except ValueError:
            offset = None
        if not isinstance(offset, timedelta):
            plan.warn(item, "Reminder", "invalid_reminder", f"Reminder {one!r} not read")
            continue
        if due is None:
            plan.warn(item, "Reminder", "reminder_without_due", "A reminder with no due date")
            continue
        reminder: dict[str, Any]
        limit = timedelta(minutes=MINUTES_BEFORE_DUE_MAX)
        try:
            if isinstance(due, datetime):
                before, start = -offset, due
            else:
                before = _ANCHOR - offset
                start = datetime.combine(due, datetime.min.time(), ZoneInfo(zone))
                start = start.astimezone(UTC)
            if timedelta(0) <= before <= limit and not before.total_seconds() % 60:
                reminder = {"minutes_before_due": int(before.total_seconds() // 60)}
            else:
                reminder = {"at": start + offset}
        except OverflowError:  # an instant past year 9999 or before year 1
            plan.warn(item, "Reminder", "invalid_reminder", f"Reminder {one!r} not read")
            continue
        if reminder not in found:
            found.append(reminder)
    if len(found) > REMINDERS_MAX_COUNT:
        plan.warn(
            item, "Reminder", "too_many_reminders", f"Only the first {REMINDERS_MAX_COUNT} kept"
        )
    return found[:REMINDERS_MAX_COUNT]
