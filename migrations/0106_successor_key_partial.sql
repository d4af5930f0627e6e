-- depends: 0105_task_spaces_one_lock
-- `previous_task_id` unique where it is set (issue 83): a unique constraint's index holds an
-- entry for every row, NULL keys too, so every task's INSERT and every UPDATE that is not HOT
-- (all of them: `updated_at` is indexed) wrote an entry of NULL into it, though only a
-- recurring task's next occurrence has one. A partial unique index keeps the rule (one next
-- occurrence per occurrence; the successor's `INSERT ... ON CONFLICT (previous_task_id)
-- WHERE previous_task_id IS NOT NULL DO NOTHING` infers it) with an entry per successor only.
ALTER TABLE tasks DROP CONSTRAINT uq_tasks_previous_task_id;
CREATE UNIQUE INDEX uq_tasks_previous_task_id ON tasks (previous_task_id)
    WHERE previous_task_id IS NOT NULL;
