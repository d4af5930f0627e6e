"""How CalDAV clients complete one occurrence of a recurring task, each shape resolved into
the service's own completion (specs/caldav.md, "Completing a recurring task": the forms, the
clients that send them, where the completed occurrence is served), so the end is always one
completed occurrence and one open one, never two open ones or a lost one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, cast

from backend.errors import PreconditionFailed
from backend.ical.vtodo import ParsedTodo
from backend.models.task import TaskUpdate, reminders_json
from backend.models.task_calendar import is_day, rule_key, served_rule
from backend.recurrence import Schedule, day_of, normalize_rule
from backend.services.calendar.dav_statements import completion_sent
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_placement import placement_of
from backend.services.tasks.task_schedule import SCHEDULE_FIELDS, Planned
from backend.services.tasks.task_statements import AS_SENT, PLACED
from backend.services.tasks.task_update import replanned, successor

if TYPE_CHECKING:
    from backend.models import TaskRow
    from backend.services.tasks.task_sending import Then
    from backend.services.unit_of_work import UnitOfWork

# What a completing form writes on the completed occurrence besides its completion: never its
# due date (that is the occurrence's identity) nor its rule (the series goes on unchanged).
_SCHEDULE = frozenset({"completed", "due_date", "recurrence", "time_zone", "reminders"})


class Form(StrEnum):
    PLAIN = "plain"
    SERIES_BEHIND = "series_behind"  # a client's older view of the series: schedule kept
    OVERRIDE_COMPLETED = "override_completed"
    DUE_ADVANCED = "due_advanced"
    COMPLETED_COPY = "completed_copy"
    MASTER_COMPLETED = "master_completed"
    ADOPTED_COPY = "adopted_copy"  # the copy of an occurrence completed already: no write


@dataclass(frozen=True)
class Resolution:
    """What one PUT becomes. `update`: the fields written on the stored task (a completing
    form's with `completed: true`); `successor_update`: what the PUT says of the next
    occurrence that the service's copy does not (new reminders, a due date off the rule);
    `keep_on`: which task the PUT's object belongs to afterwards."""

    form: Form
    update: TaskUpdate | None
    completes: bool
    successor_update: TaskUpdate | None = None
    keep_on: Literal["task", "successor"] = "task"
    completed_at: datetime | None = None  # the client's COMPLETED, where no series completes


def classify(stored: TaskRow, parsed: ParsedTodo) -> Resolution:
    """The form of a PUT on the resource of `stored` (the task its UID names)."""
    fields = parsed.fields
    if stored.recurrence is None or stored.completed or stored.due_date is None:
        return _plain(stored, parsed)
    due = stored.due_date
    if any(o.completed and due in (o.recurrence_id, o.due_date) for o in parsed.overrides):
        # The override names the occurrence by its DUE (Thunderbird), or by its DTSTART as
        # RFC 5545 3.8.4.4 says while keeping its DUE (the `caldav` library's thisandfuture).
        return _completing(Form.OVERRIDE_COMPLETED, stored, parsed)
    new_due = parsed.due_at  # a day as its start: compared with the stored instants
    same_rule = _same_rule(stored, fields.get("recurrence"))
    if (
        new_due is not None
        and new_due < due
        and any(o.completed and o.recurrence_id < due for o in parsed.overrides)
    ):
        if fields.get("completed") and same_rule:
            # The master completed as well (the `caldav` library's thisandfuture mode at the
            # end of a COUNT): the whole recurrence set is, whatever its overrides say.
            return _series_ended(parsed)
        # Thunderbird's series from before our last answer (a replay, or an edit made before
        # it synced): its completed occurrences are tasks here already; the schedule stays.
        values = {k: v for k, v in fields.items() if k not in _SCHEDULE or k == "reminders"}
        return Resolution(Form.SERIES_BEHIND, TaskUpdate.model_validate(values), completes=False)
    if fields.get("completed") and same_rule:
        return _series_ended(parsed)
    if fields.get("completed") or not same_rule or new_due is None or new_due <= due:
        return _plain(stored, parsed)
    # The next occurrence's due date, where the client moves it, as the client sent it (a day
    # or an instant: the service plans it as a PATCH of it).
    sent_due = fields.get("due_date")
    if new_due == stored.next_due_date or _on_series(stored, new_due):
        successor_due = None if new_due == stored.next_due_date else sent_due
        return _completing(Form.DUE_ADVANCED, stored, parsed, successor_due)
    if parsed.completed_at is not None:  # repeat from the completion date
        return _completing(Form.DUE_ADVANCED, stored, parsed, sent_due)
    return _plain(stored, parsed)  # a postponement


def unruled(parsed: ParsedTodo) -> Resolution:
    """`classify` of a PUT sending no rule on a task with none, for a write that knows this
    without reading the task (`dav_tags.vouched`): a PATCH of every field."""
    if parsed.fields.get("recurrence") is not None or parsed.overrides:
        raise ValueError("a PUT with a rule is classified against the stored task")
    update = TaskUpdate.model_validate(parsed.fields)
    return Resolution(Form.PLAIN, update, completes=False, completed_at=parsed.completed_at)


def is_completed_copy(parsed: ParsedTodo) -> bool:
    """Whether a PUT creating a new UID may be a completed copy of an occurrence (todoman,
    `caldav`): completed, no overrides, a due date."""
    fields = parsed.fields
    return bool(fields.get("completed")) and not parsed.overrides and parsed.due_at is not None


def match_completed_copy(parsed: ParsedTodo, candidates: Iterable[TaskRow]) -> TaskRow | None:
    """The recurring task among `candidates` (open or completed) a completed copy stands for:
    its SUMMARY and DUE. None: an ordinary new task."""
    if not is_completed_copy(parsed):
        return None
    fields = parsed.fields
    for task in candidates:
        if (
            task.recurrence is not None
            and task.title == fields["title"]
            and _copies_due(task, parsed)
        ):
            return task
    return None


def _copies_due(task: TaskRow, parsed: ParsedTodo) -> bool:
    """Whether the copy's DUE is the task's: a day by its date (the copy, a new UID, is read
    on no task's clock), an instant by itself."""
    sent = parsed.fields.get("due_date")
    if task.due_date is not None and is_day(task) and not isinstance(sent, datetime | None):
        return bool(day_of(task.due_date, task.time_zone) == sent)
    return task.due_date == parsed.due_at


def classify_copy(occurrence: TaskRow, parsed: ParsedTodo) -> Resolution:
    """The resolution of a completed copy `match_completed_copy` matched to `occurrence`."""
    if occurrence.completed:
        return Resolution(Form.ADOPTED_COPY, None, completes=False)
    return Resolution(Form.COMPLETED_COPY, _fields(parsed), completes=True, keep_on="task")


def apply(
    work: UnitOfWork, stored: TaskRow, resolution: Resolution, after: Then | None = None
) -> TaskRow:
    """Write `resolution` over `stored` at the version read, in one message of the task
    service's own statements (as a PATCH of it writes), a completion with the series' next
    occurrence exactly once (`after` then writes on it). `412` where the task is no longer
    the version read; the task the PUT named, as written."""
    change = resolution.update
    if change is None:  # ADOPTED_COPY: the occurrence is completed already
        return stored
    sent = change.model_fields_set
    placement = None if sent.isdisjoint(PLACED) else placement_of(change, None, stay=True)
    values = change.model_dump(exclude_unset=True, include=AS_SENT)
    if "completed" in sent:
        done = cast(bool, change.completed)
        values = {**values, **completion_sent(done, resolution.completed_at)}
    completed_as: TaskRow | Planned = stored
    if not sent.isdisjoint(SCHEDULE_FIELDS):
        values = replanned(change, values, stored, placement)
        completed_as = Planned(stored.id, values["due_date"], values)
    thens: tuple[Then, ...] = ()
    if values.get("completed") is True and not stored.completed:
        following = resolution.successor_update
        moved = {} if following is None else following.model_dump(exclude_unset=True)
        reminders = None
        if following is not None and "reminders" in moved:
            reminders = reminders_json(following.reminders or [])
        then = successor(completed_as, due=moved.get("due_date"), reminders=reminders)
        if then is not None:
            thens = (then,) if after is None else (then, after)
    tasks: TaskService = work.service(TaskService)
    written = tasks.write_over(stored, values, placement, thens)
    if written is None:
        raise PreconditionFailed()
    return written


def _fields(parsed: ParsedTodo, **more: Any) -> TaskUpdate:
    """The PUT's fields but its schedule and reminders, and `completed: true`: the occurrence
    completes (its reminders are the ones the next occurrence copies)."""
    values = {k: v for k, v in parsed.fields.items() if k not in _SCHEDULE}
    return TaskUpdate.model_validate({**values, "completed": True, **more})


def _completing(
    form: Form, stored: TaskRow, parsed: ParsedTodo, successor_due: Any = None
) -> Resolution:
    later: dict[str, Any] = {}
    sent = parsed.fields.get("reminders", [])
    if _reminders(sent) != _reminders(stored.reminders):
        later["reminders"] = sent
    if successor_due is not None:
        later["due_date"] = successor_due
    return Resolution(
        form,
        _fields(parsed),
        completes=True,
        successor_update=TaskUpdate.model_validate(later) if later else None,
        keep_on="successor",
    )


def _series_ended(parsed: ParsedTodo) -> Resolution:
    """`MASTER_COMPLETED`: the PUT's fields but the schedule, completed, the rule ended (no
    next occurrence: the service inserts one only for a task that keeps its rule)."""
    return Resolution(Form.MASTER_COMPLETED, _fields(parsed, recurrence=None), completes=True)


def _reminders(reminders: Any) -> list[dict[str, Any]]:
    """Reminders as stored (what the service returns), to compare sent ones with them."""
    return reminders_json(TaskUpdate.model_validate({"reminders": reminders}).reminders or [])


def _plain(stored: TaskRow, parsed: ParsedTodo) -> Resolution:
    """The PUT as a PATCH of every field; the rule left out when it is the stored one as we
    serve it: written, it would start the series again at the due date."""
    fields = parsed.fields
    ended = stored.completed and stored.recurrence is None and fields.get("completed")
    if ended or (stored.recurrence is not None and _same_rule(stored, fields.get("recurrence"))):
        # `ended`: a series completed as a whole stays ended when its object comes back.
        fields = {k: v for k, v in fields.items() if k != "recurrence"}
    # The client's completion time, where the write completes no series (one that would is
    # stamped now: that is how the service knows to add its next occurrence).
    at = parsed.completed_at if stored.recurrence is None and not fields.get("recurrence") else None
    update = TaskUpdate.model_validate(fields)
    return Resolution(Form.PLAIN, update, completes=False, completed_at=at)


def _same_rule(stored: TaskRow, sent: str | None) -> bool:
    """Whether `sent` is the stored rule, as stored or as `render` serves it, its parts in
    any order (icalendar writes them in its own)."""
    if sent is None and stored.next_due_date is None:
        return True  # the last occurrence sent back as a series of one (`vtodo._recurring`)
    if sent is None or stored.recurrence is None:
        return sent == stored.recurrence
    if rule_key(sent) == rule_key(stored.recurrence):
        return True
    if stored.series_start is None:
        return False
    served = served_rule(
        stored.recurrence, stored.time_zone, stored.series_start, bool(stored.all_day)
    )
    return rule_key(sent) == rule_key(normalize_rule(served))


def _on_series(stored: TaskRow, instant: Any) -> bool:
    """Whether `instant` is one of the series' due dates after the stored occurrence."""
    if stored.series_start is None or stored.due_date is None or stored.recurrence is None:
        return False
    schedule = Schedule.of(stored.recurrence, stored.time_zone, stored.series_start)
    for due in schedule.after(stored.due_date, 1000):
        if due >= instant:
            return bool(due == instant)
    return False
