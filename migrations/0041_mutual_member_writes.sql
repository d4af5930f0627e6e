-- depends: 0039_unassign_on_move
-- Two members writing in each other's lists (issue 39). A write took its caller's change lock
-- at entry and, in another owner's space, that owner's in its statement (0033): alice writing
-- in bob's list held alice's and waited for bob's while bob, writing in alice's, held bob's and
-- waited for alice's, a deadlock. A write by a task's id (the route's path names it) now enters
-- without its caller's lock and takes the caller's and the task's space's here, as a transfer
-- does (0036): waiting for neither while it holds the other, before any row lock.
-- The space is the task's owner's only where the caller is a member of the task's list (else
-- the caller's own, where the write finds nothing or its own row): a caller cannot make
-- another space's writers wait by naming an id of theirs.
CREATE FUNCTION task_api_lock_task_spaces(p_caller TEXT, p_task BIGINT) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
    SELECT task_api_lock_spaces(ARRAY[p_caller, (
        SELECT t.user_id FROM tasks AS t
        WHERE t.id = p_task AND t.user_id <> p_caller AND EXISTS (
            SELECT FROM list_members AS m
            WHERE m.user_id = t.user_id AND m.list_id = t.list_id AND m.member_id = p_caller
        )
    )])
$$;

-- One space (an owner's write in its own space, the common case): its lock, with no
-- subtransaction to pay for.
CREATE OR REPLACE FUNCTION task_api_lock_spaces(p_spaces TEXT[]) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    spaces TEXT[] := ARRAY(SELECT DISTINCT s FROM unnest(p_spaces) AS s WHERE s IS NOT NULL
                           ORDER BY 1);
    waited INTEGER := 1;
BEGIN
    IF cardinality(spaces) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(spaces) = 1 THEN
        PERFORM task_events_lock(spaces[1]);
        RETURN;
    END IF;
    LOOP
        BEGIN
            PERFORM task_events_lock(spaces[waited]);
            FOR i IN 1 .. cardinality(spaces) LOOP
                IF i <> waited AND NOT pg_try_advisory_xact_lock(
                    hashtextextended('task-api:task-events:' || spaces[i], 0)
                ) THEN
                    waited := i;
                    -- Caught below (never an error in the log): undoes this attempt's locks.
                    RAISE SQLSTATE 'TA40P';
                END IF;
            END LOOP;
            RETURN;
        EXCEPTION WHEN SQLSTATE 'TA40P' THEN
            NULL;
        END;
    END LOOP;
END
$$;
