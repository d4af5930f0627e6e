DROP TRIGGER tasks_move_comments ON tasks;
DROP FUNCTION task_comments_follow_task();
DROP TABLE task_comments;
DROP TABLE list_invitations;
DROP TABLE list_members;
ALTER TABLE task_reminders
    DROP CONSTRAINT fk_task_reminders_user_id_task_id_tasks,
    ADD CONSTRAINT fk_task_reminders_user_id_task_id_tasks FOREIGN KEY (user_id, task_id)
        REFERENCES tasks (user_id, id) ON DELETE CASCADE;
ALTER TABLE tasks
    DROP CONSTRAINT fk_tasks_user_id_list_id_task_lists,
    DROP CONSTRAINT fk_tasks_user_id_parent_id_tasks,
    ADD CONSTRAINT fk_tasks_user_id_list_id_task_lists FOREIGN KEY (user_id, list_id)
        REFERENCES task_lists (user_id, id) ON DELETE CASCADE,
    ADD CONSTRAINT fk_tasks_user_id_parent_id_tasks FOREIGN KEY (user_id, parent_id)
        REFERENCES tasks (user_id, id) ON DELETE CASCADE;
