"""Attachments on S3-compatible object storage with boto3 (specs/storage.md, "Two backends"),
in bounded memory: the source is read into a part spool, one part at a time (a file within
the first part is one PutObject). Every call is bounded (`S3Bounds`); boto3 is imported only
when the backend is built.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backend.storage.base import ObjectMissing, StorageError, StoredObject, check_key, check_prefix
from backend.storage.names import download_headers
from backend.storage.upload import CHUNK_BYTES, Measured, Measuring, Readable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Kept in memory per upload before the part spools to disk.
SPOOL_MEMORY_BYTES = 1024 * 1024
# S3's smallest part (every part but the last): the default part, so a file up to 8 MiB is
# one request.
MIN_PART_BYTES = 5 * 1024 * 1024
# SigV4's longest presigned URL lifetime.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

# botocore logs every signature it makes at DEBUG: a presigned URL is a credential while it
# lives, never logged whatever LOG_LEVEL says.
for _name in ("botocore", "boto3", "s3transfer"):
    _logger = logging.getLogger(_name)
    if _logger.level < logging.INFO:
        _logger.setLevel(logging.INFO)


@dataclass(frozen=True)
class S3Bounds:
    """How long one call may wait: to connect, for each read or write on the socket, and how
    many attempts (the first included) botocore makes. A frozen store (it accepts the
    connection, then answers nothing) fails a call in about `attempts x read_seconds`."""

    connect_seconds: float = 2.0
    read_seconds: float = 3.0
    attempts: int = 2
    # Kept connections: one per upload a worker runs at once (botocore's 10 made a 32-upload
    # load discard and reopen connections, "Connection pool is full").
    connections: int = 16


class S3Storage:
    kind = "s3"

    def __init__(
        self, *, bucket: str, client: S3Client, prefix: str = "", part_bytes: int = 8 * 1024 * 1024
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (S3's minimum)")
        self.bucket = bucket
        self.prefix = check_prefix(prefix)
        self.part_bytes = part_bytes
        self.client = client

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, source: Readable, *, max_bytes: int, filename: str = "") -> Measured:
        name = self._key(key)
        reader = Measuring(source, max_bytes, filename=filename)
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            while True:
                with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as part:
                    length = _fill(part, reader, self.part_bytes)
                    if upload_id is None and reader.done:
                        # All of it fits one part: a single PutObject.
                        self._call(
                            self.client.put_object,
                            Key=name,
                            Body=part,
                            ContentLength=length,
                            **self._object_headers(reader),
                        )
                        return reader.result()
                    if length == 0:
                        break
                    if upload_id is None:
                        upload_id = self._call(
                            self.client.create_multipart_upload,
                            Key=name,
                            **self._object_headers(reader),
                        )["UploadId"]
                    number = len(parts) + 1
                    answer = self._call(
                        self.client.upload_part,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                        ContentLength=length,
                    )
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                    if reader.done:
                        break
            assert upload_id is not None  # noqa: S101 (the loop starts one before any part)
            self._call(
                self.client.complete_multipart_upload,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            upload_id = None
            return reader.result()
        except BaseException as exc:
            # A store that did not answer would keep the abort waiting as long: its unfinished
            # upload is left to the sweeper's `abandon_incomplete`.
            if upload_id is not None and not _unreachable(exc):
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=name, UploadId=upload_id
                    )
            raise

    @staticmethod
    def _object_headers(reader: Measuring) -> dict[str, str]:
        # Stored on the object too, for a store that ignores signed response overrides
        # (Google Cloud Storage's S3 API): a plain GET still downloads, never renders.
        return {
            "ContentType": download_headers("", reader.content_type()).content_type,
            "ContentDisposition": "attachment",
        }

    def _call(self, method: Any, **params: Any) -> Any:
        """`method(**params)` on the bucket; None for a missing object (404) on a read,
        StorageError for any other failure (unreachable, refused, timed out)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(Bucket=self.bucket, **params)
        except ClientError as exc:
            if _status(exc) == 404 and method.__name__ in {"get_object", "head_object"}:
                return None
            raise StorageError(f"{method.__name__} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{method.__name__} failed: {exc}") from exc

    def open(self, key: str) -> Iterator[bytes]:
        answer = self._call(self.client.get_object, Key=self._key(key))
        if answer is None:
            raise ObjectMissing(key)
        return _chunks(answer["Body"])

    def stat(self, key: str) -> StoredObject | None:
        head = self._call(self.client.head_object, Key=self._key(key))
        if head is None:
            return None
        return StoredObject(key, head["ContentLength"], head["LastModified"])

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Key=self._key(key))

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        check_prefix(prefix)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        for page in _pages(pages):
            for item in page.get("Contents", []):
                yield StoredObject(
                    item["Key"][len(self.prefix) :], item["Size"], item["LastModified"]
                )

    def abandon_incomplete(self, older_than: datetime) -> int:
        removed = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in _pages(pages):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < older_than:
                    self._call(
                        self.client.abort_multipart_upload,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                    removed += 1
        return removed

    def presigned_get(
        self, key: str, *, filename: str, content_type: str, ttl_seconds: int
    ) -> str | None:
        if not 1 <= ttl_seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"ttl_seconds must be within 1..{MAX_PRESIGN_SECONDS}")
        headers = download_headers(filename, content_type)
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ResponseContentType": headers.content_type,
                "ResponseContentDisposition": headers.content_disposition,
                "ResponseCacheControl": headers.cache_control,
            },
            ExpiresIn=ttl_seconds,
        )
        return url


def make_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    addressing_style: str,
    bounds: S3Bounds | None = None,
) -> S3Client:
    """A boto3 S3 client for any S3-compatible store: SigV4; checksums only where required
    (some stores refuse botocore's default CRC32 on every upload); bounded timeouts and
    retries (botocore's defaults let a frozen store hold an upload for minutes)."""
    bounds = bounds or S3Bounds()
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},  # type: ignore[arg-type]
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "total_max_attempts": bounds.attempts},
        connect_timeout=bounds.connect_seconds,
        read_timeout=bounds.read_seconds,
        max_pool_connections=bounds.connections,
    )
    client: S3Client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )
    return client


def _fill(part: Any, reader: Measuring, limit: int) -> int:
    """Read up to `limit` bytes of `reader` into `part`, rewound; return how many."""
    length = 0
    while length < limit and (chunk := reader.read(min(CHUNK_BYTES, limit - length))):
        part.write(chunk)
        length += len(chunk)
    part.seek(0)
    return length


def _unreachable(exc: BaseException) -> bool:
    """Whether `exc` is the store not connecting or not answering in time (not a refusal)."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    cause = exc.__cause__ if isinstance(exc, StorageError) else exc
    return isinstance(cause, BotoConnectionError | HTTPClientError)


def _status(exc: Any) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = exc.response.get("Error", {}).get("Code")
    if code in {"NoSuchKey", "NotFound", "404"}:
        return 404
    return int(status) if status is not None else None


def _pages(pages: Any) -> Iterator[Any]:
    """A paginator's pages, a failure as StorageError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield from pages
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"listing failed: {exc}") from exc


def _chunks(body: Any) -> Iterator[bytes]:
    from botocore.exceptions import BotoCoreError

    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    except BotoCoreError as exc:
        raise StorageError(f"reading the object failed: {exc}") from exc
    finally:
        body.close()
