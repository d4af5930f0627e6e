-- depends: 0019_list_events
-- Refusals without errors (specs/statements.md, "What the server says"). An error stops a
-- message, and PostgreSQL then logs the whole message (the caller's titles, tags and keys with
-- it) at log_min_error_statement's default. So a request the server refuses (over the write
-- limit, a revoked token, an Idempotency-Key's replay or mismatch, a bulk step that wrote
-- nothing) is refused by a notice `task_api_refused <code>[ <detail>]` and a transaction-local
-- setting, `task_api.refused`, that every table a request writes reads in its `*_admit_write`
-- trigger: after a refusal no row is written, so the message may still commit (the write's
-- count, which must stand) and nothing else. The app reads each notice by an exact grammar
-- (backend/db/notices.py); the caller's text never starts a notice.

-- The request is refused with `p_code` (the first refusal stands): nothing it writes after this
-- is written, and the app is told in a notice.
CREATE FUNCTION task_api_refuse(p_code TEXT, p_detail TEXT DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
BEGIN
    IF coalesce(current_setting('task_api.refused', true), '') <> '' THEN
        RETURN;
    END IF;
    PERFORM set_config('task_api.refused', p_code, true);
    RAISE NOTICE 'task_api_refused %', concat_ws(' ', p_code, p_detail);
END
$$;

-- A row of a refused request is not written (a BEFORE trigger that returns NULL skips the row,
-- its AFTER triggers and its cascades). The WHEN condition is all a request that was not
-- refused pays: the setting is unset, or '' once a transaction that set it has ended.
CREATE FUNCTION task_api_skip_refused_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;

-- Named to sort first: BEFORE triggers fire in name order (`tasks_place` must not run).
CREATE TRIGGER users_admit_write BEFORE INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
CREATE TRIGGER tasks_admit_write BEFORE INSERT OR UPDATE OR DELETE ON tasks
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
CREATE TRIGGER task_lists_admit_write BEFORE INSERT OR UPDATE OR DELETE ON task_lists
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
CREATE TRIGGER idempotency_keys_admit_write BEFORE INSERT OR UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
CREATE TRIGGER task_events_admit_write BEFORE INSERT OR UPDATE OR DELETE ON task_events
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
CREATE TRIGGER task_reminders_admit_write BEFORE INSERT OR UPDATE OR DELETE ON task_reminders
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();

-- The caller's entry (0014), refusing instead of raising: over the write limit (TA429; the
-- count stands and is sent as before), or a built-in token whose account is gone or whose
-- version was revoked (TA401 gone / revoked). A refused request takes no change lock.
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
            PERFORM task_api_refuse('TA429');
            RETURN;
        END IF;
    END IF;
    SELECT u.token_version INTO stored FROM users AS u WHERE u.id = p_subject;
    IF NOT FOUND THEN
        IF p_local THEN
            PERFORM task_api_refuse('TA401', 'gone');
            RETURN;
        END IF;
        INSERT INTO users (id, email, name) VALUES (p_subject, p_email, p_name)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND AND p_email IS NOT NULL THEN
            INSERT INTO users (id, email, name) VALUES (p_subject, NULL, p_name)
                ON CONFLICT DO NOTHING;
        END IF;
    ELSIF p_local AND stored IS DISTINCT FROM p_version THEN
        PERFORM task_api_refuse('TA401', 'revoked');
        RETURN;
    END IF;
    IF p_write THEN
        PERFORM task_events_lock(p_subject);
    END IF;
END
$$;

-- An Idempotency-Key's check (0015), refusing instead of raising. A request whose key another
-- request of the caller still holds waits for it (as it waits for the caller's change lock in
-- any case), then finds its record: the same request is replayed (TA208, the record in a
-- notice `task_api_replay {"status", "headers", "body"}`), another one is TA422. No record
-- (none yet, or the first failed): the write runs.
CREATE OR REPLACE FUNCTION task_api_idempotency_key(
    p_owner TEXT, p_key TEXT, p_lock BIGINT, p_fingerprint TEXT
) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    stored RECORD;
BEGIN
    IF coalesce(current_setting('task_api.refused', true), '') <> '' THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT k.fingerprint, k.response_status, k.response_headers, k.response_body INTO stored
    FROM idempotency_keys AS k
    WHERE k.user_id = p_owner AND k.key = p_key AND k.expires_at > now();
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF stored.fingerprint <> p_fingerprint THEN
        PERFORM task_api_refuse('TA422');
        RETURN;
    END IF;
    RAISE NOTICE 'task_api_replay %', json_build_object(
        'status', stored.response_status,
        'headers', stored.response_headers,
        'body', stored.response_body
    );
    PERFORM task_api_refuse('TA208');
END
$$;

-- A bulk request's operations (backend/services/scope.py `_run_steps`): each element of
-- `p_steps` is one statement's text that writes its task and selects the task's row as JSON
-- and, when it wrote nothing, NULL and why (a reason word, NULL: the task is missing). They run
-- in order in one subtransaction; the first that wrote nothing undoes them all and refuses the
-- request (`TS400 <index> <reason>`), so the caught exception never reaches the log. The rows,
-- in order; NULL when refused.
CREATE FUNCTION task_api_steps(p_steps TEXT[]) RETURNS JSONB
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    collected JSONB := '[]'::jsonb;
    stepped JSONB;
    why TEXT;
    failed INTEGER;
BEGIN
    IF coalesce(current_setting('task_api.refused', true), '') <> '' THEN
        RETURN NULL;
    END IF;
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_steps, 1), 0) LOOP
            EXECUTE p_steps[i] INTO stepped, why;
            IF stepped IS NULL THEN
                failed := i - 1;
                RAISE EXCEPTION USING ERRCODE = 'TS400';
            END IF;
            collected := collected || jsonb_build_array(stepped);
        END LOOP;
    EXCEPTION WHEN SQLSTATE 'TS400' THEN
        PERFORM task_api_refuse('TS400', concat_ws(' ', failed, coalesce(why, 'missing')));
        RETURN NULL;
    END;
    RETURN collected;
END
$$;

DROP FUNCTION task_api_step(INTEGER, JSONB, TEXT);
