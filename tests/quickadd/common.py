"""What the quick-add tests share: a directory of lists and members, and `read` at a frozen
moment in a named zone."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from zoneinfo import ZoneInfo

from backend.quickadd import Directory, Reading, read

DIRECTORY = Directory(
    lists={"home": 1, "work": 2, "two words": 3, "a": 4},
    members={None: {"me": "user-me"}, 1: {"bob": "user-bob"}, 2: {"ann": "user-ann"}},
)
BERLIN = ZoneInfo("Europe/Berlin")
# A Saturday.
SATURDAY = datetime(2026, 11, 28, 15, 0, tzinfo=BERLIN)


def moment(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def read_at(
    text: str,
    now: datetime = SATURDAY,
    *,
    default_list: int | None = None,
    ignore: Collection[int] = (),
) -> Reading:
    zone = now.tzinfo
    assert isinstance(zone, ZoneInfo)
    return read(
        text, now=now, zone=zone, directory=DIRECTORY, default_list=default_list, ignore=ignore
    )


def spans(reading: Reading) -> list[tuple[str, str]]:
    return [(token.kind, token.text) for token in reading.tokens]
