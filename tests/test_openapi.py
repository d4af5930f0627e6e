"""The committed OpenAPI snapshot is what the app serves; the docs work offline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.sharing.references import ROUTES as SHARING_ROUTES

SNAPSHOT = Path(__file__).resolve().parent.parent / "specs" / "openapi.json"
REGENERATE = "python -m backend openapi > specs/openapi.json"


def test_openapi_matches_committed_snapshot(client: TestClient) -> None:
    live = client.get("/openapi.json").json()
    committed = json.loads(SNAPSHOT.read_text())
    assert live == committed, f"the API changed: regenerate with `{REGENERATE}` and review"


_SIGNED_IN = ("/api/tasks", "/api/{user_id}/tasks", "/api/lists", "/api/{user_id}/lists")


def _twinless(operations: Any, method: str, path: str, twin: str) -> bool:
    """A route of shared lists (issue 39: new routes live under /api alone) without a twin."""
    return (method, path) in SHARING_ROUTES and (method, twin) not in operations


def test_every_task_route_documents_auth_and_errors(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/auth/token"
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        if not path.startswith(_SIGNED_IN):
            continue
        for method, operation in operations.items():
            assert operation.get("security"), (method, path)
            assert {"401", "422"} <= set(operation["responses"]), (method, path)
            error_schema = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert error_schema == {"$ref": "#/components/schemas/ErrorEnvelope"}
            if "{task_id}" in path or "{list_id}" in path or "{user_id}" in path:
                assert "404" in operation["responses"], (method, path)


@pytest.mark.parametrize(
    ("stem", "twin_stem", "tag"),
    [
        ("/api/tasks", "/api/{user_id}/tasks", "user-tasks"),
        ("/api/lists", "/api/{user_id}/lists", "user-lists"),
    ],
)
def test_every_task_route_has_its_published_twin(
    client: TestClient, stem: str, twin_stem: str, tag: str
) -> None:
    """/api/{user_id}/tasks... documents what /api/tasks... does, plus the user id and the 404
    for an id that is not the caller's (and so do the lists' twins)."""
    document = client.get("/openapi.json").json()
    operations = _operations(document)
    for (method, path), operation in operations.items():
        twin_path = path.replace(stem, twin_stem, 1)
        if not path.startswith(stem) or _twinless(operations, method, path, twin_path):
            continue
        twin = operations[(method, twin_path)]
        assert twin["tags"] == [tag]
        assert twin["parameters"][0]["name"] == "user_id"
        assert twin["parameters"][1:] == operation.get("parameters", [])
        assert twin.get("requestBody") == operation.get("requestBody")
        assert set(twin["responses"]) == set(operation["responses"]) | {"404"}
        for status, response in operation["responses"].items():
            if status != "404":
                assert twin["responses"][status] == response, (method, path, status)


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def test_operation_ids_are_the_names_a_client_should_have(client: TestClient) -> None:
    """The names client generators turn into functions (openapi-fetch, orval,
    openapi-generator) are part of the contract: each route declares one (FastAPI's generated
    `list_tasks_api_tasks_get` fails the pattern), camelCase, unique, a twin's is its route's
    by `user_tasks.user_operation_id`, and none differs from the committed snapshot's, so a
    rename shows in the reviewed diff of specs/openapi.json."""
    from backend.api.routes.user_tasks import user_operation_id

    operations = _operations(client.get("/openapi.json").json())
    ids = {key: operation["operationId"] for key, operation in operations.items()}
    committed = {
        key: operation["operationId"]
        for key, operation in _operations(json.loads(SNAPSHOT.read_text())).items()
    }
    assert ids == committed, f"an operation id changed (a client function renamed): {REGENERATE}"
    assert len(set(ids.values())) == len(ids), "operation ids must be unique"
    for key, operation_id in ids.items():
        assert re.fullmatch(r"[a-z][A-Za-z]+", operation_id), (key, operation_id)
    for (method, path), operation_id in ids.items():
        for stem in ("/api/tasks", "/api/lists"):
            twin_stem = stem.replace("/api/", "/api/{user_id}/", 1)
            twin_path = path.replace(stem, twin_stem, 1)
            if path.startswith(stem) and not _twinless(ids, method, path, twin_path):
                twin = ids[(method, twin_path)]
                assert twin == user_operation_id(operation_id), (method, path, twin)
    assert len(ids) >= 50


def test_twin_operation_ids_are_derived_as_they_were_listed() -> None:
    """The derivation gives every twin the id the hand list named before it (issue 81)."""
    from backend.api.routes.user_tasks import user_operation_id

    listed = {
        "listTasks": "listUserTasks",
        "createTask": "createUserTask",
        "taskStats": "userTaskStats",
        "bulkTasks": "bulkUserTasks",
        "clearCompletedTasks": "clearCompletedUserTasks",
        "getTask": "getUserTask",
        "listTaskOccurrences": "listUserTaskOccurrences",
        "listTaskChanges": "listUserTaskChanges",
        "getTaskSubtree": "getUserTaskSubtree",
        "listLists": "listUserLists",
        "moveList": "moveUserList",
    }
    assert {name: user_operation_id(name) for name in listed} == listed


def test_schema_names_are_plain_words(client: TestClient) -> None:
    """No generic noise (`DataEnvelope_TaskPublic_`) or generated form names (`Body_...`)."""
    names = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"TaskEnvelope", "TaskListEnvelope", "TokenRequest", "HealthEnvelope"} <= set(names)
    for name in names:
        assert re.fullmatch(r"[A-Z][A-Za-z]+", name), name


# The error codes each status may carry (specs/api-contract.md, "Error codes").
CODES = {
    400: {"BAD_REQUEST"},
    401: {"UNAUTHORIZED"},
    403: {"FORBIDDEN"},
    404: {"NOT_FOUND"},
    408: {"REQUEST_TIMEOUT"},
    409: {"CONFLICT", "IDEMPOTENCY_KEY_IN_USE"},
    410: {"CURSOR_EXPIRED"},
    412: {"PRECONDITION_FAILED"},
    413: {"PAYLOAD_TOO_LARGE"},
    422: {"VALIDATION_ERROR", "IDEMPOTENCY_KEY_MISMATCH", "LIMIT_REACHED"},
    429: {"RATE_LIMITED"},
    502: {"CHAT_PROVIDER_ERROR", "CHAT_TOO_MANY_TURNS"},
    503: {"SERVICE_UNAVAILABLE", "CHAT_NOT_CONFIGURED", "CHAT_PROVIDER_UNAVAILABLE"},
    504: {"CHAT_PROVIDER_TIMEOUT"},
}


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return dict(target)


def test_every_error_response_shows_examples_with_its_own_codes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}, key
            examples = [_resolve(document, e)["value"] for e in content["examples"].values()]
            assert examples, (key, status)
            for example in examples:
                assert example["error"]["code"] in CODES[int(status)], (key, status, example)
                assert example["error"]["message"] and isinstance(example["error"]["details"], list)
    login_401 = _operations(document)[("POST", "/api/auth/login")]["responses"]["401"]
    assert list(login_401["content"]["application/json"]["examples"]) == ["bad_credentials"]


def _headers(document: dict[str, Any], response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: _resolve(document, h) for name, h in response.get("headers", {}).items()}


def test_every_response_header_is_declared(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = _operations(document)
    for key, operation in operations.items():
        limited = "429" in operation["responses"]
        for status, response in operation["responses"].items():
            declared = _headers(document, response)
            assert declared["X-Request-ID"]["required"] is True, (key, status)
            if status == "401":
                assert declared["WWW-Authenticate"]["required"] is True, key
            if status in {"429", "503"}:
                assert declared["Retry-After"]["required"] is True, (key, status)
            if limited:
                # Sent whenever the request was counted, whatever its status (a 422 too),
                # hence only when limits are on.
                assert {"RateLimit", "RateLimit-Policy"} <= set(declared), (key, status)
                assert declared["RateLimit"]["required"] is False
    assert "Retry-After" in operations[("POST", "/api/tasks")]["responses"]["409"]["headers"]

    def success(method: str, path: str, status: str = "200") -> set[str]:
        return set(_headers(document, operations[(method, path)]["responses"][status]))

    assert {"Location", "ETag", "Idempotent-Replayed"} <= success("POST", "/api/tasks", "201")
    assert "Link" in success("GET", "/api/tasks")
    assert "ETag" in success("GET", "/api/tasks/{task_id}")
    assert "ETag" in success("GET", "/api/tasks/{task_id}", "304")
    for method, path in [
        ("PUT", "/api/tasks/{task_id}"),
        ("PATCH", "/api/tasks/{task_id}"),
        ("PATCH", "/api/tasks/{task_id}/complete"),
    ]:
        assert "ETag" in success(method, path)
    assert "Idempotent-Replayed" in success("POST", "/api/tasks/bulk")


def test_info_tags_and_health_schemas(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["info"]["license"] == {"name": "MIT", "identifier": "MIT"}
    assert document["info"]["contact"]["name"]
    described = {tag["name"]: tag["description"] for tag in document["tags"]}
    used = {tag for op in _operations(document).values() for tag in op["tags"]}
    assert used <= set(described) and all(described.values())
    for path, schema in [("/health", "HealthEnvelope"), ("/health/ready", "ReadyEnvelope")]:
        ok = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"] == {"$ref": f"#/components/schemas/{schema}"}


def test_swagger_ui_is_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn.jsdelivr" not in page.text and "unpkg.com" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in page.text
        response = client.get(f"/static-offline-docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000


def _sse_events(body: str) -> list[dict[str, Any]]:
    """The events a Server-Sent Events parser dispatches (WHATWG): blocks with a `data:` line,
    each as `{"id", "event", "data", ...}` (`event` "message" when none is named)."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, Any] = {}
        data = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "retry":
                fields["retry"] = int(value)
            else:
                fields[name] = value
        if data:
            events.append({"event": "message", **fields, "data": "\n".join(data)})
    return events


def test_the_live_streams_events_are_what_the_document_declares(
    client: TestClient, register: Any
) -> None:
    """Each event of `GET /api/changes/stream` validates against the event the committed
    document declares for `text/event-stream` (OpenAPI 3.2's `itemSchema`; before 3.2, its
    `schema`, as schemathesis reads it), and its `data` against the declared JSON (issue 61,
    item 8: it was declared a string)."""
    import jsonschema

    document = json.loads(SNAPSHOT.read_text())
    declared = document["paths"]["/api/changes/stream"]["get"]["responses"]["200"]["content"]
    media = declared["text/event-stream"]
    event_schema = media.get("itemSchema", media.get("schema"))
    validator = jsonschema.Draft202012Validator(
        {**event_schema, "components": document["components"]}
    )
    caller = register()
    start = client.get("/api/tasks/changes", headers=caller.headers).json()["meta"]["next_cursor"]
    made = client.post("/api/tasks", json={"title": "Streamed"}, headers=caller.headers)
    task_id = made.json()["data"]["id"]
    client.patch(f"/api/tasks/{task_id}", json={"completed": True}, headers=caller.headers)
    client.delete(f"/api/tasks/{task_id}", headers=caller.headers)
    # The test settings end a stream after 0.5 s: its answer is read whole.
    answer = client.get("/api/changes/stream", params={"cursor": start}, headers=caller.headers)
    assert answer.status_code == 200, answer.text
    events = _sse_events(answer.text)
    assert len(events) == 3, answer.text
    for event in events:
        validator.validate(event)
    payload = event_schema["properties"]["data"]
    assert payload["contentMediaType"] == "application/json"
    data_validator = jsonschema.Draft202012Validator(
        {**payload["contentSchema"], "components": document["components"]}
    )
    for event in events:
        data_validator.validate(json.loads(event["data"]))
