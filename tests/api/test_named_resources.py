"""The rules of every private resource of named, limited rows (`named_rows_router`,
backend/api/named_routes.py), checked for each one found: CRUD, a name unique per user ignoring
case (409, the documented body), the limit (422, the documented body), another user's row a
404 like a missing one, and a refused write changing nothing. A new such resource is tested
here without a line; its own test file checks only what is its own (its fields, its tool)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

import backend.api.routes  # noqa: F401 (builds every router: fills NAMED_RESOURCES)
from backend.api.named_routes import NAMED_RESOURCES, NamedResource
from tests.conftest import Account


def _sample(resource: NamedResource) -> dict[str, Any]:
    sample: dict[str, Any] = resource.create.model_json_schema()["examples"][0]
    return sample


def _create(client: TestClient, who: Account, resource: NamedResource, **changes: Any) -> Any:
    body = {**_sample(resource), **changes}
    answer = client.post(resource.prefix, json=body, headers=who.headers)
    assert answer.status_code == 201, answer.text
    row = answer.json()["data"]
    assert answer.headers["Location"] == f"{resource.prefix}/{row['id']}"
    return row


@pytest.fixture(params=NAMED_RESOURCES, ids=lambda resource: resource.prefix)
def resource(request: pytest.FixtureRequest) -> NamedResource:
    found: NamedResource = request.param
    return found


def test_create_read_rename_and_delete(
    client: TestClient, alice: Account, resource: NamedResource
) -> None:
    row = _create(client, alice, resource, name="  Second ")
    assert row["name"] == "Second"
    path = f"{resource.prefix}/{row['id']}"
    assert client.get(path, headers=alice.headers).json()["data"] == row
    _create(client, alice, resource, name="First")
    listed = client.get(resource.prefix, headers=alice.headers).json()
    assert [r["name"] for r in listed["data"]] == ["First", "Second"]
    assert listed["meta"] == {"count": 2}
    renamed = client.patch(path, json={"name": "SECOND"}, headers=alice.headers)  # its own name
    assert renamed.json()["data"]["name"] == "SECOND", renamed.text
    assert client.delete(path, headers=alice.headers).status_code == 204
    gone = client.get(path, headers=alice.headers)
    assert (gone.status_code, gone.json()) == (404, resource.not_found.example()["value"])


def test_names_are_unique_per_user_ignoring_case(
    client: TestClient, alice: Account, bob: Account, resource: NamedResource
) -> None:
    _create(client, alice, resource)
    again = client.post(resource.prefix, json=_sample(resource), headers=alice.headers)
    assert (again.status_code, again.json()) == (409, resource.taken.example()["value"])
    other = _create(client, alice, resource, name="Other")
    upper = _sample(resource)["name"].upper()
    path = f"{resource.prefix}/{other['id']}"
    renamed = client.patch(path, json={"name": upper}, headers=alice.headers)
    assert renamed.status_code == 409, renamed.text
    assert client.get(path, headers=alice.headers).json()["data"]["name"] == "Other"
    _create(client, bob, resource)  # another user's names are not Alice's


def test_the_limit(
    client: TestClient, alice: Account, setup_engine: Engine, resource: NamedResource
) -> None:
    first = _create(client, alice, resource, name="n1")
    table = resource.rows.table
    copied = [c.name for c in table.c if c.name not in {"id", "name", "name_key"}]
    columns = ", ".join(copied)
    with setup_engine.begin() as conn:  # copies of the first row, each named apart
        conn.execute(
            text(
                f"INSERT INTO {table.name} (name, name_key, {columns}) "
                f"SELECT 'n' || n, 'n' || n, {columns} FROM {table.name}, "
                "generate_series(2, :limit) AS n WHERE id = :id"
            ),
            {"limit": resource.rows.limit, "id": first["id"]},
        )
    answer = client.post(resource.prefix, json=_sample(resource), headers=alice.headers)
    assert (answer.status_code, answer.json()) == (422, resource.full.example()["value"])
    listed = client.get(resource.prefix, headers=alice.headers).json()
    assert listed["meta"] == {"count": resource.rows.limit}


def test_another_users_row_is_a_missing_one(
    client: TestClient, alice: Account, bob: Account, resource: NamedResource
) -> None:
    row = _create(client, alice, resource)
    path = f"{resource.prefix}/{row['id']}"
    missing = resource.not_found.example()["value"]
    for method, body in (("GET", None), ("PATCH", {"name": "bob's"}), ("DELETE", None)):
        answer = client.request(method, path, json=body, headers=bob.headers)
        assert (answer.status_code, answer.json()) == (404, missing), method
    assert client.get(path, headers=alice.headers).json()["data"] == row
    assert client.get(resource.prefix, headers=bob.headers).json()["data"] == []


def test_bad_input_changes_nothing(
    client: TestClient, alice: Account, resource: NamedResource
) -> None:
    row = _create(client, alice, resource)
    path = f"{resource.prefix}/{row['id']}"
    for body in ({"name": None}, {"name": ""}, {"name": "a\nb"}, {"unknown": 1}):
        answer = client.patch(path, json=body, headers=alice.headers)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.get(path, headers=alice.headers).json()["data"] == row
