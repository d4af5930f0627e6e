"""The text rule (backend/models/text.py) holds for the MCP tools as for REST: the tools
validate with the REST field types, so the same look-alike text gets the same refusal, and
NFC/NFD forms are one tag and one filter value."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.test_text_rule import LOOK_ALIKES, NFC_E, NFD_E
from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc, rpc_error, task_rows


def _call(client: TestClient, alice: Account, name: str, arguments: dict[str, Any]) -> Any:
    return call_tool_rpc(client, "/mcp", alice.token, name, arguments)


def _first_detail(error: dict[str, Any]) -> tuple[str, str]:
    assert error["code"] == "VALIDATION_ERROR", error
    detail = error["details"][0]
    named = [part for part in detail["field"].split(".") if not part.startswith("function-")]
    return ".".join(named), detail["type"]


@pytest.mark.parametrize("label", list(LOOK_ALIKES))
def test_look_alike_text_is_refused_by_add_and_update(
    client: TestClient, alice: Account, db_engine: Engine, label: str
) -> None:
    value, error_type = LOOK_ALIKES[label]
    created = _call(client, alice, "add_task", {"title": "keep", "tags": ["keep"]})
    assert created["isError"] is False, created
    task_id = created["structuredContent"]["task_id"]
    before = task_rows(db_engine)
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("add_task", {"title": value}, "title"),
        ("add_task", {"title": "t", "tags": ["ok", value]}, "tags.1"),
        ("update_task", {"task_id": task_id, "title": value}, "title"),
        ("update_task", {"task_id": task_id, "tags": [value]}, "tags.0"),
    ]
    for name, arguments, field in calls:
        error = rpc_error(_call(client, alice, name, arguments))
        assert _first_detail(error) == (field, error_type), (name, arguments, error)
    description = "ring\u0007bell" if error_type == "text_invisible" else value
    if "\n" not in description and "\t" not in description and "\u2028" not in description:
        for name, arguments in (
            ("add_task", {"title": "t", "description": description}),
            ("update_task", {"task_id": task_id, "description": description}),
        ):
            error = rpc_error(_call(client, alice, name, arguments))
            assert _first_detail(error) == ("description", "text_character"), error
    assert task_rows(db_engine) == before


def test_nfc_and_nfd_are_one_tag_and_one_filter_value(client: TestClient, alice: Account) -> None:
    added = _call(
        client, alice, "add_task", {"title": f"r{NFD_E}sum{NFD_E}", "tags": [NFD_E, NFC_E]}
    )
    assert added["isError"] is False, added
    task_id = added["structuredContent"]["task_id"]
    assert added["structuredContent"]["title"] == f"r{NFC_E}sum{NFC_E}"
    updated = _call(client, alice, "update_task", {"task_id": task_id, "tags": [NFD_E, "x"]})
    assert updated["isError"] is False, updated
    for query in (NFC_E, NFD_E):
        for arguments in ({"tag": query}, {"search": f"{query}sum"}):
            listed = _call(client, alice, "list_tasks", arguments)
            tasks = listed["structuredContent"]["tasks"]
            assert [(t["id"], t["tags"]) for t in tasks] == [(task_id, [NFC_E, "x"])], arguments
