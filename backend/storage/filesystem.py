"""Attachments on the local filesystem (specs/storage.md, "Two backends"): the default, so
`serve --dev` needs nothing; one replica only. An upload is written to a temp file in
`.incoming/`, flushed, then renamed into place: a reader never sees half a file, and a crash
leaves only a temp file that `abandon_incomplete` removes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from backend.storage.base import ObjectMissing, StoredObject, check_key, check_prefix
from backend.storage.upload import CHUNK_BYTES, Measured, Measuring, Readable

INCOMING = ".incoming"


class FilesystemStorage:
    kind = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.root / INCOMING).mkdir(mode=0o700, exist_ok=True)

    def _path(self, key: str) -> Path:
        # check_key allows no '..' segment and no leading '/': the path stays under root.
        return self.root / check_key(key)

    def put(self, key: str, source: Readable, *, max_bytes: int, filename: str = "") -> Measured:
        target = self._path(key)
        reader = Measuring(source, max_bytes, filename=filename)
        temp = self.root / INCOMING / f"{secrets.token_hex(16)}.part"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK_BYTES):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return reader.result()

    def open(self, key: str) -> Iterator[bytes]:
        try:
            file = self._path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        return _chunks(file)

    def stat(self, key: str) -> StoredObject | None:
        try:
            info = self._path(key).stat()
        except FileNotFoundError:
            return None
        return StoredObject(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # An emptied spreading directory goes too (another upload may have just filled it).
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        check_prefix(prefix)
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return
        for directory, dirs, files in os.walk(base):
            dirs[:] = [name for name in dirs if name != INCOMING]
            for name in files:
                key = (Path(directory) / name).relative_to(self.root).as_posix()
                with contextlib.suppress(ValueError):
                    found = self.stat(check_key(key))
                    if found is not None:
                        yield found

    def abandon_incomplete(self, older_than: datetime) -> int:
        removed = 0
        for temp in (self.root / INCOMING).glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if datetime.fromtimestamp(temp.stat().st_mtime, UTC) < older_than:
                    temp.unlink()
                    removed += 1
        return removed

    def presigned_get(
        self, key: str, *, filename: str, content_type: str, ttl_seconds: int
    ) -> str | None:
        check_key(key)
        return None


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
