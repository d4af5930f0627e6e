-- btree_gin stays installed: other objects may use it, and it is harmless.
DROP INDEX ix_tasks_user_id_tags;
DROP INDEX ix_tasks_user_id_due_date_desc_id;
DROP INDEX ix_tasks_user_id_due_date_asc_id;
DROP INDEX ix_tasks_user_id_priority_id;
DROP INDEX ix_tasks_user_id_updated_at_id;
ALTER TABLE tasks
    DROP COLUMN tags,
    DROP COLUMN due_date,
    DROP COLUMN priority;
DROP TYPE task_priority;
