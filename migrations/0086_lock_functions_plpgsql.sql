-- depends: 0068_trash_attachment_bytes
-- The space locks every write by a task's id takes (0033, 0041), in PL/pgSQL instead of SQL
-- (issue 73), with the same bodies: a SQL function is a candidate for inlining, so the planner
-- parses and analyses its body again on every statement that calls it before finding it cannot
-- inline it (a `void` result, a FROM clause), and before PostgreSQL 18 a SQL function plans its
-- body on every statement that calls it. A PL/pgSQL function is never inlined and keeps its
-- body's plans for the connection's life, which behind a transaction pooler is the server
-- connection's (no session state of the client's). `SELECT task_api_lock_task_spaces(...)`,
-- the entry of every PATCH and toggle, plans in 0.005 ms instead of 0.025
-- (specs/benchmark.md, issue 73).
CREATE OR REPLACE FUNCTION task_api_lock_space(p_owner TEXT) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1000 AS $$
BEGIN
    PERFORM task_events_lock(p_owner);
    RETURN true;
END
$$;

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
