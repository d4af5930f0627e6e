-- depends: 0095_tasks_due_on_a_day
-- The confirmation email through the delivery engine (specs/events.md, "Reminder
-- deliveries"): the PATCH that stores a new address (a new `confirm_token_hash`) queues a
-- `confirm` row in `reminder_deliveries` in its own statement (the triggers below), and the
-- events worker sends it like a reminder's email (lease, send, record; retried while the SMTP
-- server is down, dead after EVENT_MAX_ATTEMPTS), instead of the API sending it once after
-- its answer. A confirmation names no task: `task_id` is NULL for it alone. The link's token
-- is never stored: `confirm_nonce` is what the worker derives it from with the server's
-- signing secret (an HMAC); `confirm_token_hash`, its SHA-256, is what the link is checked by.
ALTER TABLE notification_settings ADD COLUMN confirm_nonce TEXT;

ALTER TABLE reminder_deliveries ALTER COLUMN task_id DROP NOT NULL;
ALTER TABLE reminder_deliveries DROP CONSTRAINT ck_reminder_deliveries_channel;
ALTER TABLE reminder_deliveries ADD CONSTRAINT ck_reminder_deliveries_channel CHECK (
    (channel = 'push' AND subscription_id IS NOT NULL AND task_id IS NOT NULL)
    OR (channel = 'email' AND subscription_id IS NULL AND task_id IS NOT NULL)
    OR (channel = 'confirm' AND subscription_id IS NULL AND task_id IS NULL)
);

CREATE FUNCTION notification_settings_queue_confirmation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reminder_deliveries (user_id, event_id, channel, payload)
    VALUES (NEW.user_id, gen_random_uuid(), 'confirm',
            jsonb_build_object('address', NEW.email_address));
    RETURN NULL;
END
$$;

CREATE TRIGGER notification_settings_queue_confirmation AFTER INSERT ON notification_settings
    FOR EACH ROW WHEN (NEW.confirm_token_hash IS NOT NULL AND NEW.confirm_nonce IS NOT NULL
        AND NEW.email_address IS NOT NULL)
    EXECUTE FUNCTION notification_settings_queue_confirmation();

CREATE TRIGGER notification_settings_queue_confirmation_on_update
    AFTER UPDATE ON notification_settings
    FOR EACH ROW WHEN (NEW.confirm_token_hash IS NOT NULL AND NEW.confirm_nonce IS NOT NULL
        AND NEW.email_address IS NOT NULL
        AND NEW.confirm_token_hash IS DISTINCT FROM OLD.confirm_token_hash)
    EXECUTE FUNCTION notification_settings_queue_confirmation();
