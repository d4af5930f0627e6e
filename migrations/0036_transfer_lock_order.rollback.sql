DROP FUNCTION task_api_lock_spaces(TEXT[]);
