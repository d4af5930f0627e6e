"""The committed OpenAPI snapshot is what the app serves; the docs work offline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

SNAPSHOT = Path(__file__).resolve().parent.parent / "specs" / "openapi.json"
REGENERATE = "python -m backend openapi > specs/openapi.json"


def test_openapi_matches_committed_snapshot(client: TestClient) -> None:
    live = client.get("/openapi.json").json()
    committed = json.loads(SNAPSHOT.read_text())
    assert live == committed, f"the API changed: regenerate with `{REGENERATE}` and review"


def test_every_task_route_documents_auth_and_errors(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/auth/token"
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        if not path.startswith("/api/tasks"):
            continue
        for method, operation in operations.items():
            assert operation.get("security"), (method, path)
            assert {"401", "422"} <= set(operation["responses"]), (method, path)
            error_schema = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert error_schema == {"$ref": "#/components/schemas/ErrorEnvelope"}
            if "{task_id}" in path:
                assert "404" in operation["responses"], (method, path)


# The names client generators turn into functions (openapi-fetch, orval, openapi-generator):
# part of the contract, so a change here breaks clients and must be deliberate.
OPERATION_IDS = {
    ("GET", "/api/tasks"): "listTasks",
    ("POST", "/api/tasks"): "createTask",
    ("GET", "/api/tasks/stats"): "taskStats",
    ("POST", "/api/tasks/bulk"): "bulkTasks",
    ("DELETE", "/api/tasks/completed"): "clearCompletedTasks",
    ("GET", "/api/tasks/{task_id}"): "getTask",
    ("PUT", "/api/tasks/{task_id}"): "replaceTask",
    ("PATCH", "/api/tasks/{task_id}"): "updateTask",
    ("PATCH", "/api/tasks/{task_id}/complete"): "completeTask",
    ("DELETE", "/api/tasks/{task_id}"): "deleteTask",
    ("POST", "/api/auth/register"): "register",
    ("POST", "/api/auth/login"): "login",
    ("POST", "/api/auth/token"): "token",
    ("GET", "/api/auth/me"): "getMe",
    ("POST", "/api/auth/logout-all"): "logoutAll",
    ("DELETE", "/api/auth/me"): "deleteMe",
    ("GET", "/health"): "health",
    ("GET", "/health/ready"): "ready",
}


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def test_operation_ids_are_the_names_a_client_should_have(client: TestClient) -> None:
    operations = _operations(client.get("/openapi.json").json())
    ids = {key: operation["operationId"] for key, operation in operations.items()}
    assert {key: ids[key] for key in OPERATION_IDS} == OPERATION_IDS
    assert len(set(ids.values())) == len(ids), "operation ids must be unique"
    for key, operation_id in ids.items():
        assert re.fullmatch(r"[a-z][A-Za-z]+", operation_id), (key, operation_id)


def test_schema_names_are_plain_words(client: TestClient) -> None:
    """No generic noise (`DataEnvelope_TaskPublic_`) or generated form names (`Body_...`)."""
    names = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"TaskEnvelope", "TaskListEnvelope", "TokenRequest", "HealthEnvelope"} <= set(names)
    for name in names:
        assert re.fullmatch(r"[A-Z][A-Za-z]+", name), name


def test_swagger_ui_is_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn.jsdelivr" not in page.text and "unpkg.com" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in page.text
        response = client.get(f"/static-offline-docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000
