-- Drops the feeds: every feed URL stops working.
DROP TABLE calendar_feeds;
