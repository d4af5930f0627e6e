-- The outcome as 0035 made it; the member arm planned for every caller again.
CREATE OR REPLACE FUNCTION task_api_outcome(
    OUT task_api_hits INTEGER, OUT task_api_reset INTEGER,
    OUT task_api_refused TEXT, OUT task_api_reason TEXT, OUT task_api_replay JSONB,
    OUT task_api_route_hits INTEGER, OUT task_api_route_reset INTEGER
)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('task_api.hits', true), '')::integer,
           nullif(current_setting('task_api.reset', true), '')::integer,
           nullif(current_setting('task_api.refused', true), ''),
           nullif(current_setting('task_api.reason', true), ''),
           nullif(current_setting('task_api.replay', true), '')::jsonb,
           nullif(current_setting('task_api.route_hits', true), '')::integer,
           nullif(current_setting('task_api.route_reset', true), '')::integer
$$;
DROP FUNCTION task_api_member_planned(TEXT);
