"""Cross-cutting HTTP behaviour: request ids, CORS, health, error envelopes, no leaks."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from backend.api.routes.tasks import TaskRoute
from backend.config import Settings
from backend.main import create_app
from tests.conftest import Account, api_routes, bearer, make_token


def test_request_id_is_generated_and_echoed(client: TestClient) -> None:
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) >= 16
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    replaced = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"


def test_error_responses_carry_request_id(client: TestClient) -> None:
    for response in (client.get("/api/tasks"), client.get("/nowhere")):
        assert response.headers.get("x-request-id")


def test_unknown_route_and_method_use_the_envelope(client: TestClient, alice: Account) -> None:
    missing = client.get("/api/nothing-here", headers=alice.headers)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "NOT_FOUND", "message": "Not found", "details": []}}
    wrong_method = client.request("PATCH", "/api/tasks", headers=alice.headers)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# Every fixed path's name under /api/tasks, read from the route table here.
_FIXED = re.compile(r"^/api/tasks/([^/{]+)")
_ROUTES = api_routes(create_app(Settings(environment="test", jwt_secret="t" * 48)))
FIXED = sorted({m.group(1) for r in _ROUTES if (m := _FIXED.match(r.path))})


@pytest.mark.parametrize("name", FIXED)
def test_a_fixed_path_is_no_task_id(client: TestClient, alice: Account, name: str) -> None:
    """Every fixed path under /api/tasks (`TaskRoute.fixed`, derived from the routes: a new
    one needs no line) is its own resource: a method only `/{task_id}` serves is 405, not a
    422 for a task id `stats`."""
    assert len(FIXED) >= 6 and name in TaskRoute.fixed
    path = f"/api/tasks/{name}"
    served = {m for route in _ROUTES if route.path == path for m in route.methods}
    method = next(m for m in ("GET", "PUT", "PATCH", "DELETE") if m not in served)
    response = client.request(method, path, headers=alice.headers)
    assert response.status_code == 405, (method, path, response.text)


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE", "POST", "GET"])
def test_cors_preflight_succeeds_without_a_token(client: TestClient, method: str) -> None:
    response = client.options(
        "/api/tasks/1",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert method in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_cors_refuses_unlisted_origin(client: TestClient) -> None:
    response = client.options(
        "/api/tasks",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    simple = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_headers_on_actual_responses(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/api/tasks",
        json={"title": "x"},
        headers={**alice.headers, "Origin": "http://localhost:3000"},
    )
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "location" in exposed and "x-request-id" in exposed


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/health").json() == {"data": {"status": "ok"}}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["data"] == {"status": "ready", "database": "ok", "migrations": "current"}


def test_streamed_body_over_the_limit_is_413(client: TestClient, alice: Account) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"title": "x", "description": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    response = client.post(
        "/api/tasks",
        content=chunks(),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.fixture(scope="module")
def crashing_app(settings: Settings) -> FastAPI:
    """The real app plus one route that fails unexpectedly, to exercise the 500 path."""
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail: SELECT password_hash FROM users")

    return app


def test_unexpected_error_is_a_generic_500_without_internals(crashing_app: FastAPI) -> None:
    with TestClient(crashing_app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "INTERNAL_ERROR", "message": "Internal server error", "details": []}
    }
    assert "secret" not in response.text and "SELECT" not in response.text
    assert response.headers.get("x-request-id")
    assert response.headers.get("access-control-allow-origin") == "http://localhost:3000"


def test_unreachable_database_is_503_not_500(settings: Settings) -> None:
    broken = settings.model_copy(
        update={
            "database_url": SecretStr("postgresql://nobody@127.0.0.1:1/none"),
            "db_connect_timeout_seconds": 2,
        }
    )
    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        response = client.get("/api/tasks", headers=bearer(make_token()))
        ready = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "127.0.0.1" not in response.text and "nobody" not in response.text
    assert response.headers["retry-after"] == "1"
    assert ready.status_code == 503


def test_timestamps_are_utc_whatever_the_database_time_zone(
    app: FastAPI, client: TestClient, alice: Account, db_engine: Engine
) -> None:
    database = db_engine.url.database
    with db_engine.begin() as conn:
        conn.execute(text(f"ALTER DATABASE {database} SET timezone = 'Asia/Kolkata'"))
    app.state.engine.dispose()  # new connections pick up the database's time zone
    try:
        task = client.post(
            "/api/tasks", json={"title": "tz", "completed": True}, headers=alice.headers
        ).json()["data"]
        for key in ("created_at", "updated_at", "completed_at"):
            assert task[key].endswith("Z"), task[key]
        # The same instant as the database's own clock, read back in UTC.
        with db_engine.connect() as conn:
            stored = conn.scalar(
                text(
                    "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
                    "FROM tasks WHERE id = :id"
                ),
                {"id": task["id"]},
            )
        assert task["created_at"].replace("T", " ")[:19] == stored
        got = client.get(f"/api/tasks/{task['id']}", headers=alice.headers).json()["data"]
        listed = client.get("/api/tasks", headers=alice.headers).json()["data"][0]
        toggled = client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
        assert toggled.status_code == 200
        for read in (got, listed, toggled.json()["data"]):
            assert read["created_at"] == task["created_at"]
            assert read["updated_at"].endswith("Z"), read
        me = client.get("/api/auth/me", headers=alice.headers).json()["data"]
        assert me["created_at"].endswith("Z")
    finally:
        with db_engine.begin() as conn:
            conn.execute(text(f"ALTER DATABASE {database} RESET timezone"))
        app.state.engine.dispose()
