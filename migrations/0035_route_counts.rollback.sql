-- The outcome as 0027 made it; a route's own count back to a transaction of its own.
DROP FUNCTION task_api_count(TEXT, INTEGER, INTEGER);
DROP FUNCTION task_api_outcome();
CREATE FUNCTION task_api_outcome(
    OUT task_api_hits INTEGER, OUT task_api_reset INTEGER,
    OUT task_api_refused TEXT, OUT task_api_reason TEXT, OUT task_api_replay JSONB
)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('task_api.hits', true), '')::integer,
           nullif(current_setting('task_api.reset', true), '')::integer,
           nullif(current_setting('task_api.refused', true), ''),
           nullif(current_setting('task_api.reason', true), ''),
           nullif(current_setting('task_api.replay', true), '')::jsonb
$$;
