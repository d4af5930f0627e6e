"""Delivery settings: notification settings, push subscriptions, reminders."""
