"""The one small interface both storage backends keep. Keys are made here (`new_key`: random)
and checked by every backend before any use (`check_key`): no name a client chose becomes a
path or an object key.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from backend.errors import ServiceUnavailable
from backend.storage.upload import Measured, Readable

# Segments of letters, digits, '.', '_' or '-' that start with a letter or digit (so never
# "." or ".."), joined by '/'; no leading '/', no empty segment.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7}$")
MAX_KEY_LENGTH = 512


class StorageError(ServiceUnavailable):
    """The storage could not do what was asked (unreachable, refused): a 503, retryable. The
    cause stays in the log (`raise ... from`), never in the answer."""

    message = "The file storage is not available; retry shortly"
    # A store that timed out seldom answers a second later.
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "5"}

    def __init__(self, detail: str = "") -> None:
        super().__init__()
        self.detail = detail

    def __str__(self) -> str:
        return self.detail or self.message


class ObjectMissing(StorageError):
    """No object under that key."""


def new_key() -> str:
    """A fresh random key: two hex characters to spread a directory, then 128 random bits."""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


def check_key(key: str) -> str:
    """`key` if it is one of ours in shape; ValueError otherwise (a bug, never user input)."""
    if len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
        raise ValueError(f"not a storage key: {key[:80]!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key's leading segments ending in '/'."""
    if prefix and not (prefix.endswith("/") and _KEY.match(prefix[:-1])):
        raise ValueError(f"not a storage prefix: {prefix[:80]!r}")
    return prefix


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


class ObjectStorage(Protocol):
    """Where an attachment's bytes live. Every method is blocking (call it from a worker
    thread, as the sync routes run); none buffers a whole object in memory."""

    #: "filesystem" or "s3", for logs and `check`.
    kind: str

    def put(self, key: str, source: Readable, *, max_bytes: int, filename: str = "") -> Measured:
        """Stream `source` to `key`, measuring it (`backend/storage/upload.py`). Past
        `max_bytes` raises FileTooLarge and nothing is left under `key`; any other failure
        also leaves nothing. `filename` only breaks ties in type detection."""
        ...

    def open(self, key: str) -> Iterator[bytes]:
        """The object's bytes in bounded chunks (ObjectMissing: none); closing it releases them."""
        ...

    def stat(self, key: str) -> StoredObject | None: ...

    def delete(self, key: str) -> None:
        """Remove the object; nothing to remove is not an error (a retried purge)."""
        ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every complete object under `prefix` (for the sweeper), in no promised order."""
        ...

    def abandon_incomplete(self, older_than: datetime) -> int:
        """Remove uploads that never finished, started before `older_than`; how many."""
        ...

    def presigned_get(
        self, key: str, *, filename: str, content_type: str, ttl_seconds: int
    ) -> str | None:
        """A URL that downloads the object for `ttl_seconds`, with `download_headers`' type,
        disposition and caching signed into it; None where the backend cannot (the
        filesystem: the API streams the bytes itself)."""
        ...
