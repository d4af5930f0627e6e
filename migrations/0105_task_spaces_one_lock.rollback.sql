-- Back to 0086's entry: the owner's and the caller's spaces always through
-- `task_api_lock_spaces`.
CREATE OR REPLACE FUNCTION task_api_lock_task_spaces(p_caller TEXT, p_task BIGINT) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
BEGIN
    PERFORM task_api_lock_spaces(ARRAY[p_caller, (
        SELECT t.user_id FROM tasks AS t
        WHERE t.id = p_task AND t.user_id <> p_caller AND EXISTS (
            SELECT FROM list_members AS m
            WHERE m.user_id = t.user_id AND m.list_id = t.list_id AND m.member_id = p_caller
        )
    )]);
END
$$;
