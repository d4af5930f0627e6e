-- depends: 0090_push_subscriptions
-- Reminders that reach a person (issue 72; specs/events.md, "Reminder deliveries").
--
-- `notification_settings`: a user's channels (no row: push on, email off). An email address
-- receives reminders only once confirmed (`email_confirmed_at`), by a link carrying a random
-- token whose SHA-256 alone is stored (`confirm_token_hash`, unique: the link finds its row by
-- it). `time_zone`: the zone an email names the due time in (NULL: the task's own).
--
-- `reminder_deliveries`: one row per (reminder event, channel, subscription), written by the
-- trigger below in the transaction that fires the reminder (backend/services/delivery/reminders.py),
-- so a fired reminder is never without its deliveries. The events worker leases due rows
-- (`next_attempt_at` moved a lease ahead, `attempts` counted, committed), sends with no
-- transaction open, then deletes a delivered row, or records the failure (backoff) or its end
-- (`dead`). A worker killed mid-send leaves the row to be leased again when the lease ends:
-- at least once, the repeat recognisable by its push `Topic` / email `Message-ID`.
CREATE TABLE notification_settings (
    user_id             TEXT        NOT NULL,
    push                BOOLEAN     NOT NULL DEFAULT true,
    email               BOOLEAN     NOT NULL DEFAULT false,
    email_address       TEXT,
    email_confirmed_at  TIMESTAMPTZ,
    confirm_token_hash  TEXT,
    confirm_sent_at     TIMESTAMPTZ,
    time_zone           TEXT,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_notification_settings PRIMARY KEY (user_id),
    CONSTRAINT fk_notification_settings_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT uq_notification_settings_confirm_token_hash UNIQUE (confirm_token_hash),
    CONSTRAINT ck_notification_settings_email_address_length
        CHECK (char_length(email_address) <= 320),
    CONSTRAINT ck_notification_settings_time_zone_length
        CHECK (char_length(time_zone) BETWEEN 1 AND 64),
    CONSTRAINT ck_notification_settings_confirmed_has_address
        CHECK (email_confirmed_at IS NULL OR email_address IS NOT NULL)
);

CREATE TRIGGER notification_settings_admit_write
    BEFORE INSERT OR UPDATE OR DELETE ON notification_settings
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();

CREATE TABLE reminder_deliveries (
    id               BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id          TEXT        NOT NULL,
    event_id         UUID        NOT NULL,
    task_id          BIGINT      NOT NULL,
    channel          TEXT        NOT NULL,
    subscription_id  BIGINT,
    payload          JSONB       NOT NULL,
    state            TEXT        NOT NULL DEFAULT 'pending',
    attempts         INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT pk_reminder_deliveries PRIMARY KEY (id),
    CONSTRAINT fk_reminder_deliveries_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_reminder_deliveries_user_id_push_subscriptions
        FOREIGN KEY (user_id, subscription_id)
        REFERENCES push_subscriptions (user_id, id) ON DELETE CASCADE,
    CONSTRAINT uq_reminder_deliveries_event_id_channel_subscription_id
        UNIQUE NULLS NOT DISTINCT (event_id, channel, subscription_id),
    CONSTRAINT ck_reminder_deliveries_channel CHECK (
        (channel = 'push' AND subscription_id IS NOT NULL)
        OR (channel = 'email' AND subscription_id IS NULL)
    ),
    CONSTRAINT ck_reminder_deliveries_state CHECK (state IN ('pending', 'dead'))
);
CREATE INDEX ix_reminder_deliveries_next_attempt_at ON reminder_deliveries (next_attempt_at)
    WHERE state = 'pending';

CREATE FUNCTION reminder_deliveries_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reminder_deliveries (user_id, event_id, task_id, channel, subscription_id, payload)
    SELECT NEW.user_id, NEW.event_id, NEW.task_id, 'push', s.id, NEW.task
    FROM push_subscriptions AS s
    WHERE s.user_id = NEW.user_id
      AND (s.expires_at IS NULL OR s.expires_at > now())
      AND coalesce(
          (SELECT n.push FROM notification_settings AS n WHERE n.user_id = NEW.user_id), true);
    INSERT INTO reminder_deliveries (user_id, event_id, task_id, channel, payload)
    SELECT NEW.user_id, NEW.event_id, NEW.task_id, 'email', NEW.task
    FROM notification_settings AS n
    WHERE n.user_id = NEW.user_id AND n.email AND n.email_confirmed_at IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_events_reminder_deliveries AFTER INSERT ON task_events
    FOR EACH ROW WHEN (NEW.type = 'reminder')
    EXECUTE FUNCTION reminder_deliveries_fan_out();
