-- Drops every app password (CalDAV clients signed in with them are refused).
DROP TABLE app_passwords;
