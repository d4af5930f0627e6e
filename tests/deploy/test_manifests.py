"""The Kubernetes manifests (deploy/): every overlay rendered by `kubectl kustomize`, every
object validated offline against the Kubernetes schemas of the versions our users run
(`kubernetes-validate`, strict: an unknown field is an error) and the Dapr components against
Dapr's Component CRD (vendored beside this file, its source and version in its header), then
the properties deploy/README.md promises. The negative tests break a rendered overlay the
ways a careless edit would and show the checks catch each one."""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from backend.cli.serve import GRACEFUL_SHUTDOWN_SECONDS
from backend.config import Settings
from backend.events.sinks import configured_sinks
from backend.events.worker import longest_batch_seconds
from tests.conftest import ROOT, skip_or_fail_in_ci

DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(path.name for path in (DEPLOY / "overlays").iterdir() if path.is_dir())
# The minor versions DigitalOcean, AKS, GKE and OKE offer (standard and extended support)
# and Minikube's default, as of this writing: validated against each one's schema.
KUBERNETES_VERSIONS = ("1.32.0", "1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0")
DAPR_CRD = Path(__file__).with_name("dapr-components-crd.yaml")
PAGE = DEPLOY / "README.md"

Obj = dict[str, Any]
# The three components the teams' specification names, by name and type.
COMPONENTS = {
    "kafka-pubsub": "pubsub.kafka",
    "statestore": "state.postgresql",
    "kubernetes-secrets": "secretstores.kubernetes",
}
TOPICS = {
    "DAPR_TASK_EVENTS_TOPIC": "task-events",
    "DAPR_REMINDERS_TOPIC": "reminders",
    "DAPR_TASK_UPDATES_TOPIC": "task-updates",
}
# Settings whose values are secrets: every SecretStr field of Settings (its env var name).
SECRET_SETTINGS = frozenset(
    name.upper()
    for name, info in Settings.model_fields.items()
    if SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ()))
)
# A name that says secret, and a value that carries one (user:password@ in a URL).
SECRET_NAME = re.compile(r"secret|password|token|credential|private|connection_?string", re.I)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
OUR_COMPONENTS = ("api", "worker", "migrate")


# --- rendering ---------------------------------------------------------------------------


@functools.cache
def _rendered(overlay: str) -> tuple[Obj, ...]:
    result = subprocess.run(
        ["kubectl", "kustomize", f"deploy/overlays/{overlay}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return tuple(obj for obj in yaml.safe_load_all(result.stdout) if obj)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    if shutil.which("kubectl") is None:
        skip_or_fail_in_ci(
            "MANIFEST TEST NOT RUN: kubectl (with its built-in Kustomize) is not installed; "
            "see https://kubernetes.io/docs/tasks/tools/"
        )
    name: str = request.param
    return name


@pytest.fixture
def objects(overlay: str) -> list[Obj]:
    """A fresh copy each time: the negative tests mutate it."""
    return copy.deepcopy(list(_rendered(overlay)))


# --- the checks (each returns what is wrong; empty when nothing is) ------------------------


def is_dapr_component(obj: Obj) -> bool:
    return bool(obj["apiVersion"] == "dapr.io/v1alpha1" and obj["kind"] == "Component")


def kubernetes_schema_errors(objects: list[Obj], version: str) -> list[str]:
    errors = []
    for obj in objects:
        if is_dapr_component(obj):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{obj['apiVersion']} {obj['kind']}: no schema in Kubernetes {version}")
    return errors


@functools.cache
def dapr_component_schema() -> Obj:
    [crd] = [doc for doc in yaml.safe_load_all(DAPR_CRD.read_text()) if doc]
    assert crd["metadata"]["name"] == "components.dapr.io"
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: Obj = served["schema"]["openAPIV3Schema"]
    return schema


def _pruned(value: Any, schema: Obj, where: str) -> Iterator[str]:
    """Fields the API server would silently drop: not in a structural schema that does not
    preserve unknown fields (jsonschema allows them, Kubernetes prunes them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                if not (where == "" and key in ("apiVersion", "kind", "metadata")):
                    yield f"{where}/{key}: unknown field (would be pruned)"
                continue
            yield from _pruned(item, schema["properties"][key], f"{where}/{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _pruned(item, schema["items"], f"{where}/{index}")


def dapr_schema_errors(objects: list[Obj]) -> list[str]:
    schema = dapr_component_schema()
    validator = jsonschema.Draft7Validator(schema)
    errors = []
    for obj in filter(is_dapr_component, objects):
        name = obj["metadata"]["name"]
        for error in validator.iter_errors(obj):
            where = "/".join(str(p) for p in error.path)
            errors.append(f"Component/{name} {where}: {error.message}")
        errors += [f"Component/{name} {p}" for p in _pruned(obj, schema, "")]
    return errors


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    [obj] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def pod_specs(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":  # the chart's `helm test` pod
            yield f"Pod/{obj['metadata']['name']}", obj["spec"]


def ours(objects: list[Obj]) -> dict[str, Obj]:
    """Our workloads by component (api, worker, migrate): the pod template's metadata+spec."""
    found = {}
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        if obj["kind"] in ("Deployment", "Job") and labels.get("app.kubernetes.io/name") == (
            "task-api"
        ):
            found[labels["app.kubernetes.io/component"]] = obj["spec"]["template"]
    return found


def settings_map(objects: list[Obj]) -> dict[str, str]:
    [config] = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("task-api-config")
    ]
    data: dict[str, str] = config["data"]
    return data


def security_problems(objects: list[Obj]) -> list[str]:
    problems = []
    for where, spec in pod_specs(objects):
        pod = spec.get("securityContext", {})
        if pod.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: no seccomp profile")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts a service account token")
        for container in spec["containers"] + spec.get("initContainers", []):
            own = container.get("securityContext", {})
            name = f"{where} {container['name']}"
            if not (own.get("runAsNonRoot") or pod.get("runAsNonRoot")):
                problems.append(f"{name}: may run as root")
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: privilege escalation allowed")
            if own.get("privileged"):
                problems.append(f"{name}: privileged")
            if own.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{name}: capabilities not all dropped")
            if "resources" not in container or not all(
                container["resources"].get(k, {}).get(r)
                for k in ("requests", "limits")
                for r in ("cpu", "memory")
            ):
                problems.append(f"{name}: no CPU and memory requests and limits")
    for component, template in ours(objects).items():
        spec = template["spec"]
        for container in spec["containers"] + spec.get("initContainers", []):
            if container.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
                problems.append(f"{component} {container['name']}: root file system writable")
    return problems


def secret_problems(objects: list[Obj]) -> list[str]:
    problems = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Secret":
            problems.append(f"{name}: a Secret in the manifests (create it, deploy/README.md)")
        if obj["kind"] == "ConfigMap":
            for key, value in obj.get("data", {}).items():
                if key in SECRET_SETTINGS or SECRET_NAME.search(key):
                    problems.append(f"{name}: {key} is a secret in a ConfigMap")
                if CREDENTIALS_IN_URL.search(str(value)):
                    problems.append(f"{name}: {key} carries credentials")
        if is_dapr_component(obj):
            for item in obj["spec"]["metadata"]:
                if SECRET_NAME.search(item["name"]) and "value" in item:
                    problems.append(f"{name}: {item['name']} in clear (use secretKeyRef)")
                if CREDENTIALS_IN_URL.search(str(item.get("value", ""))):
                    problems.append(f"{name}: {item['name']} carries credentials")
    for where, spec in pod_specs(objects):
        for container in spec["containers"] + spec.get("initContainers", []):
            for env in container.get("env", []):
                secretish = env["name"] in SECRET_SETTINGS or SECRET_NAME.search(env["name"])
                if secretish and "secretKeyRef" not in env.get("valueFrom", {}):
                    problems.append(f"{where}: {env['name']} not from a Secret")
                if CREDENTIALS_IN_URL.search(str(env.get("value", ""))):
                    problems.append(f"{where}: {env['name']} carries credentials")
    return problems


def _probe(container: Obj, kind: str) -> tuple[str | None, str | int | None]:
    http = container.get(kind, {}).get("httpGet", {})
    return http.get("path"), http.get("port")


def workload_problems(objects: list[Obj]) -> list[str]:
    problems = []
    workloads = ours(objects)
    if set(workloads) != set(OUR_COMPONENTS):
        return [f"workloads: {sorted(workloads)}, expected {list(OUR_COMPONENTS)}"]
    images = {
        f"{component} {c['name']}": c["image"]
        for component, template in workloads.items()
        for c in template["spec"]["containers"] + template["spec"].get("initContainers", [])
    }
    if len(set(images.values())) != 1:
        problems.append(f"not one image: {images}")
    commands = {
        c: template["spec"]["containers"][0].get("command") for c, template in workloads.items()
    }
    for component, command in {
        "api": ["python", "-m", "backend", "serve"],
        "worker": ["python", "-m", "backend", "worker"],
        "migrate": ["python", "-m", "backend", "migrate", "up"],
    }.items():
        if commands[component] != command:
            problems.append(f"{component}: runs {commands[component]}, not {command}")

    api_spec = workloads["api"]["spec"]
    [api] = api_spec["containers"]
    if _probe(api, "livenessProbe") != ("/health", "http"):
        problems.append("api: liveness is not /health")
    if _probe(api, "readinessProbe") != ("/health/ready", "http"):
        problems.append("api: readiness is not /health/ready")
    if "startupProbe" not in api:
        problems.append("api: no startup probe")
    port = {p["name"]: p["containerPort"] for p in api.get("ports", [])}.get("http")
    if str(port) != settings_map(objects).get("PORT"):
        problems.append(f"api: container port {port} is not PORT")
    # serve drains GRACEFUL_SHUTDOWN_SECONDS after SIGTERM, which comes after preStop.
    pre_stop = api.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = api_spec.get("terminationGracePeriodSeconds", 30)
    if not pre_stop or grace <= pre_stop + GRACEFUL_SHUTDOWN_SECONDS:
        problems.append(
            f"api: {grace} s of grace is not above a preStop wait ({pre_stop} s) plus "
            f"serve's drain ({GRACEFUL_SHUTDOWN_SECONDS} s)"
        )

    worker_spec = workloads["worker"]["spec"]
    [worker] = worker_spec["containers"]
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind not in worker:
            problems.append(f"worker: no {kind}")
    if _probe(worker, "readinessProbe")[0] != "/health/ready":
        problems.append("worker: readiness is not /health/ready")
    # The worker's batch deadline with these settings and the sinks they configure.
    settings = overlay_settings(objects)
    batch = longest_batch_seconds(settings, len(configured_sinks(settings)))
    if worker_spec.get("terminationGracePeriodSeconds", 30) <= batch:
        problems.append(f"worker: the grace period does not cover a batch ({batch:.0f} s)")
    annotations = workloads["worker"]["metadata"].get("annotations", {})
    block = annotations.get("dapr.io/block-shutdown-duration", "0s")
    if int(block.rstrip("s")) <= batch:
        problems.append(f"worker: the sidecar stops before a batch ends ({block})")
    # serve and worker exit while a migration is pending: each waits for `check` to pass.
    for component in ("api", "worker"):
        waits = [
            c
            for c in workloads[component]["spec"].get("initContainers", [])
            if "python -m backend check" in " ".join(c.get("command", []))
        ]
        if not waits:
            problems.append(f"{component}: does not wait for the migrations")
    # REPLICAS is the API's most replicas (the HPA's maximum): what `check` reads to warn of
    # attachments on the filesystem with several (issue 63).
    most = max(
        [find(objects, "Deployment", "task-api")["spec"].get("replicas", 1)]
        + [o["spec"]["maxReplicas"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    )
    if settings_map(objects).get("REPLICAS") != str(most):
        problems.append(f"REPLICAS is {settings_map(objects).get('REPLICAS')}, the API runs {most}")
    if workloads["migrate"]["spec"].get("restartPolicy") not in ("OnFailure", "Never"):
        problems.append("migrate: restartPolicy")
    return problems


def overlay_settings(objects: list[Obj]) -> Settings:
    """The ConfigMap read as Settings (it must be valid ones), with stand-in secrets."""
    values: dict[str, Any] = {key.lower(): value for key, value in settings_map(objects).items()}
    values |= {"database_url": "postgresql://u@db/x", "jwt_secret": "k" * 48}
    return Settings(_env_file=None, **values)


def dapr_problems(objects: list[Obj]) -> list[str]:
    problems = []
    components = {o["metadata"]["name"]: o for o in objects if is_dapr_component(o)}
    types = {name: c["spec"]["type"] for name, c in components.items()}
    if types != COMPONENTS:
        problems.append(f"Dapr components {types}, expected {COMPONENTS}")
    settings = settings_map(objects)
    if settings.get("DAPR_PUBSUB_NAME") != "kafka-pubsub":
        problems.append(f"DAPR_PUBSUB_NAME is {settings.get('DAPR_PUBSUB_NAME')}")
    for key, topic in TOPICS.items():
        if settings.get(key) != topic:
            problems.append(f"{key} is {settings.get(key)}, not {topic}")
    worker = ours(objects).get("worker")
    if worker is None or "kafka-pubsub" not in components:
        return problems
    annotations = worker["metadata"].get("annotations", {})
    app_id = annotations.get("dapr.io/app-id")
    if annotations.get("dapr.io/enabled") != "true" or not app_id:
        problems.append("worker: no Dapr sidecar (dapr.io/enabled, dapr.io/app-id)")
    token_secret = annotations.get("dapr.io/api-token-secret")
    [container] = worker["spec"]["containers"]
    sent = {e["name"]: e.get("valueFrom", {}) for e in container.get("env", [])}
    if sent.get("DAPR_API_TOKEN", {}).get("secretKeyRef") != {"name": token_secret, "key": "token"}:
        problems.append("worker: DAPR_API_TOKEN is not the sidecar's api-token-secret")
    if not str(settings.get("DAPR_HTTP_ENDPOINT", "")).startswith("http://127.0.0.1:"):
        problems.append("DAPR_HTTP_ENDPOINT is not the sidecar")
    pubsub = components["kafka-pubsub"]
    if app_id not in pubsub.get("scopes", []):
        problems.append(f"kafka-pubsub is not scoped to {app_id}")
    metadata = {m["name"]: m for m in pubsub["spec"]["metadata"]}
    brokers = metadata.get("brokers", {}).get("value", "")
    if not re.fullmatch(r"[A-Za-z0-9.-]+:\d+(,[A-Za-z0-9.-]+:\d+)*", brokers) or (
        "set-by-the-overlay" in brokers
    ):
        problems.append(f"kafka-pubsub: brokers {brokers!r} not set by the overlay")
    published = metadata.get("publishingScopes", {}).get("value", "")
    wanted = {settings.get(key) for key in (*TOPICS, "DAPR_LIST_EVENTS_TOPIC")}
    if published.split("=", 1)[0] != app_id or set(published.split("=", 1)[-1].split(",")) != (
        wanted
    ):
        problems.append(f"kafka-pubsub publishingScopes {published!r}, not {app_id}={wanted}")
    for component in components.values():
        refers = any("secretKeyRef" in m for m in component["spec"]["metadata"])
        store = component.get("auth", {}).get("secretStore")
        if refers and store != "kubernetes-secrets":
            problems.append(f"{component['metadata']['name']}: secretKeyRef without the store")
    return problems


def all_problems(objects: list[Obj]) -> list[str]:
    return (
        security_problems(objects)
        + secret_problems(objects)
        + workload_problems(objects)
        + dapr_problems(objects)
        + dapr_schema_errors(objects)
    )


# --- the overlays as they are --------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_the_kubernetes_versions_our_users_run(
    objects: list[Obj], version: str
) -> None:
    assert kubernetes_schema_errors(objects, version) == []


def test_the_dapr_components_match_daprs_crd(objects: list[Obj]) -> None:
    assert sum(map(is_dapr_component, objects)) == len(COMPONENTS)
    assert dapr_schema_errors(objects) == []


def test_the_workloads_are_what_the_page_promises(objects: list[Obj]) -> None:
    assert security_problems(objects) == []
    assert secret_problems(objects) == []
    assert workload_problems(objects) == []
    assert dapr_problems(objects) == []


def test_overlay_specifics(overlay: str, objects: list[Obj]) -> None:
    kinds = {o["kind"] for o in objects}
    replicas = find(objects, "Deployment", "task-api")["spec"]["replicas"]
    if overlay == "local":
        assert {"StatefulSet"} <= kinds and replicas == 1
        assert {o["metadata"]["name"] for o in objects if o["kind"] == "StatefulSet"} == {
            "postgres",
            "kafka",
        }
    else:
        assert {"Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
        assert "StatefulSet" not in kinds and replicas >= 2
        ingress = find(objects, "Ingress", "task-api")["spec"]
        assert ingress["tls"][0]["secretName"] and ingress["tls"][0]["hosts"]
        hpa = find(objects, "HorizontalPodAutoscaler", "task-api")["spec"]
        assert hpa["scaleTargetRef"]["name"] == "task-api"
        assert hpa["minReplicas"] == replicas < hpa["maxReplicas"]
    assert all(
        o["metadata"].get("namespace") == "task-api" for o in objects if o["kind"] != "Namespace"
    )


# --- the page ------------------------------------------------------------------------------


def test_the_page_renders_exactly_these_overlays() -> None:
    page = PAGE.read_text()
    rendered = set(re.findall(r"kubectl kustomize (deploy/overlays/[a-z-]+)", page))
    assert rendered == {f"deploy/overlays/{name}" for name in OVERLAYS}


def _page_block(marker: str) -> list[str]:
    """The lines of the code block after `<!-- marker -->` on the page, prompts included."""
    page = PAGE.read_text()
    after = page.split(f"<!-- {marker} -->", 1)[1]
    block = after.split("```", 2)[1]
    return [line.strip() for line in block.strip().splitlines()]


def _api_kind(obj: Obj) -> str:
    group = str(obj["apiVersion"]).rpartition("/")[0]
    return str(obj["kind"]).lower() + (f".{group}" if group else "")


def kind_counts(objects: list[Obj]) -> list[str]:
    """What `grep '^kind:' | sort | uniq -c` prints for the render, stripped."""
    kinds = sorted(o["kind"] for o in objects)
    return [f"{kinds.count(k)} kind: {k}" for k in sorted(set(kinds))]


def test_the_pages_outputs_are_the_render(overlay: str) -> None:
    """What the page says `grep '^kind:' | uniq -c` and `kubectl apply` print is what the
    render holds (the namespace exists by then: step 6 created it)."""
    objects = list(_rendered(overlay))
    [command, *counts] = _page_block(f"kinds: {overlay}")
    assert command == (
        f"$ kubectl kustomize deploy/overlays/{overlay} | grep '^kind:' | sort | uniq -c"
    )
    assert counts == kind_counts(objects)
    [command, *applied] = _page_block(f"apply: {overlay}")
    assert command == f"$ kubectl kustomize deploy/overlays/{overlay} | kubectl apply -f -"
    expected = []
    for obj in objects:
        name = re.sub(r"^(task-api-config)-[a-z0-9]{10}$", r"\1-<hash>", obj["metadata"]["name"])
        verb = "configured" if obj["kind"] == "Namespace" else "created"
        expected.append(f"{_api_kind(obj)}/{name} {verb}")
    assert applied == expected


def _created_secrets(text: str) -> set[tuple[str, str]]:
    """(secret, key) pairs made by the page's `kubectl ... create secret generic` commands."""
    created = set()
    joined = text.replace("\\\n", " ")  # continuation lines
    for command in re.findall(r"create secret generic [^\n]*", joined):
        name = command.split()[3]
        created |= {(name, key) for key in re.findall(r"--from-literal=([A-Za-z_]+)=", command)}
    return created


def _referenced_secrets(objects: list[Obj]) -> set[tuple[str, str]]:
    wanted = set()
    for _, spec in pod_specs(objects):
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                # An optional key (a feature's, e.g. VAPID_PRIVATE_KEY) need not be created.
                if ref and not ref.get("optional"):
                    wanted.add((ref["name"], ref["key"]))
    for obj in objects:
        if is_dapr_component(obj):
            wanted |= {
                (m["secretKeyRef"]["name"], m["secretKeyRef"]["key"])
                for m in obj["spec"]["metadata"]
                if "secretKeyRef" in m
            }
    for template in ours(objects).values():
        token = template["metadata"].get("annotations", {}).get("dapr.io/api-token-secret")
        if token:
            wanted.add((token, "token"))
    return wanted


def test_the_page_creates_every_secret_its_overlay_reads(overlay: str) -> None:
    """Part 1 of the page is the local overlay, part 2 the cloud one: each creates every
    Secret key that overlay's workloads and components read."""
    page = PAGE.read_text()
    parts = re.split(r"^## Part \d", page, flags=re.MULTILINE)
    [part] = [p for p in parts if f"kubectl kustomize deploy/overlays/{overlay}" in p]
    missing = _referenced_secrets(list(_rendered(overlay))) - _created_secrets(part)
    assert not missing, f"the page never creates {sorted(missing)}"


# --- deliberate breaks: each must be caught --------------------------------------------------


def _api(objects: list[Obj]) -> Obj:
    container: Obj = find(objects, "Deployment", "task-api")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _config(objects: list[Obj]) -> Obj:
    return next(o for o in objects if o["metadata"]["name"].startswith("task-api-config"))


def _component(objects: list[Obj], name: str) -> Obj:
    return find(objects, "Component", name)


def _no_readiness(objects: list[Obj]) -> None:
    del _api(objects)["readinessProbe"]


def _no_startup(objects: list[Obj]) -> None:
    del _api(objects)["startupProbe"]


def _secret_in_configmap(objects: list[Obj]) -> None:
    _config(objects)["data"]["JWT_SECRET"] = "x" * 48


def _url_with_password_in_configmap(objects: list[Obj]) -> None:
    _config(objects)["data"]["DATABASE_MIGRATION_HOST"] = "postgresql://app:hunter2@db/app"


def _secret_env_in_clear(objects: list[Obj]) -> None:
    for env in _api(objects)["env"]:
        if env["name"] == "JWT_SECRET":
            env.pop("valueFrom")
            env["value"] = "y" * 48


def _a_secret_object(objects: list[Obj]) -> None:
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "task-api", "namespace": "task-api"},
            "stringData": {"JWT_SECRET": "z" * 48},
        }
    )


def _wrong_component_type(objects: list[Obj]) -> None:
    _component(objects, "kafka-pubsub")["spec"]["type"] = "pubsub.redis"


def _renamed_component(objects: list[Obj]) -> None:
    _component(objects, "statestore")["metadata"]["name"] = "state"


def _component_without_version(objects: list[Obj]) -> None:
    del _component(objects, "statestore")["spec"]["version"]


def _component_field_misplaced(objects: list[Obj]) -> None:
    # `scopes` belongs at the top; under spec the API server would drop it unnoticed.
    component = _component(objects, "kafka-pubsub")
    component["spec"]["scopes"] = component.pop("scopes")


def _component_password_in_clear(objects: list[Obj]) -> None:
    statestore = _component(objects, "statestore")["spec"]["metadata"]
    statestore[0] = {"name": "connectionString", "value": "host=db password=hunter2"}


def _privilege_escalation(objects: list[Obj]) -> None:
    _api(objects)["securityContext"]["allowPrivilegeEscalation"] = True


def _writable_root(objects: list[Obj]) -> None:
    worker = find(objects, "Deployment", "task-api-worker")["spec"]["template"]["spec"]
    worker["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False


def _no_seccomp(objects: list[Obj]) -> None:
    job = find(objects, "Job", "task-api-migrate")["spec"]["template"]["spec"]
    del job["securityContext"]["seccompProfile"]


def _no_wait_for_migrations(objects: list[Obj]) -> None:
    del find(objects, "Deployment", "task-api")["spec"]["template"]["spec"]["initContainers"]


def _another_image(objects: list[Obj]) -> None:
    worker = find(objects, "Deployment", "task-api-worker")["spec"]["template"]["spec"]
    worker["containers"][0]["image"] = "task-api:older"


def _short_grace(objects: list[Obj]) -> None:
    api = find(objects, "Deployment", "task-api")["spec"]["template"]["spec"]
    api["terminationGracePeriodSeconds"] = 20


def _default_pubsub_name(objects: list[Obj]) -> None:
    _config(objects)["data"]["DAPR_PUBSUB_NAME"] = "pubsub"


def _wrong_topic(objects: list[Obj]) -> None:
    _config(objects)["data"]["DAPR_TASK_UPDATES_TOPIC"] = "updates"


def _invalid_setting(objects: list[Obj]) -> None:
    _config(objects)["data"]["DB_POOL_SIZE"] = "0"


BREAKS: dict[str, tuple[Callable[[list[Obj]], None], str]] = {
    "missing readiness probe": (_no_readiness, "readiness is not /health/ready"),
    "missing startup probe": (_no_startup, "no startup probe"),
    "secret in the ConfigMap": (_secret_in_configmap, "JWT_SECRET is a secret in a ConfigMap"),
    "password in a ConfigMap URL": (_url_with_password_in_configmap, "carries credentials"),
    "secret env var in clear": (_secret_env_in_clear, "JWT_SECRET not from a Secret"),
    "a Secret object": (_a_secret_object, "a Secret in the manifests"),
    "wrong component type": (_wrong_component_type, "expected {'kafka-pubsub': 'pubsub.kafka'"),
    "renamed component": (_renamed_component, "'state': 'state.postgresql'"),
    "component without version": (_component_without_version, "'version' is a required"),
    "misplaced component field": (_component_field_misplaced, "/spec/scopes: unknown field"),
    "component password in clear": (_component_password_in_clear, "connectionString in clear"),
    "privilege escalation": (_privilege_escalation, "privilege escalation allowed"),
    "writable root file system": (_writable_root, "worker worker: root file system writable"),
    "API not waiting for migrations": (_no_wait_for_migrations, "api: does not wait for the"),
    "no seccomp profile": (_no_seccomp, "Job/task-api-migrate: no seccomp profile"),
    "another image": (_another_image, "not one image"),
    "grace shorter than the drain": (_short_grace, "is not above a preStop wait"),
    "our old pub/sub name": (_default_pubsub_name, "DAPR_PUBSUB_NAME is pubsub"),
    "wrong topic": (_wrong_topic, "DAPR_TASK_UPDATES_TOPIC is updates"),
}


@pytest.mark.parametrize("name", BREAKS)
def test_a_deliberate_break_is_caught(objects: list[Obj], name: str) -> None:
    assert all_problems(objects) == []
    breaking, expected = BREAKS[name]
    breaking(objects)
    found = all_problems(objects)
    assert any(expected in problem for problem in found), found


def test_an_invalid_setting_in_the_configmap_is_caught(objects: list[Obj]) -> None:
    _invalid_setting(objects)
    with pytest.raises(ValueError, match="db_pool_size"):
        all_problems(objects)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "template", "spec", "containers", 0, "livenesProbe"), {}, "livenesProbe"),
        (("spec", "replicas"), "three", "'three' is not of type 'integer'"),
        (("spec", "template", "spec", "volumes", 0, "emptyDir"), [], "is not of type 'object'"),
    ],
    ids=["misspelt field", "wrong type", "wrong shape"],
)
def test_kubernetes_validation_catches_a_break(
    objects: list[Obj], path: tuple[str | int, ...], value: Any, expected: str
) -> None:
    target: Any = find(objects, "Deployment", "task-api")
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    errors = kubernetes_schema_errors(objects, KUBERNETES_VERSIONS[0])
    assert errors and expected in errors[0], errors
