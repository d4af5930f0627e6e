-- depends: 0035_route_counts
-- A transfer's lock order (issue 39). A transfer writes in two spaces: it moves the list's rows
-- from the old owner's space to the new owner's. Other writes take their caller's change lock
-- at entry and then, for a member, the space's (0033): the new owner writing in the list as a
-- member takes (new, old), the old owner writing in one of the new owner's lists (old, new).
-- Whichever order a transfer held one lock in while waiting for the other, one of those could
-- deadlock with it. So a transfer enters without its caller's lock and takes every space's
-- here, before any row lock, never waiting while it holds one: it waits for the first in id
-- order, tries the rest, and when one is busy gives back what it took (the subtransaction's
-- rollback releases its advisory locks) and waits for the busy one first. Held by a
-- statement of its own, ahead of the transfer's: that statement's snapshot is taken after the
-- locks, so the new owner's lists it counts include one just created in that space.
CREATE FUNCTION task_api_lock_spaces(p_spaces TEXT[]) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    spaces TEXT[] := ARRAY(SELECT DISTINCT s FROM unnest(p_spaces) AS s WHERE s IS NOT NULL
                           ORDER BY 1);
    waited INTEGER := 1;
BEGIN
    IF cardinality(spaces) = 0 THEN
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
