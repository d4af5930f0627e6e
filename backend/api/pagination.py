"""Opaque, encrypted cursors: keyset pagination of listings, and positions in the change feed.

A feed position numbers every user's changes together, so a cursor must not be readable: it is
sealed with AES-SIV (RFC 5297), deterministic authenticated encryption (no nonce needed: equal
cursors only tell their holder the position did not move). What a cursor belongs to (user,
sort, order, filters, or user and "changes") is its associated data, authenticated, never
carried: an edited cursor, or another user's, query's or kind's, is refused (422). Numbers are
packed at a fixed width, so not even a cursor's length depends on the counter.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Query

from backend.errors import InvalidRequest
from backend.models import Priority, TaskSort
from backend.models.common import DecimalDigits, ListMeta
from backend.services.tasks.task_listing import Keyset, TaskListQuery
from backend.services.unit_of_work import UnitOfWork

_DATETIME_KEYS = {TaskSort.created, TaskSort.updated, TaskSort.due_date}
# One sort key (a title: at most 800 UTF-8 bytes) plus 33 bytes of numbers, marker and IV fit.
MAX_CURSOR_LENGTH = 2048
# The query parameters of a keyset-paged listing of rows (trash, activity, chat, a task's children).
PAGE_MAX = 100
PageSize = Annotated[
    int, Query(ge=1, le=PAGE_MAX, description=f"Page size, 1-{PAGE_MAX}."), DecimalDigits
]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`meta.next_cursor` of the previous page."),
]

# The associated data of each kind of cursor starts with its label.
_LISTING = b"task-api/cursor/listing"
_CHANGES = b"task-api/cursor/changes"
# Listing plaintext: feed position, last id (unsigned 64-bit each), then the last sort key:
# one marker byte (0: none, a due date sort's NULL; 1: the UTF-8 text that follows).
_NUMBERS = struct.Struct(">QQ")
_POSITION = struct.Struct(">Q")
_NO_KEY, _TEXT_KEY = b"\x00", b"\x01"


@lru_cache(maxsize=4)
def _cipher(secret: str) -> AESSIV:
    # AES-256-SIV's 64-byte key, derived from the signing secret: cursors and tokens share none.
    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"task-api/cursor/v2")
    return AESSIV(key.derive(secret.encode()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # padding, or other characters, or spare bits set: edited
        raise ValueError("not canonical base64url")
    return data


def _listing_scope(user_id: str, query: TaskListQuery) -> list[bytes]:
    parts = [user_id, query.sort.value, query.direction.value, query.filters.fingerprint()]
    return [_LISTING, *(part.encode() for part in parts)]


def _changes_scope(user_id: str) -> list[bytes]:
    return [_CHANGES, user_id.encode()]


def _seal(secret: str, plaintext: bytes, scope: list[bytes]) -> str:
    return _b64(_cipher(secret).encrypt(plaintext, scope))


def _open(secret: str, cursor: str, scope: list[bytes]) -> bytes:
    """The plaintext of `cursor`; ValueError unless it is intact and of `scope`."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError("cursor too long")
    try:
        return _cipher(secret).decrypt(_unb64(cursor), scope)
    except (InvalidTag, binascii.Error) as exc:
        raise ValueError("another user's, query's or kind's cursor, or edited") from exc


def invalid_cursor(changes: bool = False) -> InvalidRequest:
    """The 422 of a cursor that is not intact and of its listing (or, `changes`, the feed)."""
    message = (
        "Invalid changes cursor: use a next_cursor of the change feed or the "
        "meta.changes_cursor of a listing, unchanged"
        if changes
        else "Invalid cursor: use the next_cursor of the same listing, unchanged"
    )
    details = [{"field": "query.cursor", "message": "invalid cursor", "type": "cursor"}]
    return InvalidRequest(message, details=details)


def _position(value: int) -> int:
    if value > 2**63 - 1:  # a BIGINT id
        raise ValueError("bad feed position")
    return value


def encode_cursor(
    secret: str, user_id: str, query: TaskListQuery, keyset: Keyset, feed: int
) -> str:
    key: Any = keyset.key
    if isinstance(key, datetime):
        key = key.isoformat()
    tail = _NO_KEY if key is None else _TEXT_KEY + str(key).encode()
    return _seal(secret, _NUMBERS.pack(feed, keyset.id) + tail, _listing_scope(user_id, query))


def decode_cursor(
    secret: str, user_id: str, query: TaskListQuery, cursor: str
) -> tuple[Keyset, int]:
    """Where the page ends, and the change-feed position of the listing's first page."""
    try:
        plaintext = _open(secret, cursor, _listing_scope(user_id, query))
        feed, last_id = _NUMBERS.unpack_from(plaintext)
        marker, text = plaintext[_NUMBERS.size : _NUMBERS.size + 1], plaintext[_NUMBERS.size + 1 :]
        if marker == _NO_KEY and not text:
            raw_key = None
        elif marker == _TEXT_KEY:
            raw_key = text.decode()
        else:
            raise ValueError("bad sort key")
        keyset = Keyset(key=_parse_key(query.sort, raw_key), id=_position(last_id))
        return keyset, _position(feed)
    except (ValueError, struct.error):  # UnicodeDecodeError is a ValueError
        raise invalid_cursor() from None


def encode_changes_cursor(secret: str, user_id: str, position: int) -> str:
    return _seal(secret, _POSITION.pack(position), _changes_scope(user_id))


def decode_changes_cursor(secret: str, user_id: str, cursor: str) -> int:
    try:
        plaintext = _open(secret, cursor, _changes_scope(user_id))
        (position,) = _POSITION.unpack(plaintext)
        return _position(position)
    except (ValueError, struct.error):
        raise invalid_cursor(changes=True) from None


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


# Row listings' cursors (trash, activity, chat, children): a sort key and an id, sealed alike.
_ROWS = b"task-api/cursor/rows"


def encode_row_cursor(secret: str, kind: str, user_id: str, key: int, row_id: int) -> str:
    return _seal(secret, _NUMBERS.pack(key, row_id), [_ROWS, kind.encode(), user_id.encode()])


def decode_row_cursor(secret: str, kind: str, user_id: str, cursor: str) -> tuple[int, int]:
    try:
        plaintext = _open(secret, cursor, [_ROWS, kind.encode(), user_id.encode()])
        key, row_id = _NUMBERS.unpack(plaintext)
        return _position(key), _position(row_id)
    except (ValueError, struct.error):
        raise invalid_cursor() from None


def row_page(
    work: UnitOfWork,
    kind: str,
    limit: int,
    cursor: str | None,
    read: Callable[[Any], tuple[Sequence[Any], bool]],
    key: Callable[[Any], int] | None = None,
) -> tuple[Sequence[Any], ListMeta]:
    """One page of a row listing (`kind` scopes its cursors to it and the caller): `read` of
    where the cursor points (None: the first page), the last row's id, or with `key` its sort
    key and id; and the page's meta, whose next cursor points at the page's last row."""
    secret, user_id = work.settings.signing_secret(), work.caller_id
    after = decode_row_cursor(secret, kind, user_id, cursor) if cursor else None
    rows, more = read(after if after is None or key is not None else after[1])
    next_cursor = None
    if more:
        last = rows[-1]
        sort_key = 0 if key is None else key(last)
        next_cursor = encode_row_cursor(secret, kind, user_id, sort_key, last.id)
    return rows, ListMeta(count=len(rows), limit=limit, has_more=more, next_cursor=next_cursor)
