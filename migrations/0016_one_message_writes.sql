-- depends: 0015_idempotency_check
-- What lets a write be one message (backend/services/scope.py, specs/statements.md).

-- A write that is its transaction's last statement is sent with its COMMIT (`_run_last`):
-- `WITH r AS (<statement>) SELECT task_api_return((SELECT jsonb_agg(to_jsonb(r)) FROM r));
-- COMMIT`. psycopg2 answers with the last statement's result (the COMMIT's, none), so the
-- rows come back in a notice `task_api_rows [...]` (notices are not transactional, and are
-- not written to the server log at the default log_min_messages).
CREATE FUNCTION task_api_return(p_rows JSONB) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
BEGIN
    RAISE NOTICE 'task_api_rows %', coalesce(p_rows, '[]'::jsonb);
END
$$;

-- The deadline of a message that commits a write by itself (sent last, before the COMMIT): a
-- message the server runs after the client gave up on it (a server frozen with the message in
-- its socket buffer, then resumed) must not commit what the client was told failed
-- (specs/reliability.md R7). `p_deadline` is in the server's clock (epoch seconds), which the
-- app learns when it connects.
CREATE FUNCTION task_api_in_time(p_deadline DOUBLE PRECISION) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
BEGIN
    IF extract(epoch FROM clock_timestamp()) > p_deadline THEN
        RAISE EXCEPTION USING ERRCODE = 'TA504',
            MESSAGE = 'The request was given up before it could commit';
    END IF;
END
$$;

-- A bulk request's operations, sent as one message (backend/services/scope.py `_run_steps`,
-- specs/statements.md): each operation is a statement that writes its task and hands the
-- task's row (as JSON) to `task_api_step`, which collects it in the transaction-local setting
-- `task_api.steps` for the message's last statement to return, or, when the operation wrote
-- nothing, stops the message (TS400) with the operation's reason (`p_reason`, NULL: the task
-- is missing) as the message and its index as the DETAIL. Step 0 starts a new collection.
CREATE FUNCTION task_api_step(p_index INTEGER, p_row JSONB, p_reason TEXT)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    collected TEXT := CASE WHEN p_index = 0 THEN NULL
                           ELSE current_setting('task_api.steps', true) END;
BEGIN
    IF p_row IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'TS400', MESSAGE = coalesce(p_reason, 'missing'),
            DETAIL = p_index;
    END IF;
    PERFORM set_config(
        'task_api.steps',
        (coalesce(nullif(collected, ''), '[]')::jsonb || jsonb_build_array(p_row))::text,
        true
    );
END
$$;
