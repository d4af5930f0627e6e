"""The storage backends under test: the filesystem in a temp directory, and S3 on a real
radosgw started for the session (tests/storage/radosgw.py), each test under its own prefix."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from backend.storage.filesystem import FilesystemStorage
from backend.storage.s3 import MIN_PART_BYTES, S3Storage, make_client
from tests.conftest import apt_install, skip_or_fail_in_ci
from tests.storage import radosgw
from tests.storage.radosgw import Radosgw

BUCKET = "task-api-tests"


@pytest.fixture(scope="session")
def radosgw_server() -> Iterator[Radosgw]:
    """radosgw on a one-node Ceph; installed from Debian when missing (skipped where it cannot
    be, failed under CI=true)."""
    if not radosgw.installed():
        started = time.monotonic()
        problem = apt_install(*radosgw.PACKAGES, recommends=False)
        if problem or not radosgw.installed():
            skip_or_fail_in_ci(f"radosgw: Debian {' '.join(radosgw.PACKAGES)}: {problem}")
        print(f"radosgw: installed in {time.monotonic() - started:.1f} s")
    root = Path(tempfile.mkdtemp(prefix="task-api-radosgw-"))
    try:
        started = time.monotonic()
        with radosgw.running_radosgw(root) as server:
            print(f"radosgw: started in {time.monotonic() - started:.1f} s")
            client = _client(server)
            client.create_bucket(Bucket=BUCKET)
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _client(server: Radosgw) -> S3Client:
    return make_client(
        endpoint_url=server.endpoint,
        region=server.region,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        addressing_style="path",
    )


@pytest.fixture(scope="session")
def s3_client(radosgw_server: Radosgw) -> S3Client:
    """One client for the session: building one loads botocore's S3 model (~0.5 s)."""
    return _client(radosgw_server)


@pytest.fixture
def s3_storage(s3_client: S3Client) -> S3Storage:
    # The smallest part S3 allows, so that a test crosses into multipart with little data;
    # a prefix of its own, so that a test lists only its own objects.
    return S3Storage(
        bucket=BUCKET,
        prefix=f"t-{secrets.token_hex(6)}/",
        part_bytes=MIN_PART_BYTES,
        client=s3_client,
    )


@pytest.fixture
def fs_storage(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "attachments")


@pytest.fixture(params=["filesystem", "s3"])
def storage(request: pytest.FixtureRequest) -> FilesystemStorage | S3Storage:
    """Each backend in turn: the same test must pass on both."""
    name = "fs_storage" if request.param == "filesystem" else "s3_storage"
    backend: FilesystemStorage | S3Storage = request.getfixturevalue(name)
    return backend
