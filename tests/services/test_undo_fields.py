"""What an undo writes back is derived from the field declarations (issue 60): `undo.RESTORED`
is every field a change records (`task_fields.FIELDS`, the columns of `tasks`) but those
`undo.NOT_RESTORED` names, so a field added by CLAUDE.md's "Add a field" is undone with the
others and nothing lists it twice."""

from __future__ import annotations

from backend.models import Task
from backend.models.task_fields import DERIVED, FIELDS, WRITABLE
from backend.services.tasks import undo

# What a change records of a task: the `tasks` trigger's `to_jsonb(NEW)` less the derived
# counts, then `version` and `updated_at` (they change with every update: migration 0034,
# `tasks_record_event`).
RECORDED = frozenset(Task.__table__.c.keys()) - {"version", "updated_at", *DERIVED}  # type: ignore[attr-defined]


def test_restored_is_every_recorded_field_but_the_named_ones() -> None:
    declared = {f.name for f in FIELDS}
    assert declared >= RECORDED, f"columns no field declares: {sorted(RECORDED - declared)}"
    assert set(undo.RESTORED) == RECORDED - undo.NOT_RESTORED
    assert undo.NOT_RESTORED <= RECORDED, "a name kept out that no change records"
    # In the declarations' order, each once.
    assert list(undo.RESTORED) == [f.name for f in FIELDS if f.name in undo.RESTORED]


def test_every_writable_field_is_undone_but_the_place_and_the_reminders() -> None:
    """A field a client writes is written back by an undo of an update; the place is moved
    back by the move's statement, the owner's reminders by the owner alone (`REMINDED`)."""
    assert set(WRITABLE) - set(undo.RESTORED) == {"list_id", "parent_id", "reminders"}
    assert set(undo.REMINDED) - set(undo.RESTORED) == {"reminders"}


def test_the_fields_restored_today() -> None:
    """The derivation gives the 14 fields the hand list named before it (issue 53), and
    `all_day` with `due_date` (issue 80)."""
    assert set(undo.RESTORED) == {
        "title",
        "description",
        "completed",
        "completed_at",
        "priority",
        "due_date",
        "all_day",
        "tags",
        "assignees",
        "recurrence",
        "time_zone",
        "series_id",
        "series_start",
        "next_due_date",
        "position",
    }
