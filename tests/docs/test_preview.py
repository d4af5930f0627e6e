"""`python -m backend docs`: the site previewed locally (mkdocs serve), and the one line a
runtime install (no MkDocs) gets instead."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import httpx
import pytest

from backend.cli import docs_site
from tests.conftest import ROOT, _free_port, stop_process


def test_docs_command_serves_the_site() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "docs", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                home = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                if home.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"docs did not start:\n{process.communicate()[0]}")
            time.sleep(0.3)
        assert "<title>Task API</title>" in home.text
        guide = httpx.get(f"http://127.0.0.1:{port}/guides/tasks/", timeout=5)
        assert guide.status_code == 200 and "Idempotency-Key" in guide.text
    finally:
        stop_process(process)


def test_docs_command_without_mkdocs_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(docs_site.importlib.util, "find_spec", lambda name: None)
    args = argparse.Namespace(host="127.0.0.1", port=_free_port())
    assert docs_site.cmd_docs(args) == 1
    install = "pip install --require-hashes --no-deps -r requirements-dev.lock"
    assert install in capsys.readouterr().err
