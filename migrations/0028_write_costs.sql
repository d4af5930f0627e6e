-- depends: 0027_outcome_columns
-- What a write pays for (issue 37; specs/statements.md, "What a write pays for"): every
-- index a task write maintains is read by some query's plan, and every row trigger calls its
-- function only for a change it acts on.
--
-- 1. `uq_task_events_event_id` goes. No statement looks an event up by `event_id` (the
--    outbox, the change feed, pruning and the dead letters read by id, user, state and age:
--    tests/test_query_plans.py shows each remaining index in a plan), yet every change's
--    INSERT paid for a unique check and an entry at a random place of a B-tree of random
--    UUIDs. The id is still `gen_random_uuid()`: 122 random bits, as unique as every
--    Standard Webhooks id is (the contract, specs/events.md, never relied on the index).
-- 2. The change's event fires on UPDATE only for a change: the subtask counts' UPDATE of a
--    parent (migration 0024: the counts changed, the version did not) no longer calls
--    `task_events_record()` to return at once. INSERT and DELETE keep the trigger they had;
--    the UPDATE trigger's name keeps its place in the firing order (after
--    `tasks_count_subtasks_on_update`, before `tasks_reopen_parent_on_update` and
--    `tasks_subtasks_complete`, so a parent's change is still recorded before its cascade's).
-- 3. `ix_rate_limits_window_end` goes. The clean-up it was made for compares `window_end` with
--    `clock_timestamp()`, which is volatile: no index can serve that condition, and the plan
--    was always a scan of the table (tests/test_query_plans.py shows it with the index there);
--    the write count reads by key. Every new window's upsert still paid an entry in it.

ALTER TABLE task_events DROP CONSTRAINT uq_task_events_event_id;

DROP TRIGGER tasks_record_event ON tasks;
CREATE TRIGGER tasks_record_event AFTER INSERT OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_events_record();
CREATE TRIGGER tasks_record_event_on_update AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (
        NEW.version <> OLD.version
        OR (NEW.subtask_count = OLD.subtask_count
            AND NEW.open_subtask_count = OLD.open_subtask_count)
    )
    EXECUTE FUNCTION task_events_record();

DROP INDEX ix_rate_limits_window_end;
