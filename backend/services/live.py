"""What wakes the live change streams (issue 51): which users' change feeds moved.

Each worker has one reader (`backend/api/live.py`) that polls the head of `task_events` every
`STREAM_POLL_MS` while it has a stream open, never one query per stream. A change event in a
space wakes that space's user and, for a shared list's change, the list's members: the users
whose feed (`backend/services/changes.py`) may now answer more. The reader only wakes; what
a stream sends is always its caller's feed page, read through the door's unit of work, so
who sees what is the feed's rule and nothing here.

Polling rather than `LISTEN`/`NOTIFY` (specs/events.md, "The live stream"): no trigger or
writer sends anything (the write path is unchanged), no direct connection is needed (a
pooled endpoint drops `LISTEN`), and it does not depend on the events worker running.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, text

from backend.db.engine import autocommitted
from backend.models.task_event import FEED_TYPES

_TYPES = ", ".join(f"'{t}'" for t in FEED_TYPES)
# The primary key's range: the newest rows only. A member's wake-up comes from the list's
# membership as it is now (a removed member's tombstones are in its own space: woken too).
_MOVED_SQL = """
SELECT e.id, e.user_id, m.member_id
FROM task_events AS e
LEFT JOIN list_members AS m ON m.user_id = e.user_id AND m.list_id = e.list_id
WHERE e.id > :floor AND e.type IN ({types})
ORDER BY e.id
LIMIT :limit
"""
_MOVED = text(_MOVED_SQL.format(types=_TYPES))
_HEAD = text("SELECT coalesce(max(id), 0) FROM task_events")


def feed_head(engine: Engine) -> int:
    """The newest change event's id (every user's): where the reader starts."""
    with autocommitted(engine) as conn:
        return int(conn.execute(_HEAD).scalar_one())


def moved_since(engine: Engine, floor: int, limit: int) -> Sequence[tuple[int, str, str | None]]:
    """Events after `floor`, oldest first: (id, the space's user, a member of its list)."""
    with autocommitted(engine) as conn:
        rows = conn.execute(_MOVED, {"floor": floor, "limit": limit}).all()
    return [(int(r.id), str(r.user_id), r.member_id) for r in rows]
