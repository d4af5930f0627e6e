"""The benchmark's baseline signs cursors with `scripts/bench/cursors.py`, a copy of
the API's signing that imports nothing of the API: it must give the API's exact bytes (and so
cursors the API accepts), or the validation before timing fails on every listing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend.api.pagination import (
    decode_changes_cursor,
    decode_cursor,
    encode_changes_cursor,
    encode_cursor,
)
from backend.models import TaskStatus
from backend.services.tasks.task_listing import Keyset, TaskFilters, TaskListQuery
from scripts.bench import cursors

SECRET = "bench-cursor-test-secret-0123456789abcdef"
KEY = datetime(2026, 11, 23, 13, 59, 15, 891541, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "q"),
    [("all", None), ("pending", "invoice"), ("completed", 'Überweisung "%_\\'), ("all", "x")],
)
@pytest.mark.parametrize("feed", [0, 7, 2**53])
def test_listing_cursor_is_the_apis(status: str, q: str | None, feed: int) -> None:
    query = TaskListQuery(filters=TaskFilters(status=TaskStatus(status), q=q))
    assert cursors.list_fingerprint(status, q) == query.filters.fingerprint()
    ours = cursors.encode_cursor(
        SECRET, "user-7", cursors.list_fingerprint(status, q), KEY, 42, feed
    )
    assert ours == encode_cursor(SECRET, "user-7", query, Keyset(key=KEY, id=42), feed)
    assert decode_cursor(SECRET, "user-7", query, ours) == (Keyset(key=KEY, id=42), feed)


@pytest.mark.parametrize("position", [0, 1, 123_456_789])
def test_changes_cursor_is_the_apis(position: int) -> None:
    ours = cursors.encode_changes_cursor(SECRET, "user-7", position)
    assert ours == encode_changes_cursor(SECRET, "user-7", position)
    assert decode_changes_cursor(SECRET, "user-7", ours) == position
