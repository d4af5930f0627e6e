"""The committed OpenAPI snapshot is what the app serves; the docs work offline."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_swagger_ui_is_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn.jsdelivr" not in page.text and "unpkg.com" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in page.text
        response = client.get(f"/static-offline-docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000
