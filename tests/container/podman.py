"""Build the Dockerfile for real with podman, and start the built image's command.

What a CI machine here allows: podman (Debian's package) builds every step with
`--isolation=chroot`, but `podman run` cannot start a container (the sandbox forbids
setrlimit), and no container registry can be reached. So:

- the base image is Debian bookworm made by debootstrap (Debian's package) with python3 and
  python3-venv, imported into podman's storage and kept there between runs on the same
  machine (`BASE_IMAGE`, rebuilt when the recipe changes or when it is missing);
- the image is built from the Dockerfile with that base as the BASE_IMAGE build argument;
- a container is created (`podman create`), its writable root file system mounted
  (`podman mount`), /proc and /dev/shm mounted in it, and the image's own command, user,
  working directory and environment (read from the image's config) started with `chroot`,
  on the host's network. Only loopback addresses are used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, require_debian_package, skip_or_fail_in_ci

# The base: Debian bookworm, the smallest variant, plus the Python 3.11 the Dockerfile needs.
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv")
# Left out of the base: what a container never reads (part of the recipe, so the cached image
# is rebuilt when this list changes).
TRIMMED = (
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/locale/*",
    "usr/share/info/*",
)
_RECIPE = f"debootstrap --variant=minbase --include={','.join(PACKAGES)} {SUITE} -{TRIMMED}"
BASE_IMAGE = f"localhost/task-api-base:{SUITE}-{hashlib.sha256(_RECIPE.encode()).hexdigest()[:8]}"
IMAGE = "localhost/task-api:test"
# The host's CA bundle, given to pip inside the build (PIP_CERT): a machine whose HTTPS goes
# through an inspecting proxy trusts that proxy only through this file.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def require_podman() -> None:
    """Root, podman and debootstrap (installed with apt when missing), or skip/fail in CI."""
    if os.geteuid() != 0:
        skip_or_fail_in_ci(
            "CONTAINER TEST NOT RUN: building and mounting images with podman needs root"
        )
    require_debian_package("podman", lambda: shutil.which("podman") is not None, "CONTAINER")
    require_debian_package(
        "debootstrap", lambda: shutil.which("debootstrap") is not None, "CONTAINER"
    )


def podman(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _apt_mirror() -> list[str]:
    """The Debian mirror this machine's apt uses (debootstrap's own default otherwise)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        found = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", sources.read_text(), re.MULTILINE)
        if found:
            return [found.group(1)]
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        found = re.search(r"^deb\s+(\S+/debian)/?\s", listing.read_text(), re.MULTILINE)
        if found:
            return [found.group(1)]
    return []


def ensure_base_image() -> str:
    """The debootstrap base image: reused when podman's storage has it, else made (about a
    minute on a fast mirror, a few on a slow one)."""
    exists = subprocess.run(["podman", "image", "exists", BASE_IMAGE], check=False)
    if exists.returncode == 0:
        return BASE_IMAGE
    # Bases made by an older recipe are of no further use.
    older = podman("images", "--format", "{{.Repository}}:{{.Tag}}", BASE_IMAGE.split(":")[0])
    for name in older.stdout.split():
        subprocess.run(["podman", "rmi", name], capture_output=True, check=False)
    rootfs = Path(tempfile.mkdtemp(prefix="task-api-debootstrap-"))
    try:
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(rootfs),
            *_apt_mirror(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr}")
        for pattern in TRIMMED:
            for path in rootfs.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        podman("import", "--quiet", "-", BASE_IMAGE, stdin=tar.stdout, timeout=600)
        tar.wait(timeout=60)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


def build_image(base: str) -> str:
    """`podman build` of the repository's Dockerfile on `base` (layers cached by podman)."""
    args = [
        "build",
        "--isolation=chroot",
        # The docker format keeps HEALTHCHECK (the OCI format has no field for it).
        "--format=docker",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--tag",
        IMAGE,
    ]
    if HOST_CA_BUNDLE.exists():
        args += [
            "--volume",
            f"{HOST_CA_BUNDLE}:/run/host-ca.crt:ro",
            "--build-arg",
            "PIP_CERT=/run/host-ca.crt",
        ]
    previous = _image_id(IMAGE)
    podman(*args, str(ROOT), timeout=1200)
    if previous and previous != _image_id(IMAGE):
        # The image this build replaced (its build stage stays, as the cache for the next).
        subprocess.run(["podman", "rmi", previous], capture_output=True, check=False)
    return IMAGE


def _image_id(image: str) -> str:
    found = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip()


def inspect(image: str) -> dict[str, Any]:
    """`podman image inspect`: "Config" (User, Env, WorkingDir, Cmd), "Healthcheck", "Size"."""
    [inspected] = json.loads(podman("image", "inspect", image).stdout)
    result: dict[str, Any] = inspected
    return result


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Container:
    """A created container whose root file system is mounted on the host, to run the image's
    commands in with chroot (as the image's user, in its working directory, with its
    environment plus `env`)."""

    def __init__(self, image: str) -> None:
        inspected = inspect(image)
        self.config: dict[str, Any] = inspected["Config"]
        self.healthcheck: dict[str, Any] = inspected.get("Healthcheck") or {}
        self.id = podman("create", image).stdout.strip()
        self.root = Path(podman("mount", self.id).stdout.strip())
        self._mounts: list[Path] = []
        self._started: list[Started] = []
        try:
            self._mount("proc", "proc", self.root / "proc")
            self._mount("tmpfs", "shm", self.root / "dev/shm", "-o", "mode=1777")
        except Exception:
            self.close()
            raise

    def _mount(self, fstype: str, source: str, target: Path, *options: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", fstype, *options, source, str(target)], check=True)
        self._mounts.append(target)

    def user_ids(self) -> tuple[int, int]:
        """The image's USER as uid and gid, looked up in the image's own /etc/passwd."""
        user = str(self.config.get("User") or "root")
        name, _, group = user.partition(":")
        for line in (self.root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if name in (fields[0], fields[2]):
                return int(fields[2]), int(group or fields[3])
        raise LookupError(f"user {user!r} is not in the image's /etc/passwd")

    def _argv(self, command: Sequence[str], env: dict[str, str]) -> list[str]:
        uid, gid = self.user_ids()
        environment = dict(item.split("=", 1) for item in self.config.get("Env") or [])
        environment.setdefault("HOME", str(self.config.get("WorkingDir") or "/"))
        environment.update(env)
        return [
            "chroot",
            f"--userspec={uid}:{gid}",
            "--groups=" + str(gid),
            str(self.root),
            "/usr/bin/env",
            "-i",
            "-C",
            str(self.config.get("WorkingDir") or "/"),
            *(f"{key}={value}" for key, value in environment.items()),
            *command,
        ]

    def run(
        self, command: Sequence[str], env: dict[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` to completion inside the container."""
        return subprocess.run(
            self._argv(command, env), capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, env: dict[str, str], command: Sequence[str] | None = None) -> Started:
        """Start the image's CMD (or `command`) in the background; output goes to a file."""
        log = Path(tempfile.mkstemp(prefix="task-api-container-", suffix=".log")[1])
        with log.open("wb") as output:
            process = subprocess.Popen(
                self._argv(command or self.config["Cmd"], env),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = Started(process, log)
        self._started.append(started)
        return started

    def stop(self, started: Started, timeout: float = 40) -> int:
        """SIGTERM, as `docker stop` sends it; SIGKILL to the group after `timeout`."""
        if started.process.poll() is None:
            started.process.send_signal(signal.SIGTERM)
            try:
                started.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(started.process.pid, signal.SIGKILL)
                started.process.wait()
        return started.process.returncode

    def close(self) -> None:
        for started in self._started:
            self.stop(started)
            started.log.unlink(missing_ok=True)
        for target in reversed(self._mounts):
            # Lazy: a process that outlived its parent may still hold it for a moment.
            subprocess.run(["umount", "--lazy", str(target)], check=False)
        self._mounts.clear()
        subprocess.run(["podman", "umount", self.id], capture_output=True, check=False)
        subprocess.run(["podman", "rm", "--force", self.id], capture_output=True, check=False)


@contextlib.contextmanager
def container(image: str) -> Iterator[Container]:
    created = Container(image)
    try:
        yield created
    finally:
        created.close()


def wait_until_ready(base_url: str, started: Started, deadline_s: float = 90) -> dict[str, Any]:
    """Poll GET /health/ready until 200; fail with the container's output if it never is."""
    import httpx

    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            break
        try:
            response = httpx.get(f"{base_url}/health/ready", timeout=3)
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(
        f"the image never became ready ({last}); exit {started.process.poll()}:\n"
        + started.output()[-5000:]
    )
