-- Drops every push subscription (browsers get no more pushes until they subscribe again).
DROP TABLE push_subscriptions;
