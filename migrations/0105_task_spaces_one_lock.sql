-- depends: 0104_change_event_once
-- The entry of a PATCH or a toggle by a task's id (0041, 0086) with one lookup and no array
-- (issue 83): the task's owner when the caller reaches it as a member, as before; when there is
-- none (the caller's own task, or one it cannot reach) the caller's own change lock is the only
-- one to take, taken directly instead of through `task_api_lock_spaces` (which took it alone
-- after de-duplicating and sorting a one-element array). Same locks in the same order.
CREATE OR REPLACE FUNCTION task_api_lock_task_spaces(p_caller TEXT, p_task BIGINT) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    owner TEXT;
BEGIN
    SELECT t.user_id INTO owner FROM tasks AS t
    WHERE t.id = p_task AND t.user_id <> p_caller AND EXISTS (
        SELECT FROM list_members AS m
        WHERE m.user_id = t.user_id AND m.list_id = t.list_id AND m.member_id = p_caller
    );
    IF owner IS NULL THEN
        PERFORM task_events_lock(p_caller);
    ELSE
        PERFORM task_api_lock_spaces(ARRAY[p_caller, owner]);
    END IF;
END
$$;
