DROP TABLE event_sinks;
