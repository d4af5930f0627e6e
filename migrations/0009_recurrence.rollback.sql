ALTER TABLE tasks
    DROP COLUMN previous_task_id,
    DROP COLUMN next_due_date,
    DROP COLUMN series_start,
    DROP COLUMN series_id,
    DROP COLUMN reminders,
    DROP COLUMN time_zone,
    DROP COLUMN recurrence;
