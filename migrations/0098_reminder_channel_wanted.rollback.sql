-- Back to 0091's fan-out, which wrote the channel rule itself.
CREATE OR REPLACE FUNCTION reminder_deliveries_fan_out() RETURNS trigger
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
DROP FUNCTION reminder_channel_wanted(TEXT, TEXT);
