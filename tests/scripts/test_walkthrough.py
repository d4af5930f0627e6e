"""scripts/walkthrough.sh (docs/get-started/curl.md), run against `python -m backend serve`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "walkthrough.sh"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_walkthrough_succeeds_against_a_live_server(live_server: str) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "BASE_URL": live_server},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "walkthrough ok" in result.stdout
    for step in (
        "POST   /api/auth/register",
        "PATCH  /api/tasks/",
        "DELETE /api/tasks/",
        "POST   /api/lists ",
        "/move ",
        "/subtree ",
        "DELETE /api/lists/",
    ):
        assert step in result.stdout


def test_walkthrough_fails_loudly_on_a_bad_token(live_server: str) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "BASE_URL": live_server, "TOKEN": "forged"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "expected 200, got 401" in result.stderr


def test_cli_token_works_against_the_live_server(live_server: str) -> None:
    minted = subprocess.run(
        [sys.executable, "-m", "backend", "token", "cli-user"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert minted.returncode == 0, minted.stderr
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "BASE_URL": live_server, "TOKEN": minted.stdout.strip()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signed in as cli-user" in result.stdout
