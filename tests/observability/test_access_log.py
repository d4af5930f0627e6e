"""The access log line on the real app (TestClient, real PostgreSQL): the route template, the
final status of every path through the middleware stack, and the user id, never the token.
The JSON rendering, the request id and multiple workers are in test_serve.py."""

from __future__ import annotations

import logging
import secrets

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.main import create_app
from backend.observability.logging import ACCESS_LOGGER
from tests.conftest import Account, bearer, make_token


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


def only(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    found = lines(caplog)
    assert len(found) == 1, [r.getMessage() for r in found]
    return found[0]


def test_authenticated_request_logs_user_and_route_template(
    client: TestClient, alice: Account, access: pytest.LogCaptureFixture
) -> None:
    task_id = client.post("/api/tasks", json={"title": "x"}, headers=alice.headers).json()["data"][
        "id"
    ]
    access.clear()
    response = client.patch(
        f"/api/tasks/{task_id}/", json={"completed": True}, headers=alice.headers
    )
    assert response.status_code == 200
    record = only(access)
    assert record.method == "PATCH"  # type: ignore[attr-defined]
    assert record.route == "/api/tasks/{task_id}"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.user_id == alice.id  # type: ignore[attr-defined]
    assert record.client == "testclient"  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
    assert not hasattr(record, "path")
    assert alice.token not in str(record.__dict__)


def test_external_token_logs_its_subject(
    client: TestClient, access: pytest.LogCaptureFixture
) -> None:
    token = make_token(sub="external-user-42")
    assert client.get("/api/tasks", headers=bearer(token)).status_code == 200
    record = only(access)
    assert record.user_id == "external-user-42"  # type: ignore[attr-defined]
    assert token not in str(record.__dict__)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, bearer(make_token(sub="x", lifetime=-120))],
    ids=["no token", "malformed", "expired"],
)
def test_unauthenticated_request_logs_no_user(
    client: TestClient, access: pytest.LogCaptureFixture, headers: dict[str, str]
) -> None:
    assert client.get("/api/tasks", headers=headers).status_code == 401
    record = only(access)
    assert record.user_id is None  # type: ignore[attr-defined]
    assert record.status == 401  # type: ignore[attr-defined]
    for value in headers.values():
        assert value not in str(record.__dict__) and value not in record.getMessage()


def test_statuses_from_outer_middleware_are_logged(
    client: TestClient, alice: Account, settings: Settings, access: pytest.LogCaptureFixture
) -> None:
    too_big = client.post(
        "/api/tasks",
        content=b"x" * (settings.max_body_bytes + 1),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    refused = client.options(
        "/api/tasks",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    missing = client.get("/no/such/path")
    assert (too_big.status_code, refused.status_code, missing.status_code) == (413, 400, 404)
    # Refused before routing, by their route's template; a path no route has, not at all.
    assert [(r.status, r.route) for r in lines(access)] == [  # type: ignore[attr-defined]
        (413, "/api/tasks"),
        (400, "/api/tasks"),
        (404, None),
    ]
    assert not any(hasattr(r, "path") for r in lines(access))


def test_no_path_is_logged_only_route_templates(
    client: TestClient, alice: Account, settings: Settings, access: pytest.LogCaptureFixture
) -> None:
    """Issue 61, item 7: a path no route has is logged as a fixed placeholder, never as sent
    (a token split by `/`, or its first 30 characters, is no token by its shape), and a
    request refused before routing (an early 413) by its route's template, not its path."""
    token = secrets.token_urlsafe(32)  # a feed token's shape: 43 characters
    unknown = [
        f"/api/calendar/{token[:21]}/{token[21:]}.ics",  # split by `/`
        f"/api/tasks/{token[:21]}/x/{token[21:]}",
        f"/api/calendars/{token[:30]}.ics",  # a prefix, in a mistyped route
        f"/API/calendar/{token}.ics",
        f"/{token[:30]}",
    ]
    for path in unknown:
        assert client.get(path).status_code == 404
    too_big = client.put(
        f"/api/tasks/{token[:12]}",  # no route would take it, but the template is known
        content=b"x" * (settings.max_body_bytes + 1),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    found = lines(access)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in found)
    for piece in (token[:8], token[21:29], token[-8:]):
        assert piece not in logged, logged
    assert not any(hasattr(r, "path") for r in found)
    assert [(r.status, r.route) for r in found] == [  # type: ignore[attr-defined]
        *[(404, None)] * len(unknown),
        (413, "/api/tasks/{task_id}"),
    ]
    assert all("<unmatched>" in r.getMessage() for r in found[: len(unknown)])


def test_unhandled_error_is_logged_as_500(
    settings: Settings, access: pytest.LogCaptureFixture
) -> None:
    app: FastAPI = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    record = only(access)
    assert (record.status, record.route) == (500, "/boom")  # type: ignore[attr-defined]


def _call_tool(client: TestClient, user: Account, name: str, arguments: dict[str, object]) -> dict:  # type: ignore[type-arg]
    response = client.post(
        "/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        },
        headers={**user.headers, "Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 200, response.text  # a tool error is a 200 on HTTP
    result: dict = response.json()["result"]  # type: ignore[type-arg]
    return result


def test_a_tool_call_is_logged_with_its_outcome(
    client: TestClient, alice: Account, access: pytest.LogCaptureFixture
) -> None:
    result = _call_tool(client, alice, "add_task", {"title": "x"})
    assert not result.get("isError"), result
    record = only(access)
    assert (record.tool, record.tool_status, record.levelno) == ("add_task", 200, logging.INFO)  # type: ignore[attr-defined]
    access.clear()
    missing = _call_tool(client, alice, "delete_task", {"task_id": 999_999})
    assert missing["isError"]
    record = only(access)
    assert (record.tool, record.tool_status, record.levelno) == ("delete_task", 404, logging.INFO)  # type: ignore[attr-defined]


def test_a_tool_that_fails_unexpectedly_is_logged_and_counted_as_the_error_it_is(
    app: FastAPI, client: TestClient, alice: Account, access: pytest.LogCaptureFixture
) -> None:
    from backend.services.tasks.service import TaskService

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in a service")

    metrics = client.get("/metrics").text if app.state.settings.serve_metrics else ""
    access.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TaskService, "create", broken)
        result = _call_tool(client, alice, "add_task", {"title": "x"})
    assert result["isError"]
    assert '"INTERNAL_ERROR"' in result["content"][0]["text"]
    assert "a bug in a service" not in result["content"][0]["text"]
    record = only(access)
    assert (record.tool, record.tool_status, record.levelno) == ("add_task", 500, logging.ERROR)  # type: ignore[attr-defined]
    assert "tool=add_task tool_status=500" in record.getMessage()
    if metrics:
        after = client.get("/metrics").text
        line = 'mcp_tool_calls_total{status="500",tool="add_task"} '
        before = next((x for x in metrics.splitlines() if x.startswith(line)), line + "0")
        now = next(x for x in after.splitlines() if x.startswith(line))
        assert float(now.split()[-1]) == float(before.split()[-1]) + 1
