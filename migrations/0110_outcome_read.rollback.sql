DROP FUNCTION task_api_outcome_read();
