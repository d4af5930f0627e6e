"""The import benchmark's Todoist backup (scripts/bench/imports.py) is one our reader takes
whole: every task it writes is read, none skipped or refused, so the benchmark times what it
says it times."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.transfer.sources import detect, todoist
from scripts.bench.imports import todoist_backup


def test_the_benchmarks_backup_reads_whole() -> None:
    data = todoist_backup(2_345)
    assert detect(data, "todoist-backup.zip") == "todoist"
    plan = todoist.read(data, "todoist-backup.zip", "UTC", now=datetime(2026, 11, 29, tzinfo=UTC))
    assert len(plan.tasks) == 2_345
    assert len(plan.lists) == 3
    # Projects of 1,000, 1,000 and 345 rows: a note on each one's every twentieth task
    assert sum(len(task.comments) for task in plan.tasks) == 50 + 50 + 18
    assert sum(task.parent_key is not None for task in plan.tasks) == 2_345 // 5
    assert plan.warnings == [] and plan.skipped == 0
