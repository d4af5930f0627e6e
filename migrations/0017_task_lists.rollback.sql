-- Every task leaves its list and its parent, and loses its manual order (the tasks stay).
DROP INDEX ix_tasks_user_id_parent_id;
ALTER TABLE tasks
    DROP COLUMN list_id,
    DROP COLUMN parent_id,
    DROP COLUMN position;
DROP TABLE task_lists;
