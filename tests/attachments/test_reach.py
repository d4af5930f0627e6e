"""Attachments where the suite's TestClient does not reach: the database round trips of a
download by redirect, of an upload on S3 and of an account's deletion with files (counted by
the proxy tests/test_round_trips.py uses), an expired link refused by the real radosgw
through the app's redirect, and bad bodies sent as raw HTTP to the real server on both
backends (each its 4xx with the error envelope, never a 5xx, nothing stored), whose log then
holds no link."""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from backend.config import Settings
from backend.main import create_app
from backend.storage import ObjectStorage, storage_from_settings
from scripts.bench.dbproxy import DbProxy
from tests.attachments.conftest import MAX_FILE, QUOTA
from tests.conftest import Account, _registering, loaded, running_server
from tests.rawhttp import exchange, port_of
from tests.storage.conftest import BUCKET, radosgw_server  # noqa: F401
from tests.storage.radosgw import Radosgw


def _s3(server: Radosgw, prefix: str) -> dict[str, Any]:
    return {
        "s3_bucket": BUCKET,
        "s3_endpoint_url": server.endpoint,
        "s3_region": server.region,
        "s3_access_key_id": server.access_key,
        "s3_secret_access_key": SecretStr(server.secret_key),
        "s3_addressing_style": "path",
        "s3_prefix": prefix,
    }


def _task(client: TestClient | httpx.Client, who: Account) -> int:
    made = client.post("/api/tasks", json={"title": "files"}, headers=who.headers)
    assert made.status_code == 201, made.text
    return int(made.json()["data"]["id"])


# -- round trips -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(database_url: str) -> Iterator[DbProxy]:
    with DbProxy.for_url(database_url, count=True) as running:
        yield running


@pytest.fixture(scope="module")
def counted(
    settings: Settings,
    database_url: str,
    proxy: DbProxy,
    radosgw_server: Radosgw,  # noqa: F811
) -> Iterator[TestClient]:
    """An app on S3 whose every database connection goes through the counting proxy."""
    app = create_app(
        settings.model_copy(
            update={
                "database_url": SecretStr(proxy.url(database_url)),
                "db_pool_ping_idle_seconds": 3600,  # no idle ping inside a count
                "rate_limit_enabled": False,
                **_s3(radosgw_server, f"rt-{secrets.token_hex(4)}/"),
            }
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield loaded(client)


def _count(proxy: DbProxy, send: Any) -> tuple[httpx.Response, int, int]:
    with proxy.measure() as counts:
        answer = send()
    return answer, counts.round_trips, counts.connections


def test_download_by_redirect_is_one_round_trip(counted: TestClient, proxy: DbProxy) -> None:
    """The download's row read through the access predicate is the request's one message;
    the link is signed in the process (no call to the store either). The upload stays the
    one message of any write (the quota's sum is in it: migration 0068)."""
    alice = _registering(counted)()
    task = _task(counted, alice)
    assert counted.get("/api/auth/me", headers=alice.headers).status_code == 200  # warm
    path = f"/api/tasks/{task}/attachments"
    upload = lambda: counted.post(path, files={"file": ("a.txt", b"hello")}, headers=alice.headers)
    added, trips, connections = _count(proxy, upload)
    assert added.status_code == 201, added.text
    assert (trips, connections) == (1, 0)
    download = f"{path}/{added.json()['data']['id']}/download"
    send = lambda: counted.get(download, headers=alice.headers, follow_redirects=False)
    answer, trips, connections = _count(proxy, send)
    assert answer.status_code == 302, answer.text
    assert (trips, connections) == (1, 0)
    assert httpx.get(answer.headers["location"]).content == b"hello"


def test_account_deletion_with_files_is_three_round_trips(
    counted: TestClient, proxy: DbProxy
) -> None:
    """Without files an account's deletion stays two messages (tests/test_round_trips.py);
    with files, one more in its transaction: which of the keys it returned no row names any
    more (their bytes go after the commit)."""
    alice = _registering(counted)()
    task = _task(counted, alice)
    path = f"/api/tasks/{task}/attachments"
    added = counted.post(path, files={"file": ("a.txt", b"mine")}, headers=alice.headers)
    assert added.status_code == 201, added.text
    assert counted.get("/api/auth/me", headers=alice.headers).status_code == 200  # warm
    send = lambda: counted.delete("/api/auth/me", headers=alice.headers)
    answer, trips, connections = _count(proxy, send)
    assert answer.status_code == 204, answer.text
    assert (trips, connections) == (3, 0)


# -- an expired link -------------------------------------------------------------------------

# The shortest lifetime the setting allows (ATTACHMENTS_URL_SECONDS, at least 10).
SHORT = 10


def test_an_expired_link_is_refused_by_the_store_and_a_fresh_redirect_works(
    settings: Settings,
    radosgw_server: Radosgw,  # noqa: F811
) -> None:
    """A link from the app's redirect works, then, once its lifetime has passed, radosgw
    refuses it (403 AccessDenied: polled until it does, within a generous bound, so no
    machine's speed decides the outcome); a new redirect gives a link that works."""
    app = create_app(
        settings.model_copy(
            update={
                "attachments_url_seconds": SHORT,
                "rate_limit_enabled": False,
                **_s3(radosgw_server, f"exp-{secrets.token_hex(4)}/"),
            }
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        alice = _registering(loaded(client))()
        task = _task(client, alice)
        path = f"/api/tasks/{task}/attachments"
        added = client.post(path, files={"file": ("a.txt", b"short-lived")}, headers=alice.headers)
        assert added.status_code == 201, added.text
        download = f"{path}/{added.json()['data']['id']}/download"
        first = client.get(download, headers=alice.headers, follow_redirects=False)
        assert first.status_code == 302
        link = first.headers["location"]
        assert f"X-Amz-Expires={SHORT}" in link
        assert httpx.get(link).content == b"short-lived"
        deadline = time.monotonic() + SHORT + 120
        while (answer := httpx.get(link)).status_code == 200:
            assert time.monotonic() < deadline, "the store still serves an expired link"
            time.sleep(0.5)
        assert answer.status_code == 403, answer.text
        assert b"AccessDenied" in answer.content and b"short-lived" not in answer.content
        fresh = client.get(download, headers=alice.headers, follow_redirects=False)
        assert fresh.status_code == 302 and fresh.headers["location"] != link
        assert httpx.get(fresh.headers["location"]).content == b"short-lived"


# -- raw HTTP to the real server ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["filesystem", "s3"])
def served(
    request: pytest.FixtureRequest, database_url: str, settings: Settings
) -> Iterator[tuple[str, Path, ObjectStorage]]:
    """`serve` on each backend, with the suite's small limits: its URL, log and storage."""
    folder = Path(tempfile.mkdtemp(prefix="task-api-raw-"))
    env = {
        "ATTACHMENTS_MAX_FILE_BYTES": str(MAX_FILE),
        "ATTACHMENTS_QUOTA_BYTES": str(QUOTA),
        "RATE_LIMIT_ENABLED": "false",
        "ATTACHMENTS_DIR": str(folder),
    }
    if request.param == "s3":
        server: Radosgw = request.getfixturevalue("radosgw_server")
        s3 = _s3(server, f"raw-{secrets.token_hex(4)}/")
        s3["s3_secret_access_key"] = server.secret_key
        env.update({name.upper(): str(value) for name, value in s3.items()})
    storage = storage_from_settings(
        Settings(**{**settings.model_dump(), **{k.lower(): v for k, v in env.items()}})
    )
    try:
        with running_server(database_url, **env) as (base_url, _, log):
            yield base_url, log, storage
    finally:
        shutil.rmtree(folder, ignore_errors=True)


INVALID, BAD = "VALIDATION_ERROR", "BAD_REQUEST"


def _raw(base_url: str, path: str, token: str, head: list[str], body: bytes) -> Any:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    lines += [*head, "Connection: close"]
    return exchange(port_of(base_url), "\r\n".join(lines).encode() + b"\r\n\r\n" + body)


def _multipart(name: str, data: bytes, field: str = "file") -> bytes:
    return (
        b'--B\r\nContent-Disposition: form-data; name="'
        + field.encode()
        + b'"; filename="'
        + name.encode()
        + b'"\r\nContent-Type: text/plain\r\n\r\n'
        + data
        + b"\r\n--B--\r\n"
    )


def test_bad_bodies_over_raw_http(served: tuple[str, Path, ObjectStorage]) -> None:
    base_url, log, storage = served
    with httpx.Client(base_url=base_url) as http:
        alice = _registering(http)()
        task = _task(http, alice)
        path = f"/api/tasks/{task}/attachments"
        before = {found.key for found in storage.list()}
        one = _multipart("a.txt", b"hello")
        other = _multipart("a.txt", b"x", "other")
        two = one[: -len(b"--\r\n")] + one[len(b"--B") :]  # the part twice
        huge = _multipart("n" * 70_000, b"x")  # a file name past the body's allowance
        kind = "Content-Type: multipart/form-data; boundary=B"
        # (headers, body, the answer's status and code): docs/guides/attachments.md's list.
        cases: dict[str, tuple[list[str], bytes, int, str]] = {
            "no file part": ([kind, f"Content-Length: {len(other)}"], other, 422, INVALID),
            "two files": ([kind, f"Content-Length: {len(two)}"], two, 422, INVALID),
            "not multipart": (
                ["Content-Type: application/json", "Content-Length: 2"],
                b"{}",
                422,
                INVALID,
            ),
            "a huge file name": ([kind, f"Content-Length: {len(huge)}"], huge, 422, INVALID),
            "a negative length": ([kind, "Content-Length: -1"], one, 400, BAD),
            "a length that is no number": ([kind, "Content-Length: 1e9"], one, 400, BAD),
            "a shorter length than the body": ([kind, "Content-Length: 10"], one, 422, INVALID),
            "a length far past the maximum": (
                [kind, f"Content-Length: {MAX_FILE * 100}"],
                one,
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            "two lengths": (
                [kind, f"Content-Length: {len(one)}", "Content-Length: 5"],
                one,
                400,
                BAD,
            ),
        }
        for name, (head, body, status, code) in cases.items():
            answer = _raw(base_url, path, alice.token, head, body)
            # The error envelope (the parser's refusals too: backend/server.py), never a 5xx.
            assert answer.status == status, (name, answer)
            assert answer.header("content-type") == "application/json", (name, answer)
            assert answer.json()["error"]["code"] == code, (name, answer)
        listed = http.get(path, headers=alice.headers)
        assert listed.status_code == 200 and listed.json()["data"] == []
        assert {found.key for found in storage.list()} == before
        # A download by redirect (S3): the link is in the answer only, never in the log.
        added = http.post(path, files={"file": ("a.txt", b"hi")}, headers=alice.headers)
        assert added.status_code == 201, added.text
        download = f"{path}/{added.json()['data']['id']}/download"
        got = http.get(download, headers=alice.headers)
        if got.status_code == 302:
            link = got.headers["location"]
            assert httpx.get(link).content == b"hi"
            signature = link.rsplit("X-Amz-Signature=", 1)[1].split("&")[0]
            written = log.read_text()
            assert signature not in written and "X-Amz-Signature" not in written
        else:
            assert got.status_code == 200 and got.content == b"hi"


# -- slow, stalled and cut bodies through the real server ------------------------------------


@pytest.fixture(scope="module")
def hurried(database_url: str) -> Iterator[tuple[str, Path]]:
    """`serve` on the filesystem whose requests must arrive within 1 s and whose uploads may
    pause 2 s: its URL and log."""
    folder = Path(tempfile.mkdtemp(prefix="task-api-slow-"))
    env = {
        "ATTACHMENTS_MAX_FILE_BYTES": str(MAX_FILE),
        "RATE_LIMIT_ENABLED": "false",
        "ATTACHMENTS_DIR": str(folder),
        "HTTP_REQUEST_TIMEOUT_SECONDS": "1",
        "ATTACHMENTS_STALL_SECONDS": "2",
    }
    try:
        with running_server(database_url, **env) as (base_url, _, log):
            yield base_url, log
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _slow_upload(base_url: str, token: str, task: int, pieces: int, then: str) -> bytes:
    """An upload whose body goes in `pieces` pieces 0.3 s apart, then `then`: "end" (the
    rest), "stall" (nothing, until an answer) or "cut" (the socket closed). The answer's
    bytes (b"" when cut)."""
    body = _multipart("slow.txt", b"s" * 3000)
    head = (
        f"POST /api/tasks/{task}/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    size = len(body) // (pieces + 1)
    with socket.create_connection(("127.0.0.1", port_of(base_url)), timeout=30) as sock:
        sock.sendall(head)
        for n in range(pieces):
            sock.sendall(body[n * size : (n + 1) * size])
            time.sleep(0.3)
        if then == "cut":
            return b""
        if then == "end":
            sock.sendall(body[pieces * size :])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                break
        return answer


def test_slow_stalled_and_cut_uploads_through_the_server(hurried: tuple[str, Path]) -> None:
    """A body slower than HTTP_REQUEST_TIMEOUT_SECONDS but steady is stored (the route gives
    it ATTACHMENTS_UPLOAD_SECONDS); one that stops is 408 with the envelope; one cut by its
    client is logged as the client's abort, never as an error."""
    base_url, log = hurried
    with httpx.Client(base_url=base_url) as http:
        alice = _registering(http)()
        task = _task(http, alice)
        slow = _slow_upload(base_url, alice.token, task, 8, "end")  # ~2.4 s
        assert slow.startswith(b"HTTP/1.1 201"), slow[:300]
        stalled = _slow_upload(base_url, alice.token, task, 2, "stall")
        assert stalled.startswith(b"HTTP/1.1 408"), stalled[:300]
        assert b"connection: close" in stalled.lower() and b'"REQUEST_TIMEOUT"' in stalled
        _slow_upload(base_url, alice.token, task, 2, "cut")
        listed = http.get(f"/api/tasks/{task}/attachments", headers=alice.headers).json()
        assert [row["filename"] for row in listed["data"]] == ["slow.txt"]
        deadline = time.monotonic() + 10
        while "client's abort" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    written = log.read_text()
    assert "client's abort" in written
    assert "Traceback" not in written
    assert not re.search(r'\bERROR\b|"level": "ERROR"| 500 ', written), written[-2000:]
