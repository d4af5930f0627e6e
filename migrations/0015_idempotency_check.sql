-- depends: 0014_request_entry
-- An Idempotency-Key's check, sent in the same message as the write it guards (backend/services/
-- idempotency.py, specs/statements.md), so that a keyed create costs the round trips of any
-- write. It stops the message (and so the write) with an error when the write must not run:
-- - TA409: another request holds the key (`p_lock`, a transaction-level advisory lock, is
--   taken without waiting: a retry storm cannot pin connections);
-- - TA422: the key's unexpired record answered another request (`p_fingerprint` differs);
-- - TA208: the record answers this very request: it is sent first in a notice
--   `task_api_replay {"status", "headers", "body"}` (never written to the server log at the
--   default log_min_messages), and the client replays it.
-- The record is read by its own statement after the lock is taken, so it sees a record that
-- the key's previous holder committed (READ COMMITTED: a new snapshot per statement).
CREATE FUNCTION task_api_idempotency_key(
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
