DROP INDEX IF EXISTS ix_task_events_user_id_left_list;
DROP INDEX IF EXISTS ix_task_events_user_id_no_list_id;
