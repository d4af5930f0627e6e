"""A CalDAV object's ETag, in this one module: built by the database (`tag`), over a written row in
the write's own message (`WRITTEN_TAG`, no statement more) and read back (`vouched`). Its format is
`RENDER_FORMAT` (specs/caldav.md, "ETags")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Text, and_, case, cast, extract, func, literal, literal_column, select
from sqlalchemy.sql.expression import bindparam

from backend.models import Task
from backend.recurrence import TIME_ZONES
from backend.services.tasks.task_statements import TASK_VIEW

_T = Task.__table__.c  # type: ignore[attr-defined]

# The version of `vtodo.render`'s output, in every tag: bump it when the same values render anew.
RENDER_FORMAT = 5
_READER_REMINDERS = next(c for c in TASK_VIEW if c.name == "reminders").element


def tag(kept: Any, parent_uid: Any, t: Any = _T, reminders: Any = _READER_REMINDERS) -> Any:
    """An object's strong ETag, computed by the database from everything `vtodo.render` makes its
    body of, so every read and write by href compares one expression (If-Match in the write's own
    message): `"<id>-<version>.<time zone>.<digest>"` for a task with no rule and no parent
    (`vouched`), else `"o<digest>"`."""
    body = case((kept.c.served, kept.c.body))
    body_digest = func.encode(func.sha256(func.convert_to(func.coalesce(body, ""), "UTF8")), "hex")
    made_of = func.jsonb_build_array(
        literal_column(str(RENDER_FORMAT)),
        t.id,
        t.version,
        extract("epoch", t.updated_at),
        t.position,
        parent_uid,
        reminders,
        body_digest,
        fresh(kept, t),
    )
    digest = func.encode(func.sha256(func.convert_to(cast(made_of, Text), "UTF8")), "hex")
    vouching = and_(t.recurrence.is_(None), t.parent_id.is_(None))
    shown = cast(t.id, Text) + "-" + cast(t.version, Text) + "." + t.time_zone + "."
    inner = case((vouching, shown + func.left(digest, 32)), else_="o" + func.left(digest, 39))
    return literal('"', Text) + inner + literal('"', Text)


def fresh(kept: Any, t: Any = _T) -> Any:
    """Whether the task's last write stored the kept object (its own DTSTAMP served)."""
    return kept.c.updated_at == t.updated_at


# `tag` of the fresh kept object `:dav_body` (served, no parent) over each row a write returns
# (`r`, TASK_VIEW's: its reminders the reader's), answered beside them (`Sender.beside`).
_NAMES = ("id", "version", "updated_at", "position", "reminders", "recurrence", "parent_id")
_R = SimpleNamespace(**{name: literal_column(f"r.{name}") for name in (*_NAMES, "time_zone")})
_KEPT = SimpleNamespace(
    c=SimpleNamespace(
        served=literal_column("true"), body=bindparam("dav_body", Text), updated_at=_R.updated_at
    )
)
WRITTEN_TAG = select(tag(_KEPT, literal_column("NULL"), _R, _R.reminders).label("dav_tag"))


# A tag that says what an update needs of its task (`tag`'s first form).
_VOUCHING = re.compile(r'"([0-9]{1,18})-([0-9]{1,18})\.([A-Za-z0-9_+/-]{1,64})\.[0-9a-f]{32}"')
_ZONES = frozenset(TIME_ZONES)


@dataclass(frozen=True)
class Vouched:
    """What a tag `"<id>-<version>.<time zone>.<digest>"` says of its task (its version, zone, no
    rule, no parent), true where a write's own message finds it current."""

    id: int
    version: int
    time_zone: str
    tag: str


def vouched(if_match: str | None) -> Vouched | None:
    """The task an `If-Match` of one tag vouches for (None: none, another tag, several, `*`)."""
    if if_match is None:
        return None
    match = _VOUCHING.fullmatch(if_match.strip())
    if match is None or match.group(3) not in _ZONES:
        return None
    return Vouched(int(match.group(1)), int(match.group(2)), match.group(3), match.group(0))
