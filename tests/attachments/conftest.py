"""An app per storage backend (the filesystem in a temp directory; S3 on the real radosgw of
tests/storage), on the suite's database, with small limits so a test reaches them quickly."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from backend.config import Settings
from backend.main import create_app
from backend.storage import ObjectStorage
from backend.storage.app import app_storage
from tests.conftest import Account, _registering, loaded
from tests.storage.conftest import BUCKET, radosgw_server, s3_client  # noqa: F401
from tests.storage.radosgw import Radosgw

MAX_FILE = 100_000
QUOTA = 1_000_000


def _settings(settings: Settings, **storage: object) -> Settings:
    return settings.model_copy(
        update={
            "attachments_max_file_bytes": MAX_FILE,
            "attachments_quota_bytes": QUOTA,
            "rate_limit_enabled": False,
            # test_quota_under_concurrent_uploads runs 20 at once (the bound: test_uploads.py)
            "attachments_max_concurrent_uploads": 32,
            **storage,
        }
    )


@pytest.fixture(scope="session")
def _fs_client(settings: Settings) -> Iterator[TestClient]:
    folder = Path(tempfile.mkdtemp(prefix="task-api-attachments-"))
    app = create_app(_settings(settings, attachments_dir=folder))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield loaded(client)


@pytest.fixture(scope="session")
def _s3_client(settings: Settings, radosgw_server: Radosgw) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(
        _settings(
            settings,
            s3_bucket=BUCKET,
            s3_endpoint_url=radosgw_server.endpoint,
            s3_region=radosgw_server.region,
            s3_access_key_id=radosgw_server.access_key,
            s3_secret_access_key=SecretStr(radosgw_server.secret_key),
            s3_addressing_style="path",
            s3_prefix=f"app-{secrets.token_hex(4)}/",
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield loaded(client)


@pytest.fixture(params=["filesystem", "s3"])
def files(request: pytest.FixtureRequest) -> TestClient:
    """A client of the app on each backend in turn: the same test passes on both."""
    name = "_fs_client" if request.param == "filesystem" else "_s3_client"
    client: TestClient = request.getfixturevalue(name)
    return client


@pytest.fixture
def storage(files: TestClient) -> ObjectStorage:
    return app_storage(files.app)


@pytest.fixture
def people(files: TestClient) -> Callable[..., Account]:
    return _registering(files)
