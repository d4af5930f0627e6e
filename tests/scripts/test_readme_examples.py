"""The README's curl walkthrough, its ETag example and its recurrence example, run as written
(bash, in order, in one shell) against a live server: each step must use the ids the API gave
back, not a hard-coded one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

MARKER = "<!-- run by tests/scripts/test_readme_examples.py -->"


def bodies(out: str) -> list[Any]:
    """Every `{"data": ...}` body in the output (curl -s prints them back to back)."""
    decoder = json.JSONDecoder()
    found = []
    for start in (m.start() for m in re.finditer(re.escape('{"data":'), out)):
        try:
            found.append(decoder.raw_decode(out, start)[0]["data"])
        except ValueError:
            continue
    return found


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(re.escape(MARKER) + r"\n```\n(.*?)```", text, re.DOTALL)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_examples_run_against_a_live_server(live_server: str, tmp_path: Path) -> None:
    walkthrough, recurrence, etag = readme_examples()
    assert "ID=1" not in walkthrough + etag + recurrence
    script = walkthrough.replace("BASE_URL=http://127.0.0.1:8000", f"BASE_URL={live_server}")
    # `python` as the README spells it: the interpreter running the tests (a venv's python).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + "\n" + etag + "\n" + recurrence],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    created = re.search(r"^created task (\d+)$", out, re.MULTILINE)
    assert created, out
    task_id = created.group(1)
    assert f'"id":{task_id},' in out  # toggled and updated that task
    assert '"completed":true' in out and '"description":"2 litres"' in out
    assert "HTTP/1.1 204 " in out, out  # deleted it (curl -si: no newline before it)
    # Lists, subtasks and manual order: Bread moved right after Milk, which has one subtask;
    # the subtree is Milk then Oat milk under it; deleting the list is the second 204.
    pages = [b for b in bodies(out) if isinstance(b, list)]
    titled = {tuple(t["title"] for t in page): page for page in pages}
    milk, bread = titled[("Milk", "Bread")]
    assert milk["list_id"] == bread["list_id"] is not None
    assert (milk["subtask_count"], bread["subtask_count"]) == (1, 0)
    assert milk["position"] < bread["position"]
    parent, oat = titled[("Milk", "Oat milk")]
    assert parent["id"] == oat["parent_id"] == milk["id"]
    assert oat["list_id"] == milk["list_id"]
    assert out.count("HTTP/1.1 204 ") == 2, out
    # The ETag example: created another task and changed it under If-Match.
    patched = out.split("HTTP/1.1 204", 1)[1]
    assert "HTTP/1.1 200 " in patched, out
    assert '"priority":"high"' in patched
    # The recurrence example: the preview across the change to summer time, then the next
    # occurrence created by the completion, naming the completed one.
    assert (
        '"occurrences":["2030-04-01T07:00:00Z","2030-04-04T07:00:00Z","2030-04-08T07:00:00Z"]'
        in out
    )
    recurring = re.search(r'"task_id":(\d+),"recurrence":"FREQ=WEEKLY;BYDAY=MO,TH"', out)
    assert recurring, out
    assert '"due_date":"2030-04-01T07:00:00Z"' in out
    assert f'"previous_task_id":{recurring.group(1)}' in out
