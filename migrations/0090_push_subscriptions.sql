-- depends: 0068_trash_attachment_bytes
-- Web Push subscriptions (issue 72; specs/api-contract.md, "Push subscriptions"): a browser's
-- `PushSubscription` as the page hands it over, a user's own private rows. One row per
-- (user, endpoint): a page that subscribes again sends the same endpoint and gets the same row
-- back (an upsert on the constraint, its keys refreshed). `p256dh` (the browser's P-256 public
-- key, 65 bytes uncompressed) and `auth` (its 16-byte secret) are base64url as the browser
-- gives them; they encrypt what is sent (RFC 8291) and never leave the server again. A push
-- service's 404/410 deletes the row (backend/events/notify.py); deleting the account too.
CREATE TABLE push_subscriptions (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    endpoint    TEXT        NOT NULL,
    p256dh      TEXT        NOT NULL,
    auth        TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_push_subscriptions PRIMARY KEY (id),
    CONSTRAINT fk_push_subscriptions_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT uq_push_subscriptions_user_id_id UNIQUE (user_id, id),
    CONSTRAINT uq_push_subscriptions_user_id_endpoint UNIQUE (user_id, endpoint),
    CONSTRAINT ck_push_subscriptions_endpoint_length CHECK (char_length(endpoint) <= 2048)
);

CREATE TRIGGER push_subscriptions_admit_write
    BEFORE INSERT OR UPDATE OR DELETE ON push_subscriptions
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
