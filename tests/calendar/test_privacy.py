"""A feed's token is a credential in a URL (issue 52): it never reaches the access log nor
the metrics, whatever the fetch answered (200, 304, 404, a path without `.ics`, a path no
route knows)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from backend.config import Settings
from backend.main import create_app
from backend.observability.logging import ACCESS_LOGGER
from tests.calendar.test_feeds import make_feed, path_of
from tests.conftest import Account

METRICS_TOKEN = "metrics-token-0123456789"


@pytest.fixture
def observed(settings: Settings) -> Iterator[TestClient]:
    metered = settings.model_copy(
        update={"metrics_enabled": True, "metrics_token": SecretStr(METRICS_TOKEN)}
    )
    with TestClient(create_app(metered), raise_server_exceptions=False) as client:
        yield client


def test_the_token_is_in_no_log_line_and_no_metric(
    observed: TestClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    feed = make_feed(observed, alice)
    path = path_of(feed)
    token = path.removeprefix("/api/calendar/").removesuffix(".ics")
    tag = observed.get(path).headers["ETag"]
    assert observed.get(path, headers={"If-None-Match": tag}).status_code == 304
    rotated = observed.post(f"/api/calendar-feeds/{feed['id']}/rotate", headers=alice.headers)
    new_token = rotated.json()["data"]["url"].rsplit("/", 1)[1].removesuffix(".ics")
    assert observed.get(path).status_code == 404  # the old token, now unknown
    assert observed.get(path.removesuffix(".ics")).status_code == 404
    assert observed.get(path + "/more").status_code == 404  # no route: no path is logged
    for mistyped in ("/calendar/", "/api//calendar/", "/API/calendar/", "/api/x/../calendar/"):
        assert observed.get(f"{mistyped}{new_token}.ics").status_code in (200, 404)
    assert observed.get(f"/api/calendar/{new_token}.ics").status_code == 200
    access = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(access) >= 7
    # The server's lines (the test's HTTP client logs the URLs it requested).
    server = [r for r in caplog.records if not r.name.startswith("httpx")]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in server)
    metrics = observed.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200
    assert "/api/calendar/{token}.ics" in metrics.text
    for secret in (token, new_token):
        assert secret not in logged
        assert secret not in metrics.text
