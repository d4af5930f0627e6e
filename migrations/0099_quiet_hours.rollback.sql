DROP FUNCTION quiet_until(TEXT, TIMESTAMPTZ);
ALTER TABLE notification_settings DROP CONSTRAINT ck_notification_settings_quiet_hours;
ALTER TABLE notification_settings DROP COLUMN quiet_end;
ALTER TABLE notification_settings DROP COLUMN quiet_start;
