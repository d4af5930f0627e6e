"""File names cleaned for display and headers, the download headers, type detection, and the
backend the settings choose."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.config import Settings
from backend.storage import download_headers, sanitize_filename, storage_from_settings
from backend.storage.filesystem import FilesystemStorage
from backend.storage.names import MAX_FILENAME_BYTES, SANDBOX_CSP
from backend.storage.s3 import S3Storage
from backend.storage.upload import detect_type
from tests.conftest import TEST_SECRET


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\fakepath\\photo.jpg", "photo.jpg"),
        ("..", "file"),
        ("...", "file"),
        ("", "file"),
        ("a\x00b.txt", "ab.txt"),
        ("evil\r\nSet-Cookie: x=1.txt", "evil Set-Cookie: x=1.txt"),
        ("bell\x07\x1b[31m.txt", "bell[31m.txt"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),  # a right-to-left override
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        # Full-width letters and solidus: NFKC folds the solidus to '/'.
        ("\uff46\uff55\uff4c\uff4c\uff0fwidth.txt", "width.txt"),
        ("e\u0301te\u0301.txt", "été.txt"),  # NFC: one code point per letter
        ("  spaced   out  .txt  ", "spaced out .txt"),
        ("trailing.dots...", "trailing.dots"),
        ("CON.txt", "_CON.txt"),
        ("nul", "_nul"),
        ('say "hi".txt', 'say "hi".txt'),
    ],
)
def test_sanitize_filename(name: str, clean: str) -> None:
    assert sanitize_filename(name) == clean


def test_a_long_name_is_cut_to_255_bytes_keeping_its_extension() -> None:
    name = "é" * 400 + ".tar.gz"
    clean = sanitize_filename(name)
    assert len(clean.encode()) <= MAX_FILENAME_BYTES
    assert clean.endswith("é.gz") and clean.startswith("éé")
    assert sanitize_filename("x" * 10_000) == "x" * MAX_FILENAME_BYTES


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        ("a.txt", "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"),
        (
            "日本語.txt",
            "attachment; filename=\"file.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.txt",
        ),
        (
            'q"uo%te.txt',
            "attachment; filename=\"q_uo_te.txt\"; filename*=UTF-8''q%22uo%25te.txt",
        ),
        ("x\r\ny.txt", "attachment; filename=\"x y.txt\"; filename*=UTF-8''x%20y.txt"),
    ],
)
def test_content_disposition(name: str, disposition: str) -> None:
    assert download_headers(name, "text/plain").content_disposition == disposition


@pytest.mark.parametrize(
    ("detected", "served"),
    [
        ("image/png", "image/png"),
        ("application/pdf", "application/pdf"),
        ("text/plain", "text/plain; charset=utf-8"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/xhtml+xml", "application/octet-stream"),
        ("TEXT/HTML; charset=utf-8", "application/octet-stream"),
        ("text/xml", "application/octet-stream"),
        ("not a type", "application/octet-stream"),
        ("text/plain\r\nX-Evil: 1", "application/octet-stream"),
    ],
)
def test_the_served_type_is_never_an_active_document(detected: str, served: str) -> None:
    headers = download_headers("x", detected).as_dict()
    assert headers["Content-Type"] == served
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == SANDBOX_CSP
    assert "sandbox" in SANDBOX_CSP and "default-src 'none'" in SANDBOX_CSP


@pytest.mark.parametrize(
    ("head", "filename", "detected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "", "image/png"),
        (b"%PDF-1.7\n", "", "application/pdf"),
        (b"GIF89a\x01\x00\x01\x00", "x.html", "image/gif"),
        (b"<!DOCTYPE html><html>", "x.png", "text/html"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", "x.png", "image/svg+xml"),
        ("plain text, ünïcode\n".encode(), "x.exe", "text/plain"),
        (b"\x00\x01\x02\x03binary", "x.txt", "application/octet-stream"),
        (b"", "x.png", "application/octet-stream"),
        ("é".encode() * 5000, "", "text/plain"),  # 8 KiB head cut inside a character
    ],
)
def test_detect_type(head: bytes, filename: str, detected: str) -> None:
    assert detect_type(head[: 8 * 1024], filename) == detected


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, environment="test", jwt_secret=TEST_SECRET, **values)  # type: ignore[arg-type, call-arg]


def test_the_filesystem_is_the_default_beside_the_embedded_database(tmp_path: Path) -> None:
    storage = storage_from_settings(settings(embedded_pg_dir=tmp_path / "data" / "postgres"))
    assert isinstance(storage, FilesystemStorage)
    assert storage.root == (tmp_path / "data" / "attachments").resolve()
    chosen = storage_from_settings(settings(attachments_dir=tmp_path / "elsewhere"))
    assert isinstance(chosen, FilesystemStorage) and chosen.root.name == "elsewhere"


def test_s3_when_a_bucket_is_set() -> None:
    storage = storage_from_settings(
        settings(
            s3_bucket="my-bucket",
            s3_endpoint_url="http://127.0.0.1:9",
            s3_region="us-east-2",
            s3_access_key_id="AK",
            s3_secret_access_key="SK",
            s3_addressing_style="path",
        )
    )
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == ("my-bucket", "attachments/")
    assert storage.client.meta.endpoint_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "values",
    [
        {"s3_bucket": "My_Bucket"},
        {"s3_bucket": "b", "s3_access_key_id": "AK"},
        {"s3_secret_access_key": "SK"},
        {"s3_endpoint_url": "ftp://x"},
        {"s3_addressing_style": "sideways"},
        {"s3_prefix": "../up/"},
        {"s3_part_bytes": 1024},
        {"attachments_url_seconds": 7 * 86400},
    ],
)
def test_bad_storage_settings_fail_at_start(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings(**values)


def test_empty_s3_settings_are_unset() -> None:
    assert settings(s3_bucket="", s3_endpoint_url="").s3_bucket is None
