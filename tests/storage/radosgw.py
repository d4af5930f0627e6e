"""A real S3-compatible server for the tests: Ceph's radosgw from Debian, on a throw-away
one-node Ceph cluster bound to 127.0.0.1, started for the session as PostgreSQL is.

Debian 12's Ceph (16, pacific) has no database-backed store for radosgw (dbstore came later),
so it needs RADOS under it: one monitor, one OSD on the in-memory object store (memstore: no
disk, gone when it stops), no manager, pools of size 1. cephx is on (with auth "none" radosgw
refuses to talk to the monitor). Every daemon runs in the foreground as a child of the test
process (as Debian's `ceph` user when the suite runs as root), dies with it, and is stopped by
its pid. radosgw itself checks S3 requests: SigV4 signatures, the expiry of presigned URLs,
signed response overrides (what a mock such as moto's server does not). Measured here:
`apt-get install` of the three packages ~14 s (61 MB), a start ~3 s, a stop under 1 s.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

# What runs the cluster: radosgw itself, the monitor, the OSD (ceph-common, with `ceph`,
# `ceph-authtool`, `monmaptool` and `radosgw-admin`, comes with them).
PACKAGES = ("radosgw", "ceph-mon", "ceph-osd")
COMMANDS = ("radosgw", "ceph-mon", "ceph-osd", "ceph", "ceph-authtool", "monmaptool")
START_TIMEOUT_SECONDS = 120
PR_SET_PDEATHSIG = 1
# The OSD's in-memory store: what the cluster can hold at once (taken as it fills).
MEMSTORE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Radosgw:
    """Where the gateway listens and an S3 user's keys."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "default"
    # The gateway's process (a test freezes it: SIGSTOP, SIGCONT).
    pid: int = 0


def installed() -> bool:
    return all(shutil.which(command) for command in COMMANDS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(root: Path, fsid: str, mon_port: int, rgw_port: int, memstore_bytes: int) -> str:
    return f"""[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
keyring = {root}/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
# The monitor batches map changes for a second by default; radosgw's start creates its pools
# one after another, each a map change: 11 s instead of 1.
paxos propose interval = 0.05
paxos min wait = 0.01
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
mon data = {root}/mon/$cluster-$id
osd data = {root}/osd/$cluster-$id
run dir = {root}/run
log file = {root}/log/$name.log
admin socket = {root}/run/$name.asok
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
"""


class _Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "ceph.conf"
        self.processes: list[subprocess.Popen[bytes]] = []

    def run(self, *command: str) -> str:
        result = subprocess.run(
            [command[0], "-c", str(self.conf), *command[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def start(self, name: str, *command: str) -> None:
        """Start a daemon in the foreground. As root, it drops to Debian's `ceph` user (what
        the packaged services do): the tree it writes is handed to that user first."""
        user: list[str] = []
        if os.geteuid() == 0 and _ceph_user() is not None:
            uid, gid = _ceph_user()  # type: ignore[misc]
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, uid, gid)
            user = ["--setuser", "ceph", "--setgroup", "ceph"]
        log = (self.root / "log" / f"{name}.out").open("wb")
        self.processes.append(
            subprocess.Popen(
                [command[0], "-c", str(self.conf), "-f", *user, *command[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        )

    def stop(self) -> None:
        # One at a time, the gateway first and the monitor last: an OSD stopping tells the
        # monitor, and waits for it (5 s) if the monitor is already gone.
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args} exited: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((self.root / "log").glob("*"))
        )


def _ceph_user() -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam("ceph")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL, so a
    killed run leaves no daemon behind (Linux's PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _gateway_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


@contextmanager
def running_radosgw(root: Path, *, memstore_bytes: int = MEMSTORE_BYTES) -> Iterator[Radosgw]:
    """Create a one-node cluster under `root`, start radosgw on a free loopback port, make an
    S3 user; stop every daemon on exit (memstore: nothing stays behind but `root`). The OSD
    holds at most `memstore_bytes` in memory (the benchmark, scripts/bench/attachments.py,
    stores more than the tests)."""
    for sub in ("mon", "osd/ceph-0", "run", "log", "rgw"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    fsid, osd_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    mon_port, rgw_port = _free_port(), _free_port()
    cluster = _Cluster(root)
    cluster.conf.write_text(_config(root, fsid, mon_port, rgw_port, memstore_bytes))
    keyring = str(root / "keyring")
    keys: list[tuple[str, list[str]]] = [
        ("mon.", ["mon", "allow *"]),
        ("client.admin", ["mon", "allow *", "osd", "allow *", "mgr", "allow *"]),
        ("osd.0", ["mon", "allow profile osd", "osd", "allow *", "mgr", "allow profile osd"]),
        ("client.rgw", ["mon", "allow rw", "osd", "allow rwx", "mgr", "allow rw"]),
    ]
    for index, (name, caps) in enumerate(keys):
        flags = ["--create-keyring"] if index == 0 else []
        cap_args: list[str] = []
        for pos in range(0, len(caps), 2):
            cap_args += ["--cap", caps[pos], caps[pos + 1]]
        subprocess.run(
            ["ceph-authtool", keyring, *flags, "--gen-key", "-n", name, *cap_args],
            check=True,
            capture_output=True,
        )
    subprocess.run(
        ["monmaptool", "--create", "--add", "a", f"v2:127.0.0.1:{mon_port}", "--fsid", fsid,
         str(root / "monmap")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    with ExitStack() as stack:
        stack.callback(cluster.stop)
        cluster.run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(root / "monmap"))
        cluster.start("mon", "ceph-mon", "-i", "a")
        # The monitor's keys for the daemons (it knows only mon. and client.admin from mkfs).
        cluster.run("ceph", "--connect-timeout", "30", "auth", "import", "-i", keyring)
        osd_id = cluster.run("ceph", "osd", "new", osd_uuid).strip()
        cluster.run("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        cluster.start("osd", "ceph-osd", "-i", osd_id)
        cluster.start("rgw", "radosgw", "-n", "client.rgw")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _gateway_answers(rgw_port):
            cluster.alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"radosgw did not answer in time:\n{cluster.logs()}")
            time.sleep(0.2)
        access_key = "AK" + secrets.token_hex(9).upper()
        secret_key = secrets.token_urlsafe(30)
        cluster.run(
            "radosgw-admin", "user", "create", "--uid", "tests", "--display-name", "tests",
            "--access-key", access_key, "--secret-key", secret_key,
        )  # fmt: skip
        gateway = cluster.processes[-1].pid
        yield Radosgw(f"http://127.0.0.1:{rgw_port}", access_key, secret_key, pid=gateway)
