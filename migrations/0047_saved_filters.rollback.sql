-- Drops every saved filter.
DROP TABLE saved_filters;
