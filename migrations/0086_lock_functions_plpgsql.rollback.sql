-- Back to the SQL functions of 0033 and 0041.
CREATE OR REPLACE FUNCTION task_api_lock_space(p_owner TEXT) RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE COST 1000 AS $$
    SELECT true FROM (SELECT task_events_lock(p_owner)) AS locked
$$;

CREATE OR REPLACE FUNCTION task_api_lock_task_spaces(p_caller TEXT, p_task BIGINT) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
    SELECT task_api_lock_spaces(ARRAY[p_caller, (
        SELECT t.user_id FROM tasks AS t
        WHERE t.id = p_task AND t.user_id <> p_caller AND EXISTS (
            SELECT FROM list_members AS m
            WHERE m.user_id = t.user_id AND m.list_id = t.list_id AND m.member_id = p_caller
        )
    )])
$$;
