"""Opaque, signed cursors: keyset pagination of listings, and positions in the change feed.

A listing cursor carries where the last page ended (sort key and id), the change-feed
position of the listing's first page, and what it belongs to (user, sort, order, filters). A
changes cursor carries a feed position and its user. Both are HMAC-signed, so a cursor that
was edited, or that belongs to another user, another query or the other kind, is refused
(422) instead of silently paging something else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from backend.errors import InvalidRequest
from backend.models import Priority, TaskSort
from backend.services.task_listing import Keyset, TaskListQuery

_DATETIME_KEYS = {TaskSort.created, TaskSort.updated, TaskSort.due_date}
# A cursor holds one sort key (a title is at most 200 characters, 800 UTF-8 bytes) plus fixed
# overhead, so every cursor the API issues fits.
MAX_CURSOR_LENGTH = 2048


def _key(secret: str) -> bytes:
    # A key of its own, derived from the signing secret, so cursors cannot be used as tokens.
    return hashlib.sha256(b"task-api/cursor/v1\0" + secret.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _digest(parts: list[str]) -> str:
    """What a cursor belongs to, as a fixed-size digest whatever the parts hold."""
    return _b64(hashlib.sha256(json.dumps(parts).encode()).digest()[:18])


def _scope(user_id: str, query: TaskListQuery) -> str:
    return _digest([user_id, query.sort.value, query.direction.value, query.filters.fingerprint()])


def _changes_scope(user_id: str) -> str:
    return _digest([user_id, "changes"])


def _encode(secret: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=False).encode()
    signature = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def _decode(secret: str, cursor: str, scope: str) -> dict[str, Any]:
    """The signed payload of `cursor`; ValueError unless it is intact and of `scope`."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError("cursor too long")
    encoded_payload, encoded_signature = cursor.split(".")
    payload = _unb64(encoded_payload)
    expected = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(encoded_signature)):
        raise ValueError("bad signature")
    data = json.loads(payload)
    if not isinstance(data, dict) or data.get("s") != scope:
        raise ValueError("another user's, query's or kind's cursor")
    return data


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(
        message, details=[{"field": "query.cursor", "message": "invalid cursor", "type": "cursor"}]
    )


def _position(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("bad feed position")
    return value


def encode_cursor(
    secret: str, user_id: str, query: TaskListQuery, keyset: Keyset, feed: int
) -> str:
    key: Any = keyset.key
    if isinstance(key, datetime):
        key = key.isoformat()
    data = {"k": key, "i": keyset.id, "c": feed, "s": _scope(user_id, query)}
    return _encode(secret, data)


def decode_cursor(
    secret: str, user_id: str, query: TaskListQuery, cursor: str
) -> tuple[Keyset, int]:
    """Where the page ends, and the change-feed position of the listing's first page."""
    try:
        data = _decode(secret, cursor, _scope(user_id, query))
        keyset = Keyset(key=_parse_key(query.sort, data["k"]), id=int(data["i"]))
        return keyset, _position(data["c"])
    except (ValueError, KeyError, TypeError):
        raise _invalid(
            "Invalid cursor: use the next_cursor of the same listing, unchanged"
        ) from None


def encode_changes_cursor(secret: str, user_id: str, position: int) -> str:
    return _encode(secret, {"c": position, "s": _changes_scope(user_id)})


def decode_changes_cursor(secret: str, user_id: str, cursor: str) -> int:
    try:
        return _position(_decode(secret, cursor, _changes_scope(user_id))["c"])
    except (ValueError, KeyError, TypeError):
        raise _invalid(
            "Invalid changes cursor: use a next_cursor of the change feed or the "
            "meta.changes_cursor of a listing, unchanged"
        ) from None


def _parse_key(sort: TaskSort, value: Any) -> datetime | str | None:
    if value is None and sort is TaskSort.due_date:
        return None
    if not isinstance(value, str):
        raise ValueError("cursor key must be a string")
    if sort in _DATETIME_KEYS:
        return datetime.fromisoformat(value)
    if sort is TaskSort.priority:
        return Priority(value).value
    return value
