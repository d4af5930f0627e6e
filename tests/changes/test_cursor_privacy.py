"""Cursors reveal nothing about other users (issue 25, item 5).

A feed position is an id of `task_events`, which numbers every user's changes in one
sequence. Cursors carried it readably (base64 JSON, `"c": <id>`), so any user could watch how
many changes all users make by decoding their own cursors between two of their own changes.
Every cursor (a listing's `next_cursor` and `meta.changes_cursor`, the feed's `next_cursor`)
is now encrypted; a cursor of the earlier format is a 422 with the error envelope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.models import TaskSort
from backend.services.tasks.task_listing import TaskListQuery
from tests.changes.test_outbox import create
from tests.conftest import Account

FEED = "/api/tasks/changes"
# Far from any id a fresh test database hands out, and from anything random bytes hold by
# chance: 9 decimal digits, 4 significant bytes. (The table is truncated with RESTART
# IDENTITY after each test.)
FIRST_EVENT_ID = 987_654_321


def _representations(number: int) -> list[bytes]:
    """How a cursor could carry `number` readably: digits, or binary of either byte order."""
    forms = [str(number).encode()]
    for code in ("I", "Q"):  # 4 and 8 bytes
        forms += [struct.pack(f">{code}", number), struct.pack(f"<{code}", number)]
    assert all(len(form) >= 4 for form in forms)
    return forms


def _decodings(cursor: str) -> list[bytes]:
    """Everything base64url can make of the cursor and of each `.`-separated part of it."""
    found = []
    for part in [cursor, *cursor.split(".")]:
        try:
            found.append(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (binascii.Error, ValueError):
            continue
    return found


def _latest_event_id(engine: Engine, user_id: str) -> int:
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT max(id) FROM task_events WHERE user_id = :u"), {"u": user_id}
        ).scalar_one()
    assert value is not None
    return int(value)


def test_no_cursor_carries_the_global_change_counter(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    with db_engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE task_events ALTER COLUMN id RESTART {FIRST_EVENT_ID}"))
    create(client, alice, "a1")
    create(client, alice, "a2")
    before = _latest_event_id(db_engine, alice.id)
    for n in range(5):  # the other users' activity alice should not be able to count
        create(client, bob, f"b{n}")
    create(client, alice, "a3")
    after = _latest_event_id(db_engine, alice.id)
    assert after == before + 6 and before >= FIRST_EVENT_ID

    listing = client.get("/api/tasks", params={"limit": 1}, headers=alice.headers).json()
    feed = client.get(FEED, params={"limit": 1}, headers=alice.headers).json()
    end = client.get(FEED, headers=alice.headers).json()
    cursors = {
        "listing next_cursor": listing["meta"]["next_cursor"],
        "listing changes_cursor": listing["meta"]["changes_cursor"],
        "feed next_cursor (mid-feed)": feed["meta"]["next_cursor"],
        "feed next_cursor (at the end)": end["meta"]["next_cursor"],
    }
    assert feed["meta"]["has_more"] and not end["meta"]["has_more"]
    positions = range(FIRST_EVENT_ID, after + 1)
    for name, cursor in cursors.items():
        assert isinstance(cursor, str) and cursor, name
        for decoded in _decodings(cursor):
            for position in positions:
                for form in _representations(position):
                    assert form not in decoded, (name, position, decoded)
        # And no readable structure at all (on 5543cfd: JSON with the id under "c").
        assert not any(b'"c"' in decoded for decoded in _decodings(cursor)), name
    # The cursors still work: the feed from the listing's position has nothing new.
    assert (
        client.get(
            FEED, params={"cursor": cursors["listing changes_cursor"]}, headers=alice.headers
        ).json()["data"]
        == []
    )


def _old_format(settings: Settings, data: dict[str, Any]) -> str:
    """A cursor as 5543cfd issued them: base64url JSON, a `.`, its HMAC-SHA256."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    key = hashlib.sha256(b"task-api/cursor/v1\0" + settings.signing_secret().encode()).digest()
    payload = json.dumps(data, ensure_ascii=False).encode()
    return f"{b64(payload)}.{b64(hmac.new(key, payload, hashlib.sha256).digest())}"


def _old_scope(parts: list[str]) -> str:
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()[:18]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.parametrize("kind", ["listing", "changes"])
def test_a_cursor_of_the_earlier_format_is_a_clear_422(
    client: TestClient, alice: Account, settings: Settings, db_engine: Engine, kind: str
) -> None:
    first = create(client, alice, "a1")
    create(client, alice, "a2")
    position = _latest_event_id(db_engine, alice.id)
    if kind == "listing":
        # Exactly what the first page of `?limit=1` handed out before: its last task (a2 is
        # newest first, so the next page holds a1) and the feed position.
        page = client.get("/api/tasks", params={"limit": 1}, headers=alice.headers).json()
        last = page["data"][0]
        assert last["id"] != first
        query = TaskListQuery()
        assert query.sort is TaskSort.created
        scope = [alice.id, query.sort.value, query.direction.value, query.filters.fingerprint()]
        data = {"k": last["created_at"], "i": last["id"], "c": position, "s": _old_scope(scope)}
        path, params = "/api/tasks", {"limit": 1}
    else:
        data = {"c": position, "s": _old_scope([alice.id, "changes"])}
        path, params = FEED, {}
    old = _old_format(settings, data)
    response = client.get(path, params={**params, "cursor": old}, headers=alice.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"].startswith("Invalid")
    assert error["details"][0]["field"] == "query.cursor"
