ALTER TABLE task_reminders DROP CONSTRAINT fk_task_reminders_user_id_task_id_tasks;
ALTER TABLE task_reminders ADD CONSTRAINT fk_task_reminders_task_id_tasks
    FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE;

ALTER TABLE tasks DROP CONSTRAINT uq_tasks_user_id_id;
