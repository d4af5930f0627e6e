-- depends: 0098_reminder_channel_wanted
-- Quiet hours (specs/events.md, "Reminder deliveries"; api-contract.md, "Notification
-- settings"): a daily window, in the person's `time_zone` (UTC when they set none), in which
-- their reminders' pushes and emails wait; they go at the window's end. Both ends or none;
-- a window whose start is after its end runs across midnight; equal ends: no window.
-- The events worker's lease asks `quiet_until` for each due push or email (not an address's
-- confirmation): a row whose person is in their window is moved to its end, its attempt
-- not counted, and not sent (backend/events/deliveries.py).
ALTER TABLE notification_settings ADD COLUMN quiet_start TIME;
ALTER TABLE notification_settings ADD COLUMN quiet_end TIME;
ALTER TABLE notification_settings ADD CONSTRAINT ck_notification_settings_quiet_hours
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL));

-- When `p_user`'s quiet hours that hold at `p_at` end, or NULL when they are not quiet then.
-- The window's ends are local times on the person's clock, read by PostgreSQL's rules: on
-- a day the clock skips the end (spring forward) it is read with the offset before the jump
-- (02:30 in Berlin: 03:30 CEST), and on one it shows the end twice (fall back) with the
-- offset after it (the second 02:30). A zone PostgreSQL does not know is read as UTC (the
-- lease of every person's deliveries must not fail on one).
CREATE FUNCTION quiet_until(p_user TEXT, p_at TIMESTAMPTZ) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    q_start time;
    q_end time;
    zone text;
    here timestamp;
    ends timestamptz;
BEGIN
    SELECT n.quiet_start, n.quiet_end, coalesce(n.time_zone, 'UTC')
    INTO q_start, q_end, zone
    FROM notification_settings AS n WHERE n.user_id = p_user;
    IF q_start IS NULL OR q_start = q_end THEN
        RETURN NULL;
    END IF;
    BEGIN
        here := p_at AT TIME ZONE zone;
    EXCEPTION WHEN invalid_parameter_value THEN
        zone := 'UTC';
        here := p_at AT TIME ZONE zone;
    END;
    IF q_start < q_end THEN
        IF here::time < q_start OR here::time >= q_end THEN
            RETURN NULL;
        END IF;
        ends := (here::date + q_end) AT TIME ZONE zone;
    ELSIF here::time >= q_start THEN
        ends := (here::date + 1 + q_end) AT TIME ZONE zone;
    ELSIF here::time < q_end THEN
        ends := (here::date + q_end) AT TIME ZONE zone;
    ELSE
        RETURN NULL;
    END IF;
    RETURN CASE WHEN ends > p_at THEN ends END;
END
$$;
