-- Drops every import and the keys of what they created (the tasks stay).
DROP TABLE import_items;
DROP TABLE imports;
