"""The ChatKit example (examples/chatkit): a React page with `@openai/chatkit-react` on the
API's `POST /api/chatkit`, type-checked against the real packages (`npm ci`, `tsc --noEmit`).
`src/type-checks.ts` holds lines that must not compile (a ChatKit config without its
`domainKey`, ours without a token), so what the README says of the packages stays true.

The ChatKit component itself loads from OpenAI's CDN at run time and cannot run here; the
protocol it speaks is tested over HTTP in tests/chat/test_chatkit*.py.
"""

from __future__ import annotations

import shutil
import subprocess

from tests.conftest import ROOT, skip_or_fail_in_ci

EXAMPLE = ROOT / "examples" / "chatkit"


def npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args], cwd=EXAMPLE, capture_output=True, text=True, timeout=timeout
    )


def test_the_chatkit_page_type_checks_against_the_packages() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        skip_or_fail_in_ci("CHATKIT EXAMPLE NOT CHECKED: node and npm are not installed")
    installed = npm("ci", "--no-audit", "--no-fund")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    checked = npm("run", "typecheck")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The versions the README and specs/chat.md speak of.
    lock = (EXAMPLE / "package-lock.json").read_text()
    assert '"node_modules/@openai/chatkit-react": {\n      "version": "1.6.1"' in lock
    assert '"node_modules/@openai/chatkit": {\n      "version": "1.9.0"' in lock
