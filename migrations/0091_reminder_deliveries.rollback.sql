-- Drops the reminders' pending pushes and emails and every notification setting.
DROP TRIGGER task_events_reminder_deliveries ON task_events;
DROP FUNCTION reminder_deliveries_fan_out();
DROP TABLE reminder_deliveries;
DROP TABLE notification_settings;
