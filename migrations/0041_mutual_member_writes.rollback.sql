DROP FUNCTION task_api_lock_task_spaces(TEXT, BIGINT);
-- task_api_lock_spaces as 0036 made it.
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
