"""The task-page encoder prints exactly what `TaskListEnvelope` prints, for any row."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.api.encoding import encode_task_page
from backend.models import Priority, TaskPublic
from backend.models.envelopes import TaskListEnvelope, TaskListMeta
from backend.models.task import MinutesBeforeDue, ReminderAt, reminders_json
from backend.recurrence import TIME_ZONES
from backend.services.tasks import TASK_VIEW

Row = namedtuple(
    "Row",
    "id user_id title description completed completed_at priority due_date tags "
    "created_at updated_at version recurrence time_zone reminders series_id series_start "
    "next_due_date previous_task_id list_id parent_id position subtask_count "
    "open_subtask_count sort_key",
)


def test_the_rows_have_the_tables_columns() -> None:
    # The table's columns, then the subtask counts computed with them.
    assert Row._fields[:-1] == tuple(column.name for column in TASK_VIEW)


instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)
text = st.text(min_size=0, max_size=40)
rows = st.builds(
    Row,
    id=st.integers(1, 2**53),
    user_id=text,
    title=text,
    description=st.none() | text,
    completed=st.booleans(),
    completed_at=st.none() | instants,
    priority=st.sampled_from(list(Priority)),
    due_date=st.none() | instants | st.just(datetime.now(UTC) + timedelta(days=1)),
    tags=st.lists(text, max_size=3),
    created_at=instants,
    updated_at=instants,
    version=st.integers(1, 10),
    recurrence=st.none() | st.sampled_from(["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TH"]),
    time_zone=st.sampled_from(TIME_ZONES),
    # As stored: the JSON the service writes (`reminders_json`).
    reminders=st.lists(
        st.builds(MinutesBeforeDue, minutes_before_due=st.integers(0, 40320))
        | st.builds(ReminderAt, at=instants),
        max_size=5,
    ).map(reminders_json),
    series_id=st.none() | st.uuids().map(str),
    series_start=st.none() | instants,
    next_due_date=st.none() | instants,
    previous_task_id=st.none() | st.integers(1, 2**53),
    list_id=st.none() | st.integers(1, 2**53),
    parent_id=st.none() | st.integers(1, 2**53),
    position=st.integers(-(2**62), 2**62),
    subtask_count=st.integers(0, 200),
    open_subtask_count=st.integers(0, 200),
    sort_key=st.none(),
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
