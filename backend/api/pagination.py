"""Opaque, signed cursors for keyset pagination.

A cursor carries where the last page ended (sort key and id) and what it belongs to (user,
sort, order, filters). It is HMAC-signed, so a cursor that was edited, or that belongs to
another user or another query, is refused (422) instead of silently paging something else.
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


def _scope(user_id: str, query: TaskListQuery) -> str:
    """A digest of what the cursor belongs to: fixed size, whatever the filters hold."""
    parts = [user_id, query.sort.value, query.direction.value, query.filters.fingerprint()]
    return _b64(hashlib.sha256(json.dumps(parts).encode()).digest()[:18])


def encode_cursor(secret: str, user_id: str, query: TaskListQuery, keyset: Keyset) -> str:
    key: Any = keyset.key
    if isinstance(key, datetime):
        key = key.isoformat()
    payload = json.dumps(
        {"k": key, "i": keyset.id, "s": _scope(user_id, query)}, ensure_ascii=False
    ).encode()
    signature = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def decode_cursor(secret: str, user_id: str, query: TaskListQuery, cursor: str) -> Keyset:
    invalid = InvalidRequest(
        "Invalid cursor: use the next_cursor of the same listing, unchanged",
        details=[{"field": "query.cursor", "message": "invalid cursor", "type": "cursor"}],
    )
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        encoded_payload, encoded_signature = cursor.split(".")
        payload = _unb64(encoded_payload)
        expected = hmac.new(_key(secret), payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(encoded_signature)):
            raise invalid
        data = json.loads(payload)
        if data["s"] != _scope(user_id, query):
            raise invalid
        return Keyset(key=_parse_key(query.sort, data["k"]), id=int(data["i"]))
    except (ValueError, KeyError, TypeError):
        raise invalid from None


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
