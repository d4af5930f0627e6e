"""Both storage backends, the same tests: bytes and sha256 round-trip, 0 bytes, the maximum and
one byte over (nothing left stored), a lying type, hostile names, and memory held bounded.
S3 runs against a real radosgw (tests/storage/conftest.py), which itself checks signatures."""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.errors import describe
from backend.storage import FileTooLarge, ObjectMissing, StorageError, new_key
from backend.storage.filesystem import INCOMING, FilesystemStorage
from backend.storage.s3 import MIN_PART_BYTES, SPOOL_MEMORY_BYTES, S3Storage, make_client
from backend.storage.upload import CHUNK_BYTES

Storage = FilesystemStorage | S3Storage
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


class Source:
    """A client's body made on demand (never whole in memory): `size` pseudo-random bytes,
    hashed as handed out; `given` counts what the pipeline took."""

    def __init__(self, size: int, seed: int = 1) -> None:
        self.left = size
        self.given = 0
        self.sha256 = hashlib.sha256()
        self._random = random.Random(seed)  # noqa: S311 (test data, not a secret)

    def read(self, size: int = -1, /) -> bytes:
        n = self.left if size < 0 else min(size, self.left)
        chunk = self._random.randbytes(n)
        self.left -= n
        self.given += n
        self.sha256.update(chunk)
        return chunk


def read_all(storage: Storage, key: str) -> bytes:
    return b"".join(storage.open(key))


def nothing_stored(storage: Storage, key: str) -> None:
    assert storage.stat(key) is None
    assert list(storage.list()) == []
    with pytest.raises(ObjectMissing):
        storage.open(key)
    if isinstance(storage, S3Storage):
        pending = storage.client.list_multipart_uploads(
            Bucket=storage.bucket, Prefix=storage.prefix
        )
        assert pending.get("Uploads", []) == []
    else:
        assert list((storage.root / INCOMING).iterdir()) == []


def test_round_trip_bytes_and_sha256(storage: Storage) -> None:
    data = os.urandom(300_000)
    key = new_key()
    measured = storage.put(key, io.BytesIO(data), max_bytes=1_000_000)
    assert measured.size == len(data)
    assert measured.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(storage, key) == data
    stat = storage.stat(key)
    assert stat is not None and stat.size == len(data) and stat.key == key
    assert [found.key for found in storage.list()] == [key]
    assert [found.key for found in storage.list(key.split("/")[0] + "/")] == [key]
    storage.delete(key)
    nothing_stored(storage, key)
    storage.delete(key)  # a retried delete is not an error


def test_zero_bytes(storage: Storage) -> None:
    key = new_key()
    measured = storage.put(key, io.BytesIO(b""), max_bytes=10)
    assert (measured.size, measured.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert measured.content_type == "application/octet-stream"
    assert read_all(storage, key) == b""
    assert storage.stat(key) is not None


@pytest.mark.parametrize("over", [0, 1])
def test_the_maximum_fits_and_one_byte_over_leaves_nothing(storage: Storage, over: int) -> None:
    # Past S3's first part, so the refusal aborts a multipart upload already under way.
    maximum = MIN_PART_BYTES + 1000
    source = Source(maximum + over)
    key = new_key()
    if over:
        with pytest.raises(FileTooLarge):
            storage.put(key, source, max_bytes=maximum)
        assert source.given == maximum + 1  # stopped at the first byte too many
        nothing_stored(storage, key)
    else:
        measured = storage.put(key, source, max_bytes=maximum)
        assert (measured.size, measured.sha256) == (maximum, source.sha256.hexdigest())
        assert hashlib.sha256(read_all(storage, key)).hexdigest() == measured.sha256


def test_an_endless_body_is_cut_at_the_maximum_plus_one(storage: Storage) -> None:
    source = Source(10**12)
    with pytest.raises(FileTooLarge):
        storage.put(new_key(), source, max_bytes=100_000)
    assert source.given == 100_001


def test_the_type_comes_from_the_bytes_not_the_name(storage: Storage) -> None:
    # An HTML page named like a picture, a picture named like a page.
    page = storage.put(new_key(), io.BytesIO(HTML), max_bytes=10_000, filename="photo.png")
    picture = storage.put(new_key(), io.BytesIO(PNG), max_bytes=10_000, filename="notes.html")
    text = storage.put(new_key(), io.BytesIO("naïve café\n".encode()), max_bytes=100)
    assert (page.content_type, picture.content_type) == ("text/html", "image/png")
    assert text.content_type == "text/plain"


def test_s3_objects_carry_the_served_type_and_attachment(s3_storage: S3Storage) -> None:
    key = new_key()
    s3_storage.put(key, io.BytesIO(HTML), max_bytes=10_000, filename="x.png")
    head = s3_storage.client.head_object(Bucket=s3_storage.bucket, Key=s3_storage.prefix + key)
    assert head["ContentType"] == "application/octet-stream"
    assert head["ContentDisposition"] == "attachment"


HOSTILE_NAMES = ("../../../etc/passwd", "/abs/path", "a\x00b", "..\\..\\win.ini", "\r\nX: y", "")


def test_a_hostile_name_is_never_a_path_or_a_key(storage: Storage, tmp_path: Path) -> None:
    key = new_key()
    for name in HOSTILE_NAMES:
        storage.put(key, io.BytesIO(b"x"), max_bytes=10, filename=name)
    assert [found.key for found in storage.list()] == [key]
    if isinstance(storage, FilesystemStorage):
        files = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
        assert files == [f"attachments/{key}"]


class Disconnecting(Source):
    """A client that goes away after `after` bytes (the connection drops mid-body)."""

    def __init__(self, after: int) -> None:
        super().__init__(10 * after)
        self.after = after

    def read(self, size: int = -1, /) -> bytes:
        if self.given >= self.after:
            raise ConnectionResetError("the client went away")
        return super().read(min(size, self.after - self.given))


def test_a_client_gone_mid_upload_leaves_nothing(storage: Storage) -> None:
    # Past S3's first part: a multipart upload is under way when the client goes.
    key = new_key()
    with pytest.raises(ConnectionResetError):
        storage.put(key, Disconnecting(MIN_PART_BYTES + 100_000), max_bytes=10**9)
    nothing_stored(storage, key)


@pytest.mark.parametrize("key", ["../x", "a/../b", "/etc/passwd", "a//b", ".hidden", "a/", ""])
def test_keys_that_could_escape_are_refused(storage: Storage, key: str) -> None:
    source = Source(10)
    with pytest.raises(ValueError, match="not a storage key"):
        storage.put(key, source, max_bytes=100)
    assert source.given == 0
    with pytest.raises(ValueError):
        storage.open(key)


def test_memory_stays_bounded_whatever_the_size(storage: Storage) -> None:
    """Deterministic, not timed: the largest piece of the body held at once, and the peak of
    Python's own allocations (tracemalloc) while 3 parts' worth is uploaded."""
    size = 3 * MIN_PART_BYTES + 12345
    source = Source(size)
    key = new_key()
    tracemalloc.start()
    try:
        measured = storage.put(key, source, max_bytes=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert measured.size == size and measured.sha256 == source.sha256.hexdigest()
    assert measured.peak_chunk == CHUNK_BYTES
    # A chunk, the S3 part spool's memory, botocore's signing reads (1 MiB) and margin:
    # a fraction of the 15 MiB that went through.
    assert peak < SPOOL_MEMORY_BYTES + 3 * 1024 * 1024, peak
    assert peak < size / 4


def test_unfinished_uploads_are_abandoned(storage: Storage) -> None:
    if isinstance(storage, S3Storage):
        storage.client.create_multipart_upload(
            Bucket=storage.bucket, Key=storage.prefix + new_key()
        )
    else:
        (storage.root / INCOMING / "crashed.part").write_bytes(b"half")
    assert storage.abandon_incomplete(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert storage.abandon_incomplete(datetime.now(UTC) + timedelta(minutes=5)) == 1
    nothing_stored(storage, new_key())


def test_filesystem_has_no_presigned_urls(fs_storage: FilesystemStorage) -> None:
    key = new_key()
    fs_storage.put(key, io.BytesIO(b"x"), max_bytes=1)
    assert fs_storage.presigned_get(key, filename="a", content_type="x/y", ttl_seconds=60) is None


def test_filesystem_files_are_private(fs_storage: FilesystemStorage) -> None:
    key = new_key()
    fs_storage.put(key, io.BytesIO(b"secret"), max_bytes=10)
    path = fs_storage.root / key
    assert path.stat().st_mode & 0o077 == 0
    for directory in (path.parent, fs_storage.root, fs_storage.root / INCOMING):
        assert directory.stat().st_mode & 0o077 == 0


def test_refusals_map_to_the_error_envelope() -> None:
    too_large = describe(FileTooLarge(10))
    assert (too_large.status, too_large.code) == (413, "PAYLOAD_TOO_LARGE")
    unavailable = describe(StorageError("put_object failed: secret endpoint details"))
    assert (unavailable.status, unavailable.code) == (503, "SERVICE_UNAVAILABLE")
    assert "secret" not in unavailable.message and unavailable.headers["Retry-After"]


def test_an_unreachable_store_is_a_storage_error_not_a_crash() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(
        endpoint_url=f"http://127.0.0.1:{port}",
        region="default",
        access_key_id="AK",
        secret_access_key="SK",
        addressing_style="path",
    )
    storage = S3Storage(bucket="nowhere", client=client)
    key = new_key()
    with pytest.raises(StorageError):
        storage.put(key, io.BytesIO(b"data"), max_bytes=10)
    with pytest.raises(StorageError):
        storage.open(key)
    with pytest.raises(StorageError):
        storage.stat(key)
    with pytest.raises(StorageError):
        list(storage.list())
    with pytest.raises(StorageError):
        storage.delete(key)
