"""Where attachments' bytes live (specs/storage.md): one interface (`ObjectStorage`, base.py),
two backends (filesystem.py; s3.py), the measured upload (upload.py), how bytes are served
(names.py); `storage_from_settings` picks the backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.storage.base import ObjectMissing, ObjectStorage, StorageError, new_key
from backend.storage.names import download_headers, sanitize_filename
from backend.storage.upload import FileTooLarge, Measured

if TYPE_CHECKING:
    from backend.config import Settings

__all__ = [
    "FileTooLarge",
    "Measured",
    "ObjectMissing",
    "ObjectStorage",
    "StorageError",
    "download_headers",
    "new_key",
    "sanitize_filename",
    "storage_from_settings",
]


def storage_from_settings(settings: Settings) -> ObjectStorage:
    """S3 when S3_BUCKET is set, else the filesystem under ATTACHMENTS_DIR."""
    if settings.s3_bucket:
        from backend.storage.s3 import S3Bounds, S3Storage, make_client

        secret = settings.s3_secret_access_key
        client = make_client(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            addressing_style=settings.s3_addressing_style,
            bounds=S3Bounds(
                connect_seconds=settings.s3_connect_timeout_seconds,
                read_seconds=settings.s3_read_timeout_seconds,
                attempts=settings.s3_max_attempts,
                connections=max(10, settings.attachments_max_concurrent_uploads),
            ),
        )
        return S3Storage(
            bucket=settings.s3_bucket,
            client=client,
            prefix=settings.s3_prefix,
            part_bytes=settings.s3_part_bytes,
        )
    from backend.storage.filesystem import FilesystemStorage

    return FilesystemStorage(settings.effective_attachments_dir)
