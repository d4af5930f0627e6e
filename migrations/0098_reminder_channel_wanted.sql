-- depends: 0097_confirmation_deliveries
-- Which channels a person wants, said once (specs/events.md, "Reminder deliveries"): the
-- fan-out that queues a fired reminder's deliveries (0091) and the events worker's lease,
-- which checks again when it sends (backend/events/notify.py), both ask this function. No
-- settings row: push on, email off; email only to a confirmed address.
CREATE FUNCTION reminder_channel_wanted(p_user TEXT, p_channel TEXT) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE p_channel
        WHEN 'push' THEN coalesce(
            (SELECT n.push FROM notification_settings AS n WHERE n.user_id = p_user), true)
        WHEN 'email' THEN coalesce(
            (SELECT n.email AND n.email_confirmed_at IS NOT NULL
             FROM notification_settings AS n WHERE n.user_id = p_user), false)
        ELSE false
    END
$$;

CREATE OR REPLACE FUNCTION reminder_deliveries_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reminder_deliveries (user_id, event_id, task_id, channel, subscription_id, payload)
    SELECT NEW.user_id, NEW.event_id, NEW.task_id, 'push', s.id, NEW.task
    FROM push_subscriptions AS s
    WHERE s.user_id = NEW.user_id
      AND (s.expires_at IS NULL OR s.expires_at > now())
      AND reminder_channel_wanted(NEW.user_id, 'push');
    INSERT INTO reminder_deliveries (user_id, event_id, task_id, channel, payload)
    SELECT NEW.user_id, NEW.event_id, NEW.task_id, 'email', NEW.task
    WHERE reminder_channel_wanted(NEW.user_id, 'email');
    RETURN NULL;
END
$$;
