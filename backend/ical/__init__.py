"""A VTODO's text, read and written by CalDAV's mapping (models/task_calendar.py): CalDAV's
objects (dav/), the export's tasks.ics and the iCalendar import use it; no HTTP."""
