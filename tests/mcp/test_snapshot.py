"""The committed tool list (specs/mcp-tools.json) is what the server lists, like openapi.json
for the REST API: a change to a tool's name, schema or annotations fails here until the
snapshot is regenerated and reviewed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.cli import main
from tests.conftest import ROOT, Account
from tests.mcp.conftest import post_rpc

SNAPSHOT = ROOT / "specs" / "mcp-tools.json"
REGENERATE = "python -m backend mcp-tools > specs/mcp-tools.json"


def test_served_tool_list_matches_the_committed_snapshot(
    client: TestClient, alice: Account
) -> None:
    served = post_rpc(client, "/mcp", "tools/list", None, alice.headers).json()["result"]
    committed = json.loads(SNAPSHOT.read_text())
    assert served["tools"] == committed["tools"], (
        f"the tools changed: regenerate with `{REGENERATE}`"
    )


def test_the_snapshot_is_the_commands_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp-tools"]) == 0
    assert capsys.readouterr().out == Path(SNAPSHOT).read_text(), f"regenerate: `{REGENERATE}`"
