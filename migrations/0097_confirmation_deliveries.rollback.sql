-- Back to confirmations sent by the API (0095): queued ones are dropped.
DROP TRIGGER notification_settings_queue_confirmation_on_update ON notification_settings;
DROP TRIGGER notification_settings_queue_confirmation ON notification_settings;
DROP FUNCTION notification_settings_queue_confirmation();
DELETE FROM reminder_deliveries WHERE channel = 'confirm';
ALTER TABLE reminder_deliveries DROP CONSTRAINT ck_reminder_deliveries_channel;
ALTER TABLE reminder_deliveries ADD CONSTRAINT ck_reminder_deliveries_channel CHECK (
    (channel = 'push' AND subscription_id IS NOT NULL)
    OR (channel = 'email' AND subscription_id IS NULL)
);
ALTER TABLE reminder_deliveries ALTER COLUMN task_id SET NOT NULL;
ALTER TABLE notification_settings DROP COLUMN confirm_nonce;
