-- Back to 0009's unique constraint over every row.
DROP INDEX uq_tasks_previous_task_id;
ALTER TABLE tasks ADD CONSTRAINT uq_tasks_previous_task_id UNIQUE (previous_task_id);
