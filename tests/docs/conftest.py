"""The documentation site built once per session (`mkdocs build --strict`), for the tests that
read it (links, anchors) and the browser test that serves it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Material prints a banner about MkDocs 2 on every build; it says nothing about our site.
QUIET = {"NO_MKDOCS_2_WARNING": "1"}


def build_site(root: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the project at `root` into `site_dir`."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=root,
        env={**os.environ, **QUIET},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = build_site(ROOT, site)
    assert result.returncode == 0, result.stdout + result.stderr
    return site


# The browser test drives Debian's Chromium with the Swagger UI tests' fixtures.
from tests.browser.conftest import browser_page, chromium_path  # noqa: E402, F401
