-- depends: 0006_task_version
-- Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) for POST /api/tasks and
-- POST /api/tasks/bulk: the first successful response to a (user, key) is stored here, in the
-- same transaction as the write it answers, and replayed to retries until `expires_at`.
-- `fingerprint` is the SHA-256 of method, route and canonical body, so the same key with
-- another request is refused instead of replayed. Requests holding a key in flight are
-- serialized by a transaction-level advisory lock (backend/services/idempotency.py), which
-- the database releases on commit, rollback or a dropped connection: no "in flight" row to
-- get stuck.
CREATE TABLE idempotency_keys (
    user_id           TEXT        NOT NULL,
    key               TEXT        NOT NULL,
    fingerprint       TEXT        NOT NULL,
    response_status   SMALLINT    NOT NULL,
    response_body     TEXT        NOT NULL,
    response_headers  JSONB       NOT NULL DEFAULT '{}',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT pk_idempotency_keys PRIMARY KEY (user_id, key),
    CONSTRAINT fk_idempotency_keys_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT ck_idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
    CONSTRAINT ck_idempotency_keys_status CHECK (response_status BETWEEN 200 AND 299),
    CONSTRAINT ck_idempotency_keys_expiry_order CHECK (expires_at > created_at)
);

-- Serves pruning: DELETE of expired rows in bounded batches, oldest first.
CREATE INDEX ix_idempotency_keys_expires_at ON idempotency_keys (expires_at);
