"""Debian's Chromium for the browser tests: installed by the test setup when absent.

No browser build is ever downloaded (no `playwright install`): Playwright's client drives the
distribution's `/usr/bin/chromium`. CI runs as root, so `apt-get` can install it; where that is
impossible the browser tests are skipped with the reason in the summary (`-ra`), except under
CI=true, where that fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_debian_package

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


@pytest.fixture(scope="session")
def chromium_path() -> str:
    require_debian_package("chromium", DEBIAN_CHROMIUM.exists, "BROWSER TEST NOT RUN")
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
