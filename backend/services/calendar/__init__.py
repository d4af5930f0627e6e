"""Calendars: CalDAV's objects and statements, calendar feeds."""
