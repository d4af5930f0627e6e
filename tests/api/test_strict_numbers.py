"""Where the contract says integer, only an integer is accepted (issue 13, item 4).

JSON bodies: a JSON integer, not `true` (pydantic's lax mode read it as 1), not `"261"`, not
`261.0`. Path and query values arrive as text: plain ASCII decimal digits only, so `5_0`
(Python's digit separator), `+5`, ` 5`, `5.0` and other scripts' digits are refused.
Each refusal is a 422 with nothing changed.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account


def _task(client: TestClient, account: Account, title: str = "strict") -> dict[str, Any]:
    created = client.post("/api/tasks", json={"title": title}, headers=account.headers)
    assert created.status_code == 201, created.text
    data: dict[str, Any] = created.json()["data"]
    return data


@pytest.mark.parametrize(
    "raw_id",
    ["true", '"1"', "1.0", "1e0", "false", "null", "[1]"],
    ids=["true", "numeric string", "1.0", "1e0", "false", "null", "list"],
)
@pytest.mark.parametrize("op", ["complete", "delete", "set_priority"])
def test_bulk_ids_must_be_json_integers(
    client: TestClient, alice: Account, raw_id: str, op: str
) -> None:
    task = _task(client, alice)
    assert task["id"] == 1  # so `true`, "1" and 1.0 would all name it
    extra = ', "priority": "high"' if op == "set_priority" else ""
    body = f'{{"operations": [{{"op": "{op}", "id": {raw_id}{extra}}}]}}'
    response = client.post(
        "/api/tasks/bulk",
        content=body,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"].startswith("body.operations.0")
    assert client.get("/api/tasks/1", headers=alice.headers).json()["data"] == task


def test_bulk_integer_id_still_works(client: TestClient, alice: Account) -> None:
    task = _task(client, alice)
    response = client.post(
        "/api/tasks/bulk",
        json={"operations": [{"op": "complete", "id": task["id"]}]},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["results"][0]["task"]["completed"] is True


# Text a lax parser reads as the number 1 (or 50), and the contract does not.
NOT_PLAIN_DIGITS = ["0_1", "+1", "%201", "1%20", "1.0", "1e0", "%EF%BC%91", "%D9%A1", "0x1"]


@pytest.mark.parametrize("task_id", NOT_PLAIN_DIGITS)
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"title": "changed"}),
        ("PATCH", "", {"title": "changed"}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ],
)
def test_path_ids_must_be_plain_decimal_digits(
    client: TestClient,
    alice: Account,
    task_id: str,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    task = _task(client, alice)
    assert task["id"] == 1
    response = client.request(
        method, f"/api/tasks/{task_id}{suffix}", json=body, headers=alice.headers
    )
    assert response.status_code == 422, (method, task_id, response.status_code, response.text)
    assert response.json()["error"]["details"][0]["field"] == "path.task_id"
    assert client.get("/api/tasks/1", headers=alice.headers).json()["data"] == task


def test_plain_digits_with_leading_zeros_name_the_task(client: TestClient, alice: Account) -> None:
    task = _task(client, alice)
    assert client.get("/api/tasks/001", headers=alice.headers).json()["data"] == task


@pytest.mark.parametrize(
    "limit", ["5_0", "+50", "%2050", "50%20", "50.0", "5e1", "true", "%EF%BC%95%EF%BC%90"]
)
def test_limit_must_be_plain_decimal_digits(client: TestClient, alice: Account, limit: str) -> None:
    response = client.get(f"/api/tasks?limit={limit}", headers=alice.headers)
    assert response.status_code == 422, (limit, response.text)
    assert response.json()["error"]["details"][0]["field"] == "query.limit"


def test_plain_limit_still_works(client: TestClient, alice: Account) -> None:
    response = client.get("/api/tasks?limit=50", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["limit"] == 50
