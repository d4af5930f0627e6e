DROP FUNCTION task_api_steps(TEXT[]);
DROP TRIGGER users_admit_write ON users;
DROP TRIGGER tasks_admit_write ON tasks;
DROP TRIGGER task_lists_admit_write ON task_lists;
DROP TRIGGER idempotency_keys_admit_write ON idempotency_keys;
DROP TRIGGER task_events_admit_write ON task_events;
DROP TRIGGER task_reminders_admit_write ON task_reminders;
DROP FUNCTION task_api_skip_refused_write();
DROP FUNCTION task_api_refuse(TEXT, TEXT);
-- The entry, the key's check and the steps as 0014-0016 made them.
CREATE OR REPLACE FUNCTION task_api_enter(
    p_subject TEXT, p_version INTEGER, p_local BOOLEAN, p_email TEXT, p_name TEXT,
    p_write BOOLEAN, p_limit_key TEXT, p_window INTEGER, p_limit INTEGER, p_clean BOOLEAN
) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    counted RECORD;
    stored INTEGER;
BEGIN
    IF p_limit_key IS NOT NULL THEN
        SELECT * INTO counted FROM task_api_hit(ARRAY[p_limit_key], ARRAY[p_window], p_clean);
        RAISE NOTICE 'task_api_rate_limit % %', counted.hits, counted.reset_seconds;
        IF counted.hits > p_limit THEN
            RAISE EXCEPTION USING ERRCODE = 'TA429', MESSAGE = 'Too many requests';
        END IF;
    END IF;
    SELECT u.token_version INTO stored FROM users AS u WHERE u.id = p_subject;
    IF NOT FOUND THEN
        IF p_local THEN
            RAISE EXCEPTION USING ERRCODE = 'TA401',
                MESSAGE = 'The account for this token no longer exists';
        END IF;
        INSERT INTO users (id, email, name) VALUES (p_subject, p_email, p_name)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND AND p_email IS NOT NULL THEN
            INSERT INTO users (id, email, name) VALUES (p_subject, NULL, p_name)
                ON CONFLICT DO NOTHING;
        END IF;
    ELSIF p_local AND stored IS DISTINCT FROM p_version THEN
        RAISE EXCEPTION USING ERRCODE = 'TA401', MESSAGE = 'This token was revoked';
    END IF;
    IF p_write THEN
        PERFORM task_events_lock(p_subject);
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION task_api_idempotency_key(
    p_owner TEXT, p_key TEXT, p_lock BIGINT, p_fingerprint TEXT
) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    stored RECORD;
BEGIN
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        RAISE EXCEPTION USING ERRCODE = 'TA409', MESSAGE = 'Idempotency-Key in use';
    END IF;
    SELECT k.fingerprint, k.response_status, k.response_headers, k.response_body INTO stored
    FROM idempotency_keys AS k
    WHERE k.user_id = p_owner AND k.key = p_key AND k.expires_at > now();
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF stored.fingerprint <> p_fingerprint THEN
        RAISE EXCEPTION USING ERRCODE = 'TA422', MESSAGE = 'Idempotency-Key used for another request';
    END IF;
    RAISE NOTICE 'task_api_replay %', json_build_object(
        'status', stored.response_status,
        'headers', stored.response_headers,
        'body', stored.response_body
    );
    RAISE EXCEPTION USING ERRCODE = 'TA208', MESSAGE = 'Idempotency-Key replayed';
END
$$;
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
