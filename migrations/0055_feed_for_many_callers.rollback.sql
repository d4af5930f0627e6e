-- 0054's state: the feed's horizon for one caller only (0030's hold and horizon, kept).
DROP FUNCTION task_events_horizon(TEXT);
DROP FUNCTION task_events_hold_many(TEXT[]);
