"""`python -m backend docs`: `mkdocs serve` of the documentation site (mkdocs.yml, docs/).
MkDocs is a development tool, not the API's dependency: a runtime install gets one line saying
how to get it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.cli.common import Subcommands

# The repository: mkdocs.yml sits beside the package (an editable install, a clone).
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 8001  # beside the API's 8000


def cmd_docs(args: argparse.Namespace) -> int:
    config = ROOT / "mkdocs.yml"
    if not config.is_file():
        print(
            f"error: no mkdocs.yml in {ROOT}: the site is previewed from a clone", file=sys.stderr
        )
        return 1
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        print(
            "error: MkDocs is not installed; it comes with the test install: "
            "pip install --require-hashes --no-deps -r requirements-dev.lock",
            file=sys.stderr,
        )
        return 1
    command = [sys.executable, "-m", "mkdocs", "serve", "--config-file", str(config)]
    command += ["--dev-addr", f"{args.host}:{args.port}"]
    # Material's banner about MkDocs 2 says nothing about this site.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    print(f"documentation at http://{args.host}:{args.port}/ (Ctrl+C to stop)", file=sys.stderr)
    # MkDocs takes this process's place, so a signal that stops `docs` stops the server too
    # (as a child it outlived a SIGTERM sent to its parent).
    os.chdir(ROOT)
    os.execve(sys.executable, command, env)  # noqa: S606


def add_docs(sub: Subcommands) -> None:
    docs = sub.add_parser(
        "docs",
        help="preview the documentation site locally (mkdocs serve)",
        description="Serve the documentation site (docs/, mkdocs.yml) with live reload. "
        "Needs the test install (MkDocs and its Material theme are in requirements-dev.lock); "
        "`mkdocs build` writes the static site to site/.",
    )
    docs.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    docs.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    docs.set_defaults(func=cmd_docs)
