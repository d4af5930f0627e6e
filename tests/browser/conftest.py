"""Debian's Chromium for the browser tests: installed by the test setup when absent.

No browser build is ever downloaded (no `playwright install`): Playwright's client drives the
distribution's `/usr/bin/chromium`. CI runs as root, so `apt-get` can install it; where that is
impossible the browser tests are skipped with the reason in the summary (`-ra`), except under
CI=true, where that fails the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail_in_ci

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Offline-safe flags: without the background-networking ones Chromium keeps dialling out
# (component updates, sync, QUIC probes) on a machine with no internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _install_chromium() -> str | None:
    """Install Debian's chromium; return why it could not be installed, or None."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    if os.geteuid() != 0:
        return "not root, so apt-get cannot install it (run: sudo apt-get install -y chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(command)}` timed out"
        if result.returncode != 0:
            return f"`{' '.join(command)}` failed: {result.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not DEBIAN_CHROMIUM.exists():
        problem = _install_chromium()
        if problem or not DEBIAN_CHROMIUM.exists():
            skip_or_fail_in_ci(
                f"BROWSER TEST NOT RUN: Debian chromium is missing and {problem or 'was not found'}"
            )
    return str(DEBIAN_CHROMIUM)


@pytest.fixture
def browser_page(chromium_path: str, tmp_path: Path) -> Iterator[object]:
    """A Playwright page in a fresh Chromium profile that may only reach loopback."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
