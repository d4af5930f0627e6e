"""Promise: a file store that stops answering never makes a request hang, and leaves nothing
stored that no row names (issue 71).

radosgw (the real one of tests/storage) is paused with SIGSTOP: its kernel still accepts
connections and takes bytes until the socket buffers fill, so only the S3 client's own bounds
(S3_CONNECT_TIMEOUT_SECONDS, S3_READ_TIMEOUT_SECONDS, S3_MAX_ATTEMPTS) can notice. Uploads
(one request, and a multipart one) are answered 503 with Retry-After within 10 s; a download
is a redirect signed without asking the store. Once it resumes, any request it then finishes
from its buffers (an object, an unfinished multipart upload) is what the sweeper removes:
after one sweep, every object under the app's prefix is named by a row and no multipart
upload is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import Engine

from backend.config import Settings
from backend.main import create_app
from backend.services.tasks.attachments import sweep_orphans
from backend.storage.app import app_storage
from backend.storage.s3 import MIN_PART_BYTES, S3Storage
from tests.conftest import _registering, loaded
from tests.storage.conftest import BUCKET, radosgw_server  # noqa: F401
from tests.storage.radosgw import Radosgw

# The answer's bound (the issue's), above the defaults' ~2 x 3 s and a loaded machine's slack.
ANSWER_SECONDS = 10.0
# However the test ends, the gateway is resumed by then.
MOST_FROZEN_SECONDS = 60.0


@pytest.fixture(scope="module")
def on_s3(settings: Settings, radosgw_server: Radosgw) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(
        settings.model_copy(
            update={
                "attachments_max_file_bytes": 3 * MIN_PART_BYTES,
                "rate_limit_enabled": False,
                "attachments_dir": Path(tempfile.mkdtemp(prefix="task-api-unused-")),
                "s3_bucket": BUCKET,
                "s3_endpoint_url": radosgw_server.endpoint,
                "s3_region": radosgw_server.region,
                "s3_access_key_id": radosgw_server.access_key,
                "s3_secret_access_key": SecretStr(radosgw_server.secret_key),
                "s3_addressing_style": "path",
                "s3_prefix": f"frozen-{secrets.token_hex(4)}/",
                "s3_part_bytes": MIN_PART_BYTES,
            }
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield loaded(client)


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The gateway paused, resumed on leaving or after MOST_FROZEN_SECONDS at the latest."""
    resume = threading.Timer(MOST_FROZEN_SECONDS, os.kill, (pid, signal.SIGCONT))
    os.kill(pid, signal.SIGSTOP)
    resume.start()
    try:
        yield
    finally:
        resume.cancel()
        os.kill(pid, signal.SIGCONT)


def _settled(storage: S3Storage) -> tuple[set[str], set[str]]:
    """The objects and unfinished uploads under the prefix once the gateway has worked off
    what it had buffered (two readings a second apart agree; 30 s at most)."""

    def reading() -> tuple[set[str], set[str]]:
        objects = {found.key for found in storage.list()}
        uploads = storage.client.list_multipart_uploads(
            Bucket=storage.bucket, Prefix=storage.prefix
        )
        return objects, {upload["UploadId"] for upload in uploads.get("Uploads", [])}

    deadline = time.monotonic() + 30
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # still waking
            now = reading()
            if now == last:
                return now
            last = now
        time.sleep(1)
    raise AssertionError("the gateway did not settle after it resumed")


def test_a_frozen_store_is_503_in_seconds_and_leaves_nothing_unnamed(
    on_s3: TestClient,
    radosgw_server: Radosgw,  # noqa: F811
    db_engine: Engine,
) -> None:
    alice = _registering(on_s3)()
    made = on_s3.post("/api/tasks", json={"title": "files"}, headers=alice.headers)
    task = made.json()["data"]["id"]
    url = f"/api/tasks/{task}/attachments"
    kept = on_s3.post(url, files={"file": ("kept.bin", b"k" * 1000)}, headers=alice.headers)
    assert kept.status_code == 201, kept.text
    download = f"{url}/{kept.json()['data']['id']}/download"
    bodies = {
        "one request": secrets.token_bytes(100_000),
        "multipart": secrets.token_bytes(MIN_PART_BYTES + 100_000),
    }
    answers: dict[str, tuple[int, str | None, float]] = {}
    with frozen(radosgw_server.pid):
        for name, data in bodies.items():
            started = time.monotonic()
            answer = on_s3.post(url, files={"file": ("a.bin", data)}, headers=alice.headers)
            answers[name] = (
                answer.status_code,
                answer.headers.get("retry-after"),
                time.monotonic() - started,
            )
        started = time.monotonic()
        answer = on_s3.get(download, headers=alice.headers, follow_redirects=False)
        answers["download"] = (answer.status_code, None, time.monotonic() - started)
    print({name: f"{status} in {seconds:.1f} s" for name, (status, _, seconds) in answers.items()})
    for name in bodies:
        status, retry_after, seconds = answers[name]
        assert status == 503, name
        assert retry_after is not None and int(retry_after) >= 1
        assert seconds < ANSWER_SECONDS, (name, seconds)
    assert answers["download"][0] == 302 and answers["download"][2] < ANSWER_SECONDS

    storage = app_storage(on_s3.app)
    assert isinstance(storage, S3Storage)
    _settled(storage)
    # Everything under the prefix counts as old enough: this app's uploads are all answered.
    sweep_orphans(db_engine, storage, datetime.now(UTC) + timedelta(hours=2))
    objects, uploads = _settled(storage)
    with db_engine.connect() as conn:
        named = {
            row.storage_key
            for row in conn.execute(
                text("SELECT storage_key FROM task_attachments WHERE task_id = :task"),
                {"task": task},
            )
        }
    assert objects == named and len(named) == 1  # the file kept before the freeze, alone
    assert uploads == set()
    assert on_s3.get(download, headers=alice.headers, follow_redirects=False).status_code == 302
