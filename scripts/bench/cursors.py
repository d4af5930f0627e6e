"""The API's encrypted cursors (`backend/api/pagination.py`), for the baseline.

A copy, so that the baseline issues exactly the API's bytes: a listing's
`next_cursor` (where the page ended and the change-feed position of the listing's first page,
bound to what it belongs to) and the listing's `meta.changes_cursor` (a feed position, bound
to its user), sealed with AES-SIV as the API does. Standard library and `cryptography` only:
the servers import neither the API nor its models. `tests/scripts/test_bench_cursors.py`
checks these against `backend.api.pagination`.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@lru_cache(maxsize=4)
def _cipher(secret: str) -> AESSIV:
    # `pagination._cipher`: a key of its own, derived from the signing secret.
    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"task-api/cursor/v2")
    return AESSIV(key.derive(secret.encode()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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
    scope = [b"task-api/cursor/listing", *(p.encode() for p in (user_id, "created", "desc"))]
    plaintext = struct.pack(">QQ", feed, task_id) + b"\x01" + key.isoformat().encode()
    return _b64(_cipher(secret).encrypt(plaintext, [*scope, fingerprint.encode()]))


def encode_changes_cursor(secret: str, user_id: str, position: int) -> str:
    """`pagination.encode_changes_cursor`: the listing's `meta.changes_cursor`."""
    scope = [b"task-api/cursor/changes", user_id.encode()]
    return _b64(_cipher(secret).encrypt(struct.pack(">Q", position), scope))
