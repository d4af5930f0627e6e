"""Quiet hours (migration 0099; specs/events.md, "Reminder deliveries"): the setting, its
window on the person's clock (`quiet_until`, frozen instants in several zones, across
midnight and over DST changes); the engine's lease holding a push until the window ends is
in test_push_delivery.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account

URL = "/api/notification-settings"


def _patch(client: TestClient, who: Account, body: Any) -> Any:
    return client.patch(URL, json=body, headers=who.headers)


def test_quiet_hours_are_set_read_and_cleared(client: TestClient, alice: Account) -> None:
    assert client.get(URL, headers=alice.headers).json()["data"]["quiet_hours"] is None
    window = {"start": "22:00", "end": "07:30"}
    changed = _patch(client, alice, {"quiet_hours": window, "time_zone": "Europe/Berlin"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["quiet_hours"] == window
    assert _patch(client, alice, {"push": False}).json()["data"]["quiet_hours"] == window
    assert client.get(URL, headers=alice.headers).json()["data"]["quiet_hours"] == window
    cleared = _patch(client, alice, {"quiet_hours": None})
    assert cleared.status_code == 200 and cleared.json()["data"]["quiet_hours"] is None


@pytest.mark.parametrize(
    "window",
    [
        {"start": "24:00", "end": "07:00"},
        {"start": "7:00", "end": "08:00"},
        {"start": "22:00:00", "end": "07:00"},
        {"start": "22:60", "end": "07:00"},
        {"start": "22:00"},
        {"start": "22:00", "end": "07:00", "zone": "UTC"},
        {"start": 2200, "end": 700},
        {"start": "22:00", "end": None},
        {"start": "\uff12\uff12:\uff10\uff10", "end": "07:00"},
        "22:00-07:00",
        True,
        [],
    ],
)
def test_a_bad_window_is_422_and_changes_nothing(
    client: TestClient, alice: Account, window: Any
) -> None:
    refused = _patch(client, alice, {"quiet_hours": window, "push": False})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.get(URL, headers=alice.headers).json()["data"]["push"] is True


def _until(engine: Engine, user: str, at: str) -> datetime | None:
    with engine.connect() as conn:
        value: datetime | None = conn.execute(
            text("SELECT quiet_until(:u, CAST(:at AS timestamptz))"), {"u": user, "at": at}
        ).scalar_one()
    return value


def _window(
    engine: Engine, user: str, start: str | None, end: str | None, zone: str | None
) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notification_settings (user_id, quiet_start, quiet_end, time_zone) "
                "VALUES (:u, CAST(:s AS time), CAST(:e AS time), :z) ON CONFLICT (user_id) DO "
                "UPDATE SET quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end, "
                "time_zone = EXCLUDED.time_zone"
            ),
            {"u": user, "s": start, "e": end, "z": zone},
        )


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


# (zone, start, end, the instant in UTC, the window's end in UTC or None: not quiet then)
CASES = [
    # Berlin in winter (UTC+1), a window across midnight.
    ("Europe/Berlin", "22:00", "07:00", "2026-01-15 21:30", "2026-01-16 06:00"),
    ("Europe/Berlin", "22:00", "07:00", "2026-01-16 05:59", "2026-01-16 06:00"),
    ("Europe/Berlin", "22:00", "07:00", "2026-01-16 06:00", None),
    ("Europe/Berlin", "22:00", "07:00", "2026-01-15 20:59", None),
    # The night the clocks go forward (29 March, 02:00 -> 03:00): 07:00 is UTC+2 already.
    ("Europe/Berlin", "22:00", "07:00", "2026-03-28 22:00", "2026-03-29 05:00"),
    # An end the clock skips (02:30 that night): read with the offset before the jump.
    ("Europe/Berlin", "23:00", "02:30", "2026-03-28 23:30", "2026-03-29 01:30"),
    # New York in summer (UTC-4), a window within the day.
    ("America/New_York", "09:00", "17:00", "2026-07-01 14:00", "2026-07-01 21:00"),
    ("America/New_York", "09:00", "17:00", "2026-07-01 21:00", None),
    ("America/New_York", "09:00", "17:00", "2026-07-01 12:59", None),
    # The night the clocks go back (1 November, 02:00 EDT -> 01:00 EST): a window ending at
    # 06:00 ends at 06:00 EST, 11:00 UTC, five hours after an 01:00 UTC instant's 21:00 EDT.
    ("America/New_York", "21:00", "06:00", "2026-11-01 01:00", "2026-11-01 11:00"),
    # An end the clock shows twice (01:30): the second, after the change (06:30 UTC).
    ("America/New_York", "22:00", "01:30", "2026-11-01 05:10", "2026-11-01 06:30"),
    # Kolkata (UTC+5:30, no DST): half-hour offsets.
    ("Asia/Kolkata", "23:00", "06:00", "2026-05-01 18:00", "2026-05-02 00:30"),
    # No zone set: UTC.
    (None, "22:00", "07:00", "2026-01-15 23:00", "2026-01-16 07:00"),
    # Equal ends: no window.
    ("Europe/Berlin", "08:00", "08:00", "2026-01-15 07:00", None),
]


@pytest.mark.parametrize(("zone", "start", "end", "at", "until"), CASES)
def test_the_window_is_read_on_the_persons_clock(
    db_engine: Engine,
    alice: Account,
    zone: str | None,
    start: str,
    end: str,
    at: str,
    until: str | None,
) -> None:
    _window(db_engine, alice.id, start, end, zone)
    expected = None if until is None else _utc(until)
    assert _until(db_engine, alice.id, f"{at}+00") == expected


def test_no_window_or_a_zone_the_database_does_not_know(db_engine: Engine, alice: Account) -> None:
    assert _until(db_engine, alice.id, "2026-01-15 23:00+00") is None  # no settings row
    _window(db_engine, alice.id, None, None, "Europe/Berlin")
    assert _until(db_engine, alice.id, "2026-01-15 23:00+00") is None
    # A zone the API took that this PostgreSQL lacks must not fail every lease: UTC.
    _window(db_engine, alice.id, "22:00", "07:00", "Mars/Olympus_Mons")
    assert _until(db_engine, alice.id, "2026-01-15 23:00+00") == _utc("2026-01-16 07:00")
