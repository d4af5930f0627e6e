"""/metrics on the real app (TestClient, real PostgreSQL): protection, labels, pool gauges.
Aggregation across worker processes is in test_serve.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from backend.config import Settings
from backend.main import create_app
from tests.conftest import Account

TOKEN = "metrics-token-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metrics_client(settings: Settings) -> Iterator[TestClient]:
    """A fresh app, so counts start at zero."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_requests_counted_by_method_route_template_and_status(
    metrics_client: TestClient, alice: Account
) -> None:
    client = metrics_client
    ids = [
        client.post("/api/tasks", json={"title": f"t{i}"}, headers=alice.headers).json()["data"][
            "id"
        ]
        for i in range(3)
    ]
    for task_id in ids:
        assert client.get(f"/api/tasks/{task_id}", headers=alice.headers).status_code == 200
    assert client.get("/api/tasks/999999", headers=alice.headers).status_code == 404
    assert client.get(f"/api/tasks/{ids[0]}").status_code == 401
    found = samples(client)
    route = "/api/tasks/{task_id}"
    assert value(found, "http_requests_total", method="POST", route="/api/tasks", status="201") == 3
    assert value(found, "http_requests_total", method="GET", route=route, status="200") == 3
    assert value(found, "http_requests_total", method="GET", route=route, status="404") == 1
    assert value(found, "http_requests_total", method="GET", route=route, status="401") == 1
    count = value(
        found, "http_request_duration_seconds_count", method="GET", route=route, status="200"
    )
    assert count == 3
    buckets = {
        dict(labels)["le"]: v
        for (name, labels), v in found.items()
        if name == "http_request_duration_seconds_bucket"
        and dict(labels).get("route") == route
        and dict(labels).get("status") == "200"
    }
    assert list(buckets) == [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
        "2.5", "5.0", "+Inf",
    ]  # fmt: skip
    assert buckets["+Inf"] == 3
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative
    # Only raw ids would make label values explode: none appears.
    assert not any(str(i) in dict(labels).get("route", "") for (_, labels) in found for i in ids)


def test_unknown_paths_and_methods_add_no_label_values(metrics_client: TestClient) -> None:
    client = metrics_client
    for _ in range(25):
        assert client.get(f"/scan/{uuid.uuid4().hex}").status_code == 404
    assert client.request("PURGE", "/api/tasks").status_code == 405
    found = samples(client)
    routes = {
        dict(labels).get("route") for (name, labels) in found if name == "http_requests_total"
    }
    assert routes == {"unmatched", "/api/tasks"}
    assert value(found, "http_requests_total", method="GET", route="unmatched", status="404") == 25
    assert (
        value(found, "http_requests_total", method="OTHER", route="/api/tasks", status="405") == 1
    )


def test_trailing_slash_counts_under_the_template(
    metrics_client: TestClient, alice: Account
) -> None:
    assert metrics_client.get("/api/tasks/", headers=alice.headers).status_code == 200
    found = samples(metrics_client)
    assert value(found, "http_requests_total", method="GET", route="/api/tasks", status="200") == 1


def test_pool_and_in_flight_gauges(settings: Settings) -> None:
    # An overflow configured (the default has none), so that its gauge has something to show.
    pooled = settings.model_copy(update={"db_pool_size": 3, "db_max_overflow": 2})
    with TestClient(create_app(pooled), raise_server_exceptions=False) as metrics_client:
        app: FastAPI = metrics_client.app  # type: ignore[assignment]
        found = samples(metrics_client)
        assert value(found, "db_pool_size") == 3
        assert value(found, "db_pool_max_overflow") == 2
        assert value(found, "db_pool_checked_out") == 0
        assert value(found, "http_requests_in_flight") == 1  # the scrape itself
        # Connections taken from the app's own pool show up, beyond the size as overflow.
        engine = app.state.engine
        held = [engine.connect() for _ in range(3 + 2)]
        try:
            found = samples(metrics_client)
            assert value(found, "db_pool_checked_out") == 3 + 2
            assert value(found, "db_pool_overflow") == 2
        finally:
            for connection in held:
                connection.close()
        found = samples(metrics_client)
        assert value(found, "db_pool_checked_out") == 0
        assert value(found, "db_pool_overflow") == 0


def test_token_protects_metrics(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}))
    with TestClient(app, raise_server_exceptions=False) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ):
            response = client.get("/metrics", headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "UNAUTHORIZED"
        found = samples(client, Authorization=f"Bearer {TOKEN}")
    assert value(found, "http_requests_total", method="GET", route="/metrics", status="401") == 4


def test_disabled_metrics_are_not_served(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_enabled": False}))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_metrics_route_is_not_in_the_openapi_document(app: FastAPI) -> None:
    assert any(getattr(route, "path", None) == "/metrics" for route in app.routes)
    assert "/metrics" not in app.openapi()["paths"]
