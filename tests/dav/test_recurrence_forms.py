"""Recurring completions over CalDAV (backend/dav/recurrence_forms.py; specs/caldav.md): each
client's form, written through the task service on the real database, ends as one completed
occurrence and one open one, also when replayed or when its two PUTs come in either order. And
the merge over rows the service wrote: a REST edit keeps what the client sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.dav.recurrence_forms import (
    Form,
    Resolution,
    apply,
    classify,
    classify_copy,
    match_completed_copy,
)
from backend.ical.vtodo import ParsedTodo, parse, render
from backend.models import TaskCreate, TaskRow, TaskUpdate
from backend.models.task_calendar import rule_key
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_listing import TaskFilters, TaskListQuery
from backend.services.unit_of_work import UnitOfWork

FIXTURES = Path(__file__).parent / "fixtures"
SUBJECT = "caldav-forms"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _work(engine: Engine, settings: Settings) -> UnitOfWork:
    claims = TokenClaims(subject=SUBJECT, local=False)
    return UnitOfWork(engine, settings, claims=claims, counts_write=True)


def _create(engine: Engine, settings: Settings, parsed: ParsedTodo) -> TaskRow:
    with _work(engine, settings) as work:
        return work.service(TaskService).create(TaskCreate.model_validate(parsed.create_fields()))


def _series(engine: Engine, settings: Settings, task: TaskRow) -> list[TaskRow]:
    """Every occurrence of `task`'s series, oldest first."""
    with _work(engine, settings) as work:
        page = work.service(TaskService).list_page(
            TaskListQuery(filters=TaskFilters(recurring=True), limit=50)
        )
    return sorted(
        (row for row in page.items if row.series_id == task.series_id), key=lambda r: r.id
    )


def _put(engine: Engine, settings: Settings, task_id: int, body: bytes) -> tuple[Form, Any]:
    """A PUT on the resource of `task_id`: read, classify, apply (one unit of work); then the
    next occurrence its completion inserted, read afterwards."""
    with _work(engine, settings) as work:
        stored = work.service(TaskService).get(task_id)
        parsed = parse(body, zone=stored.time_zone)
        resolution = classify(stored, parsed)
        task = apply(work, stored, resolution)
    with _work(engine, settings) as work:
        successor = work.service(TaskService).successor(task_id)
    return resolution.form, Outcome(task, successor, resolution)


@dataclass(frozen=True)
class Outcome:
    task: TaskRow
    successor: TaskRow | None
    resolution: Resolution


def _one_done_one_open(rows: list[TaskRow]) -> tuple[TaskRow, TaskRow]:
    assert [r.completed for r in rows] == [True, False], [(r.id, r.completed) for r in rows]
    return rows[0], rows[1]


def test_thunderbird_override(db_engine: Engine, settings: Settings) -> None:
    task = _create(db_engine, settings, parse(fixture("thunderbird.ics")))
    assert task.due_date == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

    form, applied = _put(db_engine, settings, task.id, fixture("thunderbird_completed.ics"))

    assert form is Form.OVERRIDE_COMPLETED
    done, open_ = _one_done_one_open(_series(db_engine, settings, task))
    assert (done.id, applied.task.id) == (task.id, task.id)
    assert applied.successor is not None and applied.successor.id == open_.id
    assert open_.due_date == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # next Monday 09:00
    # The client's object now serves the open occurrence, with the completed override inside
    # it as sent (the completed occurrence is served there, no object of its own over DAV).
    kept = parse(fixture("thunderbird_completed.ics")).keep
    served = render(open_, kept, open_.reminders).decode()
    [override] = [c for c in served.split("BEGIN:VTODO")[1:] if "RECURRENCE-ID" in c]
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20261130T090000" in override
    assert "STATUS:COMPLETED" in override
    master = next(c for c in served.split("BEGIN:VTODO")[1:] if "RECURRENCE-ID" not in c)
    assert "DUE;TZID=Europe/Berlin:20261207T090000" in master
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO" in served and "X-MOZ-GENERATION:3" in served
    # The completed occurrence is a task of its own under its own UID, without the rule.
    completed = render(done, None, []).decode()
    assert f"UID:task-{done.id}@task-api" in completed and "RRULE" not in completed

    # The same PUT again (a retry; no If-Match): nothing reopens, nothing moves back.
    form, _ = _put(db_engine, settings, open_.id, fixture("thunderbird_completed.ics"))
    assert form is Form.SERIES_BEHIND
    done_again, open_again = _one_done_one_open(_series(db_engine, settings, task))
    assert open_again.due_date == open_.due_date and done_again.id == done.id


def test_thunderbird_completing_the_master(db_engine: Engine, settings: Settings) -> None:
    task = _create(db_engine, settings, parse(fixture("thunderbird.ics")))
    body = fixture("thunderbird.ics").replace(
        b"STATUS:NEEDS-ACTION", b"STATUS:COMPLETED\r\nCOMPLETED:20261130T101500Z"
    )
    form, outcome = _put(db_engine, settings, task.id, body)
    # A master's STATUS is the whole recurrence set's (RFC 5545): the series ends, the task
    # completed and no next occurrence (one occurrence is completed by the other forms).
    assert form is Form.MASTER_COMPLETED
    [done] = _rows(db_engine, settings, task)
    assert done.completed and done.recurrence is None
    assert _series(db_engine, settings, task) == []  # no next occurrence
    assert outcome.successor is None
    # The object stays the task's, served as the client sent it: completed, with its rule.
    served = render(done, parse(body).keep, [])
    lines = served.decode().split("\r\n")
    assert "STATUS:COMPLETED" in lines and "RRULE:FREQ=WEEKLY;BYDAY=MO" in lines
    # The same PUT again (a retry): the series stays ended, nothing reopens or recurs.
    form, outcome = _put(db_engine, settings, task.id, body)
    assert form is Form.PLAIN and outcome.successor is None
    [again] = _rows(db_engine, settings, task)
    assert again.completed and again.recurrence is None
    assert _series(db_engine, settings, task) == []


def _rows(engine: Engine, settings: Settings, *tasks: TaskRow) -> list[TaskRow]:
    """The tasks as stored now (a series that ended is no series: `_series` misses it)."""
    with _work(engine, settings) as work:
        return [work.service(TaskService).get(task.id) for task in tasks]


def _advanced(days: str, extra: bytes = b"") -> bytes:
    """Tasks.org's PUT after completing: DUE and DTSTART moved to `days`, NEEDS-ACTION."""
    return (
        fixture("tasks_org.ics")
        .replace(b"DUE;VALUE=DATE:20261122", b"DUE;VALUE=DATE:" + days.encode())
        .replace(b"DTSTART;VALUE=DATE:20261122", b"DTSTART;VALUE=DATE:" + days.encode() + extra)
    )


def test_tasks_org_due_advanced(db_engine: Engine, settings: Settings) -> None:
    task = _create(db_engine, settings, parse(fixture("tasks_org.ics")))
    assert task.next_due_date == datetime(2026, 11, 24, tzinfo=UTC)

    form, applied = _put(db_engine, settings, task.id, _advanced("20261124"))

    assert form is Form.DUE_ADVANCED
    done, open_ = _one_done_one_open(_series(db_engine, settings, task))
    assert done.due_date == datetime(2026, 11, 22, tzinfo=UTC)
    assert open_.due_date == datetime(2026, 11, 24, tzinfo=UTC)
    assert applied.successor is not None and applied.successor.id == open_.id
    # Tasks.org sends no If-Match: the same PUT again, on the open occurrence, changes nothing.
    form, _ = _put(db_engine, settings, open_.id, _advanced("20261124"))
    assert form is Form.PLAIN
    _, still_open = _one_done_one_open(_series(db_engine, settings, task))
    assert still_open.due_date == open_.due_date


def test_tasks_org_repeat_after_completion(db_engine: Engine, settings: Settings) -> None:
    task = _create(db_engine, settings, parse(fixture("tasks_org.ics")))
    # Off the rule (the 25th; the series has the 24th), but a COMPLETED time lingers.
    body = _advanced("20261125", b"\r\nCOMPLETED:20261123T070000Z")
    form, applied = _put(db_engine, settings, task.id, body)
    assert form is Form.DUE_ADVANCED
    later = applied.resolution.successor_update
    assert later is not None and later.model_fields_set == {"due_date"}
    _, open_ = _one_done_one_open(_series(db_engine, settings, task))
    assert open_.due_date == datetime(2026, 11, 25, tzinfo=UTC)


def test_a_postponement_completes_nothing(db_engine: Engine, settings: Settings) -> None:
    task = _create(db_engine, settings, parse(fixture("tasks_org.ics")))
    form, outcome = _put(db_engine, settings, task.id, _advanced("20261125"))
    assert form is Form.PLAIN and outcome.successor is None
    [moved] = _series(db_engine, settings, task)
    assert not moved.completed and moved.due_date == datetime(2026, 11, 25, tzinfo=UTC)


def _todoman(rrule: bool = True, due: bytes = b"20261215T180000") -> bytes:
    body = fixture("todoman.ics").replace(b"DUE:20261215T180000", b"DUE:" + due)
    if rrule:
        body = body.replace(b"SEQUENCE:0", b"SEQUENCE:0\r\nRRULE:FREQ=WEEKLY")
    return body


def _copy() -> bytes:
    """todoman's completed copy: a new UID, no RRULE, the old DUE, COMPLETED."""
    return (
        _todoman(rrule=False)
        .replace(b"UID:9a6c0d2b8f3e4a1c9d7e5b3a1f0c2e4d@vps.example", b"UID:copy-7f3e1d@vps")
        .replace(b"STATUS:NEEDS-ACTION", b"STATUS:COMPLETED\r\nCOMPLETED:20261215T190000Z")
        .replace(b"PERCENT-COMPLETE:0", b"PERCENT-COMPLETE:100")
    )


def _put_copy(engine: Engine, settings: Settings, task: TaskRow, body: bytes = b"") -> Form:
    """The copy's PUT: a new UID; the collection's recurring tasks are its candidates."""
    parsed = parse(body or _copy())
    candidates = _series(engine, settings, task)
    with _work(engine, settings) as work:
        occurrence = match_completed_copy(parsed, candidates)
        assert occurrence is not None
        resolution = classify_copy(occurrence, parsed)
        written = apply(work, occurrence, resolution)
    assert written.completed
    return resolution.form


def test_todoman_copy_then_master(db_engine: Engine, settings: Settings) -> None:
    task = _create(db_engine, settings, parse(_todoman()))
    assert _put_copy(db_engine, settings, task) is Form.COMPLETED_COPY
    _done, open_ = _one_done_one_open(_series(db_engine, settings, task))
    assert open_.due_date == datetime(2026, 12, 22, 18, 0, tzinfo=UTC)
    # Then the advanced master, on the open occurrence its object now belongs to.
    form, _ = _put(db_engine, settings, open_.id, _todoman(due=b"20261222T180000"))
    assert form is Form.PLAIN
    _one_done_one_open(_series(db_engine, settings, task))


def test_todoman_master_then_copy(db_engine: Engine, settings: Settings) -> None:
    task = _create(db_engine, settings, parse(_todoman()))
    form, _ = _put(db_engine, settings, task.id, _todoman(due=b"20261222T180000"))
    assert form is Form.DUE_ADVANCED
    _one_done_one_open(_series(db_engine, settings, task))
    assert _put_copy(db_engine, settings, task) is Form.ADOPTED_COPY
    _one_done_one_open(_series(db_engine, settings, task))


def test_an_ordinary_new_task_is_no_copy() -> None:
    parsed = parse(fixture("jtx_board.ics"))
    assert match_completed_copy(parsed, []) is None


def test_a_task_that_does_not_recur_is_a_plain_update(
    db_engine: Engine, settings: Settings
) -> None:
    task = _create(db_engine, settings, parse(fixture("jtx_board.ics")))
    body = fixture("jtx_board.ics").replace(b"STATUS:IN-PROCESS", b"STATUS:COMPLETED")
    form, outcome = _put(db_engine, settings, task.id, body)
    assert form is Form.PLAIN and outcome.task.completed and outcome.successor is None


def test_a_rest_edit_keeps_what_the_client_sent(db_engine: Engine, settings: Settings) -> None:
    """The merge over real rows: the client's object, then a PATCH through the service."""
    parsed = parse(fixture("apple_reminders.ics"))
    task = _create(db_engine, settings, parsed)
    assert render(task, parsed.keep, task.reminders) == render(
        task, parsed.keep, task.reminders
    )  # deterministic: one state, one body, one ETag
    with _work(db_engine, settings) as work:
        edited = work.service(TaskService).update(
            task.id, TaskUpdate.model_validate({"title": "Pick up the blue coat"})
        )
    served = render(edited, parsed.keep, edited.reminders).decode()
    assert "SUMMARY:Pick up the blue coat" in served
    for line in (
        "X-APPLE-UNIVERSAL-ID:5E0A7C3D-1B2F-4E8A-A0C9-6D4F2B1E9A07",
        "X-APPLE-LOCAL-FLAGS;X-APPLE-SYNC=1:1",
        "DUE;TZID=Europe/Berlin:20261203T170000",
        "DESCRIPTION:Ticket 4471\\, blue coat",
        "UID:8D3A5C1E-2F7B-4B9A-9C61-3E2D7F0A4B11",
        "CREATED:20261120T081512Z",
    ):
        assert line in served.split("\r\n"), line
    assert "TRIGGER;RELATED=END:-PT15M" in served  # the reader's own reminder


def test_a_counted_series_completes_again_with_the_rule_as_served(
    db_engine: Engine, settings: Settings
) -> None:
    """A COUNT series' later occurrence is served with one UNTIL (a DATE: the series is on
    days, RFC 5545 3.8.5.3); Tasks.org sends that back
    with the next advance: it is the same rule (the series is not restarted), so the advance
    completes the second occurrence too."""
    counted = fixture("tasks_org.ics").replace(
        b"RRULE:FREQ=DAILY;INTERVAL=2", b"RRULE:FREQ=DAILY;INTERVAL=2;COUNT=5"
    )
    task = _create(db_engine, settings, parse(counted))
    _put(
        db_engine,
        settings,
        task.id,
        _advanced("20261124").replace(b"INTERVAL=2", b"INTERVAL=2;COUNT=5"),
    )
    _, open_ = _one_done_one_open(_series(db_engine, settings, task))
    served = render(open_, parse(counted).keep, [])
    rule = next(line for line in served.split(b"\r\n") if line.startswith(b"RRULE:"))
    assert set(rule[6:].split(b";")) == {b"FREQ=DAILY", b"INTERVAL=2", b"UNTIL=20261130"}
    # The client advances again, sending the rule as it was served.
    again = served.replace(b"DUE;VALUE=DATE:20261124", b"DUE;VALUE=DATE:20261126").replace(
        b"DTSTART;VALUE=DATE:20261124", b"DTSTART;VALUE=DATE:20261126"
    )
    form, outcome = _put(db_engine, settings, open_.id, again)
    assert form is Form.DUE_ADVANCED
    rows = _series(db_engine, settings, task)
    assert [r.completed for r in rows] == [True, True, False]
    assert rows[-1].due_date == datetime(2026, 11, 26, tzinfo=UTC)
    # The series goes on as set (not restarted with the UNTIL it was served with).
    assert rule_key(rows[-1].recurrence) == {"FREQ=DAILY", "INTERVAL=2", "COUNT=5"}
    assert rows[-1].series_start == task.series_start
    assert outcome.successor is not None and outcome.successor.id == rows[-1].id


# The `caldav` library's `complete(handle_rrule=True)` on its own test task (DTSTART + DURATION,
# no DUE: the due date is their sum), as its two modes send it (caldav 3.6.0,
# `_complete_recurring_safe` and `_complete_recurring_thisandfuture`).
_TRASH = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Corp.//CalDAV Client//EN\r\n"
    "BEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20221013T151313Z\r\n{when}{status}"
    "SUMMARY:Take out the trash\r\n{rule}END:VTODO\r\n{more}END:VCALENDAR\r\n"
)
_RULE = "RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=6;BYMINUTE=55;COUNT={count}\r\n"


def _trash(
    start: str = "20221017T065500Z",
    *,
    due: str = "",
    count: int | None = 3,
    done: bool = False,
    uid: str = "takeoutthethrash",
    more: str = "",
) -> bytes:
    """The task (DURATION:PT10M), or the library's next state of it: DUE in place of the
    DURATION once it advanced DTSTART (`set_duration(movable_attr="DUE")`)."""
    when = f"DTSTART:{start}\r\n" + (f"DUE:{due}\r\n" if due else "DURATION:PT10M\r\n")
    status = "STATUS:COMPLETED\r\nCOMPLETED:20261127T120000Z\r\n" if done else ""
    status = status or "STATUS:NEEDS-ACTION\r\n"
    rule = "" if count is None else _RULE.format(count=count)
    return _TRASH.format(uid=uid, when=when, status=status, rule=rule, more=more).encode()


def test_the_caldav_librarys_safe_mode_to_the_end_of_its_count(
    db_engine: Engine, settings: Settings
) -> None:
    """Safe mode: a completed copy (new UID, no RRULE) and the master with DTSTART advanced,
    DUE = DTSTART + the duration, COUNT one less; at COUNT=1, a plain `complete()`. Each step
    is one completed occurrence and one open one; the last ends the series."""
    task = _create(db_engine, settings, parse(_trash()))
    assert task.due_date == datetime(2022, 10, 17, 7, 5, tzinfo=UTC)  # DTSTART + DURATION
    assert task.recurrence is not None
    copy = _trash(count=None, done=True, uid="copy-1")
    assert _put_copy(db_engine, settings, task, copy) is Form.COMPLETED_COPY
    _, open_ = _one_done_one_open(_series(db_engine, settings, task))
    master = _trash("20261130T065500Z", due="20261130T070500Z", count=2)
    form, _ = _put(db_engine, settings, open_.id, master)
    assert form is Form.PLAIN  # a new COUNT: the series starts again at the new DUE
    _, open_ = _one_done_one_open(_series(db_engine, settings, task))
    assert open_.due_date == datetime(2026, 11, 30, 7, 5, tzinfo=UTC)

    copy = _trash("20261130T065500Z", due="20261130T070500Z", count=None, done=True, uid="c-2")
    assert _put_copy(db_engine, settings, task, copy) is Form.COMPLETED_COPY
    rows = _series(db_engine, settings, task)
    assert [r.completed for r in rows] == [True, True, False]
    # COUNT=1: a series of one, this occurrence; the task holds no rule for it.
    last = _trash("20261207T065500Z", due="20261207T070500Z", count=1)
    form, outcome = _put(db_engine, settings, rows[-1].id, last)
    assert form is Form.PLAIN and outcome.successor is None
    assert outcome.task.due_date == datetime(2026, 12, 7, 7, 5, tzinfo=UTC)
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=6;BYMINUTE=55;COUNT=1" in render(
        outcome.task, parse(last).keep, []
    ).decode().split("\r\n")  # served as sent
    # The library's last `complete()`: the master STATUS:COMPLETED, COUNT=1.
    end = _trash("20261207T065500Z", due="20261207T070500Z", count=1, done=True)
    _put(db_engine, settings, rows[-1].id, end)
    rows = _rows(db_engine, settings, *rows)
    assert [r.completed for r in rows] == [True, True, True]
    assert [r.completed for r in _series(db_engine, settings, task)] == [True, True]


def test_the_caldav_librarys_thisandfuture_mode(db_engine: Engine, settings: Settings) -> None:
    """Thisandfuture mode: the master unchanged, a completed override whose RECURRENCE-ID is
    the occurrence's DTSTART (RFC 5545 3.8.4.4) and which keeps its DUE (here DTSTART +
    DURATION), and a RANGE=THISANDFUTURE override for the rest: OVERRIDE_COMPLETED."""
    task = _create(db_engine, settings, parse(_trash()))
    done = (
        "BEGIN:VTODO\r\nUID:takeoutthethrash\r\nDTSTART:20221017T065500Z\r\n"
        "DURATION:PT10M\r\nSTATUS:COMPLETED\r\nCOMPLETED:20261127T120000Z\r\n"
        "SUMMARY:Take out the trash\r\nRECURRENCE-ID:20221017T065500Z\r\nSEQUENCE:1\r\n"
        "END:VTODO\r\n"
    )
    future = (
        "BEGIN:VTODO\r\nUID:takeoutthethrash\r\nDTSTART:20261130T065500Z\r\n"
        "DUE:20261130T070500Z\r\nSTATUS:NEEDS-ACTION\r\nSUMMARY:Take out the trash\r\n"
        "RECURRENCE-ID;RANGE=THISANDFUTURE:20221024T065500Z\r\nSEQUENCE:2\r\nEND:VTODO\r\n"
    )
    form, outcome = _put(db_engine, settings, task.id, _trash(more=done + future))
    assert form is Form.OVERRIDE_COMPLETED
    completed, open_ = _one_done_one_open(_series(db_engine, settings, task))
    assert completed.id == task.id and outcome.successor is not None
    assert outcome.successor.id == open_.id
    # The same PUT again (a retry): nothing more completes.
    _put(db_engine, settings, open_.id, _trash(more=done + future))
    _one_done_one_open(_series(db_engine, settings, task))


def test_the_caldav_librarys_thisandfuture_mode_to_the_end_of_its_count(
    db_engine: Engine, settings: Settings
) -> None:
    """The library's later calls on its own copy (it never reads ours back): each adds a
    completed override named from its own earlier ones, and at the end of the COUNT sends the
    master COMPLETED: the whole recurrence set is, so the series ends there (no occurrence
    left open)."""
    task = _create(db_engine, settings, parse(_trash()))

    def override(start: str, due: str, rid: str, rest: str) -> str:
        return (
            f"BEGIN:VTODO\r\nUID:takeoutthethrash\r\nDTSTART:{start}\r\n{due}"
            f"STATUS:COMPLETED\r\nCOMPLETED:20261128T100000Z\r\nSUMMARY:Take out the trash\r\n"
            f"RECURRENCE-ID{rest}:{rid}\r\nEND:VTODO\r\n"
        )

    first = override("20221017T065500Z", "DURATION:PT10M\r\n", "20221017T065500Z", "")
    second = override("20261130T065500Z", "DUE:20261130T070500Z\r\n", "20221024T065500Z", "")
    third = override("20261207T065500Z", "DUE:20261207T070500Z\r\n", "20261207T065500Z", "")
    form, outcome = _put(db_engine, settings, task.id, _trash(more=first))
    assert form is Form.OVERRIDE_COMPLETED and outcome.successor is not None
    # Its second names the occurrence by its DTSTART (the RECURRENCE-ID), its DUE moved.
    form, outcome = _put(db_engine, settings, outcome.successor.id, _trash(more=first + second))
    assert form is Form.OVERRIDE_COMPLETED and outcome.successor is not None
    # The last call: the master COMPLETED beside three completed overrides, the third named
    # from the library's own dates (no occurrence of ours).
    form, outcome = _put(
        db_engine, settings, outcome.successor.id, _trash(done=True, more=first + second + third)
    )
    assert form is Form.MASTER_COMPLETED and outcome.successor is None
    assert outcome.task.completed and outcome.task.recurrence is None
    assert [r.completed for r in _series(db_engine, settings, task)] == [True, True]
