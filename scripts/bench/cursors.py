"""The API's signed cursors (`backend/api/pagination.py`), for the floor and the baseline.

One copy shared by both servers, so they sign exactly the API's bytes: a listing's
`next_cursor` (where the page ended, the change-feed position of the listing's first page, and
a digest of what it belongs to) and the listing's `meta.changes_cursor` (a feed position and
its user). Pure standard library: the servers import neither the API nor its models.
`tests/scripts/test_bench_cursors.py` checks these against `backend.api.pagination`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any


def _key(secret: str) -> bytes:
    # `pagination._key`: a key of its own, derived from the signing secret.
    return hashlib.sha256(b"task-api/cursor/v1\0" + secret.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _digest(parts: list[str]) -> str:
    return _b64(hashlib.sha256(json.dumps(parts).encode()).digest()[:18])


def _encode(secret: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=False).encode()
    signature = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def list_fingerprint(status: str, q: str | None) -> str:
    """`TaskFilters.fingerprint()` of a listing filtered by status and search only."""
    return json.dumps(
        {
            "status": status,
            "priorities": [],
            "tags": [],
            "due_before": None,
            "due_after": None,
            "overdue": None,
            "q": q,
            "updated_since": None,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def encode_cursor(
    secret: str, user_id: str, fingerprint: str, key: datetime, task_id: int, feed: int
) -> str:
    """`pagination.encode_cursor` for the default sort (created, newest first): the last
    row's sort key and id, and the feed position of the listing's first page."""
    scope = _digest([user_id, "created", "desc", fingerprint])
    return _encode(secret, {"k": key.isoformat(), "i": task_id, "c": feed, "s": scope})


def encode_changes_cursor(secret: str, user_id: str, position: int) -> str:
    """`pagination.encode_changes_cursor`: the listing's `meta.changes_cursor`."""
    return _encode(secret, {"c": position, "s": _digest([user_id, "changes"])})
