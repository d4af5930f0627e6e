-- depends: 0109_imports
-- The outcome's rows read for the request (issue 91): what a refused CalDAV write read under its
-- change locks in its message (`dav_statements.LOOKED`), a JSON array of each read's rows, in an
-- outcome column of its own (`task_api.read`) rather than as further lines of the refusal's reason.
-- A new function beside `task_api_outcome()`, which the code before this migration reads by
-- position (seven columns) and keeps reading while a rolling update serves both; a later
-- migration drops it.
CREATE FUNCTION task_api_outcome_read(
    OUT task_api_hits INTEGER, OUT task_api_reset INTEGER,
    OUT task_api_refused TEXT, OUT task_api_reason TEXT, OUT task_api_replay JSONB,
    OUT task_api_route_hits INTEGER, OUT task_api_route_reset INTEGER, OUT task_api_read JSONB
)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    task_api_hits := nullif(current_setting('task_api.hits', true), '')::integer;
    task_api_reset := nullif(current_setting('task_api.reset', true), '')::integer;
    task_api_refused := nullif(current_setting('task_api.refused', true), '');
    task_api_reason := nullif(current_setting('task_api.reason', true), '');
    task_api_replay := nullif(current_setting('task_api.replay', true), '')::jsonb;
    task_api_route_hits := nullif(current_setting('task_api.route_hits', true), '')::integer;
    task_api_route_reset := nullif(current_setting('task_api.route_reset', true), '')::integer;
    task_api_read := nullif(current_setting('task_api.read', true), '')::jsonb;
END
$$;
