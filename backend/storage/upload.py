"""The bytes of an upload, measured on their way to storage, never believed (specs/storage.md,
"Measured, not believed"): bounded reads, a running sha256 and count, a stop one byte past the
maximum; the type detected from the bytes, the name only breaking a tie.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import puremagic

from backend.errors import PayloadTooLarge
from backend.storage.names import OCTET_STREAM

# One read of the source: what the pipeline holds of it at once (a backend may buffer more,
# bounded too: the S3 backend's part spool, `backend/storage/s3.py`).
CHUNK_BYTES = 64 * 1024
# Bytes the type is detected from: every signature puremagic knows starts within them.
HEAD_BYTES = 8 * 1024
TEXT_TYPE = "text/plain"


class Readable(Protocol):
    """A binary source read in pieces: a file, Starlette's `UploadFile.file`, a socket."""

    def read(self, size: int = -1, /) -> bytes: ...


class FileTooLarge(PayloadTooLarge):
    """The source holds more than the maximum: the upload is refused (413), nothing kept."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"The file is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class Measured:
    """What was stored, as read: size, sha256 (hex) and the detected type. `peak_chunk` is
    the largest piece of the source the pipeline held at once (bounded by CHUNK_BYTES)."""

    size: int
    sha256: str
    content_type: str
    peak_chunk: int


class Measuring:
    """Reads `source` in bounded pieces, counting and hashing, and refuses byte max+1."""

    def __init__(self, source: Readable, max_bytes: int, *, filename: str = "") -> None:
        self._source = source
        self._max = max_bytes
        self._filename = filename
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self.size = 0
        self.peak_chunk = 0
        self.done = False

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        """At most `min(size, CHUNK_BYTES)` bytes; b"" at the end. Raises FileTooLarge when
        the source goes past the maximum (it reads at most max+1 bytes in all)."""
        if self.done:
            return b""
        want = max(1, min(size, CHUNK_BYTES, self._max + 1 - self.size))
        chunk = self._source.read(want)
        # A source may hand back more than asked (a careless wrapper): never hold more.
        if len(chunk) > want:
            raise ValueError("the source returned more bytes than were asked for")
        if not chunk:
            self.done = True
            return b""
        self.peak_chunk = max(self.peak_chunk, len(chunk))
        self.size += len(chunk)
        if self.size > self._max:
            self.done = True
            raise FileTooLarge(self._max)
        self._hash.update(chunk)
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
        return chunk

    def content_type(self) -> str:
        return detect_type(bytes(self._head), self._filename)

    def result(self) -> Measured:
        return Measured(self.size, self._hash.hexdigest(), self.content_type(), self.peak_chunk)


def detect_type(head: bytes, filename: str = "") -> str:
    """The type the bytes say: puremagic's best match (the name's extension only breaks ties
    between matches), else `text/plain` for UTF-8 text, else application/octet-stream."""
    if not head:
        return OCTET_STREAM
    try:
        matches = puremagic.magic_string(head, filename or None)
    except (puremagic.PureError, ValueError):
        matches = []
    # Given a name, puremagic also offers the extension's type with no byte matched: not a
    # detection. Among real matches (best first) the extension has already raised its own.
    for match in matches:
        if match.byte_match and match.mime_type:
            return str(match.mime_type).lower()
    return TEXT_TYPE if _is_text(head) else OCTET_STREAM


def _is_text(head: bytes) -> bool:
    try:
        # The head may end inside a multi-byte character: allow a cut of up to 3 bytes.
        text = head.decode("utf-8") if len(head) < HEAD_BYTES else _decode_prefix(head)
    except UnicodeDecodeError:
        return False
    return not any(ord(char) < 32 and char not in "\t\n\r\f" for char in text)


def _decode_prefix(head: bytes) -> str:
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", head, 0, len(head), "not UTF-8 text")
