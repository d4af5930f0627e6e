"""The task-page encoder prints exactly what `TaskListEnvelope` prints, for any row."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Boolean, DateTime, Integer

from backend.api.encoding import encode_task_page
from backend.models import Priority, TaskPublic
from backend.models.envelopes import TaskListEnvelope, TaskListMeta
from backend.models.task import MinutesBeforeDue, ReminderAt, reminders_json
from backend.recurrence import TIME_ZONES
from backend.services.tasks.task_statements import TASK_VIEW

# A page row: every column of `tasks` and the computed counts, then the listing's sort key.
Row = namedtuple("Row", [*(column.key for column in TASK_VIEW), "sort_key"])  # type: ignore[misc]


def test_the_rows_have_the_tables_columns() -> None:
    assert Row._fields[:-1] == tuple(column.key for column in TASK_VIEW)


instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)
text = st.text(min_size=0, max_size=40)
# Columns whose values follow a rule of their own; any other column gets values of its type
# (`_of_type`), so a column added later is covered without editing this file.
SPECIAL = {
    "id": st.integers(1, 2**53),
    "priority": st.sampled_from(list(Priority)),
    "due_date": st.none() | instants | st.just(datetime.now(UTC) + timedelta(days=1)),
    "tags": st.lists(text, max_size=3),
    "assignees": st.lists(text, max_size=3),
    "version": st.integers(1, 10),
    "recurrence": st.none() | st.sampled_from(["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TH"]),
    "time_zone": st.sampled_from(TIME_ZONES),
    # As stored: the JSON the service writes (`reminders_json`).
    "reminders": st.lists(
        st.builds(MinutesBeforeDue, minutes_before_due=st.integers(0, 40320))
        | st.builds(ReminderAt, at=instants),
        max_size=5,
    ).map(reminders_json),
    "series_id": st.none() | st.uuids().map(str),
    "position": st.integers(-(2**62), 2**62),
    "subtask_count": st.integers(0, 200),
    "open_subtask_count": st.integers(0, 200),
    "sort_key": st.none(),
}


def _of_type(column: Any) -> st.SearchStrategy[Any]:
    kind = column.type
    base: st.SearchStrategy[Any]
    if isinstance(kind, Boolean):
        base = st.booleans()
    elif isinstance(kind, Integer):
        base = st.integers(1, 2**53)
    elif isinstance(kind, DateTime):
        base = instants
    else:
        base = text
    return st.none() | base if getattr(column, "nullable", False) else base


rows = st.builds(
    Row,
    **{c.key: SPECIAL[c.key] if c.key in SPECIAL else _of_type(c) for c in TASK_VIEW},
    sort_key=SPECIAL["sort_key"],
)
metas = st.builds(
    TaskListMeta,
    count=st.integers(0, 500),
    limit=st.integers(1, 500),
    has_more=st.booleans(),
    next_cursor=st.none() | text,
    total=st.none() | st.integers(0, 10**6),
    changes_cursor=text,
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(rows, max_size=5), meta=metas)
def test_encoder_bytes_equal_the_models(items: list[Row], meta: TaskListMeta) -> None:
    expected = TaskListEnvelope(
        data=[TaskPublic.model_validate(row) for row in items], meta=meta
    ).model_dump_json(by_alias=True)
    assert encode_task_page(items, meta).decode() == expected
