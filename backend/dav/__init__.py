"""CalDAV (RFC 4791; specs/caldav.md) for tasks: a CalDAV client (Apple Reminders, Thunderbird,
DAVx5, todoman) reads and writes the tasks the REST API serves, through the same services.

`auth.py` signs in (HTTP Basic with an app password); `xml.py` parses bodies (`defusedxml`,
bounded) and builds answers; `resources.py` the collections and their properties; `routes.py`
the routes; `objects.py` a task as one reader's object, written by `object_writes.py`;
`reports.py` and `sync.py` the REPORTs; `vtodo.py` a task as a VTODO and back;
`recurrence_forms.py` the ways clients complete a recurring task; `lists.py` a collection's
own writes.
"""
