"""CalDAV (RFC 4791) for tasks, issue 62: a CalDAV client (Apple Reminders, Thunderbird, DAVx5,
todoman) reads and writes the tasks the REST API serves, through the same services.

- `auth.py`: HTTP Basic with an app password (never a bearer token or the account's password),
  failed attempts rate-limited; the caller's `UnitOfWork`, entered as the REST door's is;
- `xml.py`: request bodies parsed with `defusedxml` (no DTD, no entities, bounded size and
  depth) and `multistatus` answers built with the standard library's ElementTree;
- `resources.py`: the resources and their properties: the root, the principal, the
  calendar home and one collection per list the caller may read (and one for tasks in no
  list), read through `ListService` (the access relation: a list the caller may not read is
  the missing one's 404);
- `routes.py`: discovery (`/.well-known/caldav`), OPTIONS, PROPFIND, REPORT and the objects
  methods, each joined through `routes.dav_route` (auth, error bodies, the read-only scope's
  refusal of writes);
- `objects.py`: a task as the object one reader gets (GET), written through the task service
  (PUT, DELETE), its ETag the database's (`DavObjectService`'s `tag`); `reports.py`:
  `calendar-multiget` and
  `calendar-query`;
- `vtodo.py`: a task as a VTODO and back (parse; render by merging our fields into the
  client's kept object, `backend/models/dav_object.py`); `recurrence_forms.py`: the three ways
  clients complete a recurring task, resolved into the service's own completion
  (specs/caldav.md);
- `sync.py`: `sync-collection` (RFC 6578) on the change feed, and the collection's
  `sync-token` / `getctag` (one value: a position of the caller's feed).
"""
