DROP FUNCTION task_api_idempotency_key(TEXT, TEXT, BIGINT, TEXT);
