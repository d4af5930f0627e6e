-- depends: 0012_text_nfc
-- A user's row points only at that user's rows (specs/data-model.md, "References between
-- rows"): a reference between per-user tables is a foreign key on (user_id, <ref>) to the
-- target's (user_id, id), so the database itself refuses a row of one user naming another
-- user's row. `tasks` gets the key such references need; `task_reminders.task_id`, the one
-- reference of that kind so far, moves onto it (same cascade; every row already carries its
-- task's user_id, written by the trigger of migration 0010).
ALTER TABLE tasks ADD CONSTRAINT uq_tasks_user_id_id UNIQUE (user_id, id);

ALTER TABLE task_reminders DROP CONSTRAINT fk_task_reminders_task_id_tasks;
ALTER TABLE task_reminders ADD CONSTRAINT fk_task_reminders_user_id_task_id_tasks
    FOREIGN KEY (user_id, task_id) REFERENCES tasks (user_id, id) ON DELETE CASCADE;
