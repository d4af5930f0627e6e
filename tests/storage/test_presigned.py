"""Presigned downloads against a real radosgw: the URL works, carries the signed headers, and
the S3 server itself refuses it once expired, forged or edited (a mock would not)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import botocore.auth
import httpx
import pytest

from backend.storage import new_key
from backend.storage.s3 import S3Storage

HTML = b"<html><body><script>alert(1)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def stored(storage: S3Storage, data: bytes) -> str:
    key = new_key()
    storage.put(key, io.BytesIO(data), max_bytes=len(data))
    return key


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_presigned_url_downloads_with_the_signed_headers(s3_storage: S3Storage) -> None:
    key = stored(s3_storage, PDF)
    url = s3_storage.presigned_get(
        key, filename="dir/../Ré sumé\r\n2026.pdf", content_type="application/pdf", ttl_seconds=60
    )
    assert url is not None
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == PDF
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == (
        "attachment; filename=\"Re sume 2026.pdf\"; filename*=UTF-8''R%C3%A9%20sum%C3%A9%202026.pdf"
    )
    assert answer.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize(("data", "detected"), [(HTML, "text/html"), (SVG, "image/svg+xml")])
def test_html_and_svg_never_come_back_as_themselves(
    s3_storage: S3Storage, data: bytes, detected: str
) -> None:
    key = new_key()
    measured = s3_storage.put(key, io.BytesIO(data), max_bytes=1000, filename="x.png")
    assert measured.content_type == detected
    url = s3_storage.presigned_get(
        key, filename="page.html", content_type=measured.content_type, ttl_seconds=60
    )
    assert url is not None
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"].startswith("attachment;")
    # A plain (signed, no overrides) GET of the object: its own stored headers, as safe.
    plain = s3_storage.client.generate_presigned_url(
        "get_object", Params={"Bucket": s3_storage.bucket, "Key": s3_storage.prefix + key}
    )
    answer = httpx.get(plain)
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"] == "attachment"


def test_an_expired_url_is_refused_by_the_server(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed by a clock set an hour back, for 60 seconds: expired when it is sent, whatever
    the machine's speed (no sleeping)."""
    key = stored(s3_storage, PDF)
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    with monkeypatch.context() as patch:
        patch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: past)
        url = s3_storage.presigned_get(key, filename="a.pdf", content_type="x/y", ttl_seconds=60)
    assert url is not None and "X-Amz-Date=" + past.strftime("%Y%m%dT%H") in url
    answer = httpx.get(url)
    assert answer.status_code == 403
    assert PDF not in answer.content


def test_a_forged_or_edited_url_is_refused_by_the_server(s3_storage: S3Storage) -> None:
    key = stored(s3_storage, PDF)
    url = s3_storage.presigned_get(key, filename="a.pdf", content_type="x/y", ttl_seconds=60)
    assert url is not None
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    inline = with_query(url, **{"response-content-disposition": "inline"})
    longer = with_query(url, **{"X-Amz-Expires": "604800"})
    for bad in (with_query(url, **{"X-Amz-Signature": forged}), inline, longer):
        answer = httpx.get(bad)
        assert answer.status_code == 403, bad
        assert b"SignatureDoesNotMatch" in answer.content
        assert PDF not in answer.content
    assert httpx.get(url).status_code == 200  # the untouched URL still works


def test_a_lifetime_beyond_sigv4s_is_refused(s3_storage: S3Storage) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        s3_storage.presigned_get(new_key(), filename="a", content_type="x/y", ttl_seconds=8 * 86400)
