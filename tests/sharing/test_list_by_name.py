"""An agent names a list by its name (MCP `list`): that is one of the caller's own lists
(specs/mcp.md, "Lists by name"), never a list shared with it. Found by an independent
role-matrix run (issue 49): `rename_list` by name renamed every list of that name the caller
may rename, its own and the owner's it is admin of, in one call that reported one."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc
from tests.sharing.helpers import add_member, make_list


def _name(client: TestClient, account: Account, list_id: int) -> str:
    answer = client.get(f"/api/lists/{list_id}", headers=account.headers)
    assert answer.status_code == 200, answer.text
    name: str = answer.json()["data"]["name"]
    return name


def _error(result: dict[str, Any]) -> dict[str, Any]:
    assert result["isError"] is True, result
    error: dict[str, Any] = json.loads(result["content"][0]["text"])["error"]
    return error


def test_rename_by_name_renames_only_the_callers_own_list(
    client: TestClient, db_engine: Engine, alice: Account, bob: Account
) -> None:
    team = make_list(client, alice, "Team")
    add_member(db_engine, alice, team, bob, "admin")
    own = make_list(client, bob, "team")  # the same name, ignoring case

    result = call_tool_rpc(
        client, "/mcp", bob.token, "rename_list", {"list": "Team", "name": "Mine"}
    )

    assert result["isError"] is False, result
    assert result["structuredContent"]["list_id"] == own
    assert _name(client, bob, own) == "Mine"
    assert _name(client, alice, team) == "Team"


def test_a_shared_lists_name_is_not_one_of_the_callers(
    client: TestClient, db_engine: Engine, alice: Account, bob: Account
) -> None:
    """An admin of alice's list, with no list of its own by that name: the name is unknown,
    the error names bob's lists, and alice's list keeps its name (by id it may rename it)."""
    team = make_list(client, alice, "Team")
    add_member(db_engine, alice, team, bob, "admin")
    make_list(client, bob, "Home")

    result = call_tool_rpc(client, "/mcp", bob.token, "rename_list", {"list": "Team", "name": "X"})

    error = _error(result)
    assert error["code"] == "NOT_FOUND", error
    assert error["message"] == 'No list named "Team". Your lists: "Home".'
    assert _name(client, alice, team) == "Team"
    by_id = call_tool_rpc(client, "/mcp", bob.token, "rename_list", {"list_id": team, "name": "X"})
    assert by_id["isError"] is False, by_id
    assert _name(client, alice, team) == "X"
