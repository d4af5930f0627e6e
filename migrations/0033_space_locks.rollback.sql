DROP FUNCTION task_api_lock_space(TEXT);
