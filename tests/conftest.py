"""Test fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL), schema built by the
migrations, tables emptied after every test, and helpers for real users and real tokens."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import psycopg2
import pytest

TEST_SECRET = secrets.token_urlsafe(48)
# Settings read the environment (subprocesses inherit it): a test configuration.
os.environ["ENVIRONMENT"] = "test"
os.environ["JWT_SECRET"] = TEST_SECRET
os.environ.pop("DATABASE_URL", None)
os.environ.pop("BETTER_AUTH_SECRET", None)
# Rate limits are on, as in production; a test that needs them off says so.
os.environ["RATE_LIMIT_ENABLED"] = "true"
# No app runs imports on a thread of its own (development's default): it would write another
# test's queued import while this one counts round trips or rules. Tests run runners themselves.
os.environ["IMPORT_RUNNER_IN_API"] = "false"

from fastapi import FastAPI  # noqa: E402
from fastapi.routing import APIRoute  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from jose import jwt  # noqa: E402
from pwdlib import PasswordHash  # noqa: E402
from pwdlib.hashers.argon2 import Argon2Hasher  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from starlette.routing import BaseRoute  # noqa: E402

from backend.auth import passwords  # noqa: E402
from backend.config import Settings  # noqa: E402
from backend.db.embedded import embedded_server  # noqa: E402
from backend.db.engine import create_db_engine, libpq_url, normalize_url  # noqa: E402
from backend.db.migrations import migrate_up  # noqa: E402
from backend.main import create_app  # noqa: E402
from tests import guards  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEST_DB_NAME = "task_api_test"


def _fresh_database(server_url: str, name: str) -> str:
    """Create an empty database on the server and return its URL."""
    admin = psycopg2.connect(libpq_url(server_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    admin.close()
    url = make_url(libpq_url(server_url)).set(database=name)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    # An xdist worker's own name (task_api_test_gw0, ...): workers given one server by
    # TEST_DATABASE_URL and an explicit `-n` must not drop each other's database.
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    name = f"{TEST_DB_NAME}_{worker}" if worker else TEST_DB_NAME
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        # Behind a pooler (PgBouncer, Neon's -pooler host) the tests talk through
        # TEST_DATABASE_URL, while CREATE DATABASE and the migrations go to the server directly,
        # as DATABASE_MIGRATION_URL does in production (tests/reliability/test_pgbouncer.py).
        direct = os.environ.get("TEST_DATABASE_DIRECT_URL")
        url = _fresh_database(direct or external, name)
        migrate_up(url)
        pooled = make_url(libpq_url(external)).set(database=name)
        yield pooled.render_as_string(hide_password=False) if direct else url
        return
    # A throwaway server, stopped and deleted when the session ends.
    scratch = Path(tempfile.mkdtemp(prefix="task-api-test-"))
    server = embedded_server(scratch / "pg", cleanup_mode="delete")
    url = _fresh_database(server.get_uri("postgres"), name)
    migrate_up(url)
    yield url
    server.cleanup()
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        jwt_secret=TEST_SECRET,
        cors_origins=["http://localhost:3000"],
        auto_migrate=False,
        rate_limit_enabled=True,
        # A live stream (GET /api/changes/stream) asked by a test that walks every route ends
        # on its own; tests of the stream itself run a server with their own settings.
        stream_max_seconds=0.5,
        # Tests run imports' runners themselves (tests/transfer/), never on the app's thread.
        import_runner_in_api=False,
    )


@pytest.fixture(scope="session")
def db_engine(database_url: str, settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(database_url, settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def setup_engine(database_url: str) -> Iterator[Engine]:
    """Direct SQL for a test's set-up (many rows, made faster than the API would), with no
    deadline: `db_engine` is the app's engine, whose response timeout (the statement timeout
    and a margin, 7 s by default) a 10,000-row insert can pass on a loaded machine. Its
    statements are set-up, never what a test asserts about the app."""
    engine = create_engine(normalize_url(database_url))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


def loaded(client: TestClient) -> TestClient:
    """`client` once what its app loads beside the start has loaded (the MCP endpoint; the
    chat stack if configured), so that `/health/ready` answers for the database alone."""
    state = client.app.state  # type: ignore[attr-defined]
    assert state.mcp.wait(60), "the MCP endpoint did not load"
    assert state.chat_stack is None or state.chat_stack.wait(60), "the chat stack did not load"
    return client


@pytest.fixture(scope="session")
def _client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield loaded(client)


@pytest.fixture
def client(_client: TestClient) -> TestClient:
    return _client


# The end-to-end tier: real tools and many processes (a browser, podman, Node, wrk, PgBouncer,
# multi-worker servers, worker processes, mypy, the fuzzer; a single test of that kind elsewhere
# carries `@pytest.mark.e2e`). `python -m pytest -m "not e2e"` is the fast tier (the API,
# services, MCP and security, in-process or against one live server; about 4 minutes on two
# cores) to run while working; `python -m pytest` (and .ci/run) runs both.
E2E_FOLDERS = {"browser", "cli", "container", "examples", "interop", "reliability", "scripts"}
E2E_FILES = {
    "changes/test_live_workers.py",
    "chat/test_api_script.py",
    "chat/test_chatkit_disconnect.py",
    "chat/test_disconnect.py",
    "db/test_embedded_first_run.py",
    "deploy/test_workloads.py",
    "docs/test_browser.py",
    "docs/test_commands.py",
    "docs/test_preview.py",
    "events/test_operations.py",
    "events/test_workers.py",
    "mcp/test_stdio.py",
    "mcp/test_workers.py",
    "observability/test_serve.py",
    "test_fuzz.py",
    "test_quality.py",
    "test_query_plans.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.relative_to(ROOT / "tests")
        if path.parts[0] in E2E_FOLDERS or path.as_posix() in E2E_FILES:
            item.add_marker(pytest.mark.e2e)
    # The end-to-end files first: they are the longest units of work, so none is left to run
    # alone at the end of a parallel run while the other workers idle (xdist hands files out in
    # collection order with pyproject's --no-loadscope-reorder).
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
    guards.narrow(config, items)


# `--guards-for TABLE` (one child's or resource's generated guards) and `--fuzz-operation`:
# tests/guards.py.
def pytest_addoption(parser: pytest.Parser) -> None:
    guards.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    guards.configure(config)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return guards.ignore_collect(collection_path, config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    guards.finish(session)


# Parallel runs (pytest-xdist; pyproject's addopts `-n auto --dist loadfile`): a worker per core
# and one more, each a session of its own (its own embedded PostgreSQL, servers and temp
# directories), and a test file is one unit of work, run whole by one worker, so what a module
# starts serves all its tests once, as in a serial run. `-n 0` runs serially in this process.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: a worker per core and one more, except no workers where they cannot help
    or must not run: one test file named (one unit of work: a worker would only add its start),
    or TEST_DATABASE_URL (someone's own server, as tests/reliability/test_pgbouncer.py runs a
    subset through PgBouncer: one database, one session)."""
    if os.environ.get("TEST_DATABASE_URL"):
        return 0
    named = [config.invocation_params.dir / arg.split("::")[0] for arg in config.args]
    if len(named) == 1 and named[0].is_file():
        return 0
    # A worker more than cores: the end-to-end files spend much of their time waiting (servers
    # starting, timeouts run out, a database frozen on purpose), and a third worker fills it.
    return len(os.sched_getaffinity(0)) + 1


# Argon2id at its production cost is about 0.1 s a hash here, and most tests register a user or
# two: a third of the fast tier. In-process tests hash with argon2id at its lowest cost instead
# (still a real hash, verified for real); servers started as processes, the sign-in timing tests
# (`production_password_hashing`) and tests/security/test_passwords.py use the real cost.
PRODUCTION_PASSWORD_HASH = passwords._password_hash
_LOW_COST_PASSWORD_HASH = PasswordHash(
    (Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)
)


@contextmanager
def _password_hashing(hasher: PasswordHash) -> Iterator[None]:
    # The dummy hash (verified for unknown emails) must cost what a real one costs.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_password_hash", hasher)
        passwords.dummy_hash.cache_clear()
        yield
    passwords.dummy_hash.cache_clear()


@pytest.fixture(autouse=True, scope="session")
def _low_cost_password_hashing() -> Iterator[None]:
    with _password_hashing(_LOW_COST_PASSWORD_HASH):
        yield


@pytest.fixture
def production_password_hashing() -> Iterator[None]:
    with _password_hashing(PRODUCTION_PASSWORD_HASH):
        yield


# After every test the tables a test can fill are emptied: these and every table that refers to
# them, as `TRUNCATE ... RESTART IDENTITY CASCADE` would. TRUNCATE costs about 80 ms here (new
# files for 22 tables and their indexes, and every pooled connection's cached plans invalidated:
# the role matrix's 767 tests took 87 s serially with it, 65 s without). On a superuser's
# connection (the embedded server) the same state is reached by DELETEs with triggers and foreign
# keys off (the rows go whole, so none is left dangling) and the tables' sequences set back to
# their start, in one message of about 1 ms.
CLEANED = ("users", "tasks", "rate_limits", "task_events", "event_sinks")
_CLEANED_CLOSURE = """
WITH RECURSIVE cleaned(rel) AS (
    SELECT unnest(CAST(:roots AS regclass[]))
    UNION
    SELECT c.conrelid::regclass FROM pg_constraint c JOIN cleaned ON c.confrelid = cleaned.rel
    WHERE c.contype = 'f'
)
SELECT (SELECT array_agg(rel::text ORDER BY rel::text) FROM cleaned),
       (SELECT array_agg(format('SELECT setval(%L, %s, false);', s.seq::text, q.start_value))
          FROM cleaned
          JOIN LATERAL (
              SELECT d.objid::regclass AS seq FROM pg_depend d
              WHERE d.refobjid = cleaned.rel AND d.classid = 'pg_class'::regclass
                AND d.deptype IN ('a', 'i')
          ) s ON true
          JOIN pg_sequences q ON format('%I.%I', q.schemaname, q.sequencename)::regclass = s.seq),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
"""


@pytest.fixture(scope="session")
def _cleanup_sql(db_engine: Engine) -> str:
    with db_engine.connect() as conn:
        tables, sequences, superuser = conn.execute(
            text(_CLEANED_CLOSURE), {"roots": list(CLEANED)}
        ).one()
    if not superuser:  # someone's own server (TEST_DATABASE_URL) may not allow the role switch
        return f"TRUNCATE {', '.join(CLEANED)} RESTART IDENTITY CASCADE"
    deletes = "".join(f"DELETE FROM {table};" for table in tables)
    return (
        f"SET session_replication_role = replica;{deletes}"
        f"RESET session_replication_role;{''.join(sequences or ())}"
    )


def clean_tables(engine: Engine, cleanup: str) -> None:
    connection = engine.raw_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(cleanup)
        connection.commit()
    finally:
        connection.close()


# A module marked `module_tables` (a seed too large to make per test) empties the tables once,
# at the end of the module's own fixture, and each of its tests undoes what it writes.
@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "database_url" in request.fixturenames and not request.node.get_closest_marker(
        "module_tables"
    ):
        clean_tables(request.getfixturevalue("db_engine"), request.getfixturevalue("_cleanup_sql"))


@dataclass
class Account:
    id: str
    email: str
    password: str
    token: str
    headers: dict[str, str] = field(default_factory=dict)


def _registering(client: TestClient) -> Callable[..., Account]:
    counter = iter(range(1_000_000))

    def _register(email: str | None = None, password: str = "password-123") -> Account:
        email = email or f"user{next(counter)}@example.com"
        response = client.post("/api/auth/register", json={"email": email, "password": password})
        assert response.status_code == 201, response.text
        body = response.json()["data"]
        token = body["access_token"]
        return Account(
            id=body["user"]["id"],
            email=email,
            password=password,
            token=token,
            headers={"Authorization": f"Bearer {token}"},
        )

    return _register


@pytest.fixture
def register(client: TestClient) -> Callable[..., Account]:
    return _registering(client)


@pytest.fixture
def unlimited_register(unlimited_client: TestClient) -> Callable[..., Account]:
    """`register` through `unlimited_client`: for a test that signs up more users than the
    per-IP sign-up limit allows."""
    return _registering(unlimited_client)


@pytest.fixture
def alice(register: Callable[..., Account]) -> Account:
    return register("alice@example.com")


@pytest.fixture
def bob(register: Callable[..., Account]) -> Account:
    return register("bob@example.com")


def skip_or_fail_in_ci(reason: str) -> NoReturn:
    """Skip where a tool is missing on a developer's machine; in CI (CI=true, as .ci/run is
    run) the end-to-end tests must run, so a missing tool fails the run instead."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI requires this test to run)")
    pytest.skip(reason)


def apt_install(package: str, *more: str, recommends: bool = True) -> str | None:
    """Install Debian packages (CI runs as root on a fresh machine), with their recommended
    packages unless `recommends` is false; return why they could not be installed, or None."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    if os.geteuid() != 0:
        names = " ".join((package, *more))
        return f"not root, so apt-get cannot install it (run: sudo apt-get install -y {names})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", package, *more]
    if not recommends:
        install.insert(2, "--no-install-recommends")
    for command in (["apt-get", "update", "-qq"], install):
        # Another apt run (a second suite, a helper's set-up) may hold apt's or dpkg's lock:
        # wait for it (DPkg::Lock::Timeout does not cover `update`'s lists lock).
        deadline = time.monotonic() + 600
        while True:
            try:
                result = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=600
                )
            except subprocess.TimeoutExpired:
                return f"`{' '.join(command)}` timed out"
            locked = "Could not get lock" in result.stderr
            if result.returncode == 0 or not locked or time.monotonic() > deadline:
                break
            time.sleep(2)
        if result.returncode != 0:
            return f"`{' '.join(command)}` failed: {result.stderr.strip()[-300:]}"
    return None


def require_debian_package(package: str, present: Callable[[], bool], what: str) -> None:
    """Install `package` when `present()` is false; skip (fail under CI=true) if that fails."""
    if present():
        return
    problem = apt_install(package)
    if problem or not present():
        skip_or_fail_in_ci(
            f"{what}: Debian {package} is missing and {problem or 'was not found after installing'}"
        )


def make_token(
    claims: dict[str, Any] | None = None,
    *,
    secret: str = TEST_SECRET,
    algorithm: str = "HS256",
    lifetime: int = 600,
    **overrides: Any,
) -> str:
    """A token signed like an external issuer sharing the secret would sign it."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": "external-user-1", "iat": now, "exp": now + lifetime}
    payload.update(claims or {})
    payload.update(overrides)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute the app serves, through included routers (FastAPI keeps an included
    router as one entry of `app.routes`, with its own routes inside)."""
    found: list[APIRoute] = []

    def walk(routes: Sequence[BaseRoute]) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif (inner := getattr(route, "original_router", None)) is not None:
                walk(inner.routes)

    walk(app.routes)
    return found


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def python_on_path(bin_dir: Path) -> Path:
    """`bin_dir` holding `python`, as the pages spell it, for this interpreter: a script that
    execs `sys.executable`, not a symlink to it. A venv's interpreter finds its packages
    through `pyvenv.cfg` beside the path it was started by, so a symlink outside the venv
    starts it without them (ModuleNotFoundError under a venv, as the README recommends)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    return bin_dir


def stop_process(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_server(
    database_url: str, *, workers: int = 1, port: int | None = None, **env_overrides: str
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`python -m backend serve` in a subprocess on a loopback port (`port`, or a free one),
    against `database_url`.

    Ready once `/health/ready` answers 200, as the readiness probe waits (what loads beside
    the start, the MCP endpoint, has loaded), and every worker has logged its start-up (at
    LOG_LEVEL INFO, the default here). Yields the base URL, the process and the path of its log.
    """
    port = port or _free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SECRET,
        "LOG_LEVEL": "INFO",
        **env_overrides,
    }
    log = Path(tempfile.mkstemp(prefix="task-api-serve-", suffix=".log")[1])
    command = [sys.executable, "-m", "backend", "serve", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    # Generous: each worker imports the app and checks the database before it starts, which
    # on a loaded machine took more than a minute (a process that exits fails at once).
    deadline = time.monotonic() + 300
    try:
        # One client for the whole wait: each new one loads the CA bundle (about 20 ms of CPU).
        with httpx.Client(timeout=1) as poller:
            while True:
                started = log.read_text().count("Application startup complete")
                try:
                    healthy = poller.get(f"{base_url}/health/ready").status_code == 200
                except httpx.TransportError:
                    healthy = False
                if healthy and started >= workers:
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield base_url, process, log
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[str]:
    """The real `serve` command (uvicorn, separate process) on a loopback port."""
    with running_server(database_url) as (base_url, _, _):
        yield base_url


@pytest.fixture(scope="session")
def unlimited_live_server(database_url: str) -> Iterator[str]:
    """`live_server` with rate limits off: for a test whose one user writes more in a minute
    than the write limit allows (a load of moves, every tool against every id). The suite
    runs with the production default, limits on, everywhere else."""
    with running_server(database_url, RATE_LIMIT_ENABLED="false") as (base_url, _, _):
        yield base_url


@pytest.fixture(scope="session")
def _unlimited_client(settings: Settings) -> Iterator[TestClient]:
    unlimited = create_app(settings.model_copy(update={"rate_limit_enabled": False}))
    with TestClient(unlimited, raise_server_exceptions=False) as client:
        yield loaded(client)


@pytest.fixture
def unlimited_client(_unlimited_client: TestClient) -> TestClient:
    """`client` with rate limits off, for a test that needs more sign-ins or writes than the
    limits allow (timing samples, many writers); say why where it is used."""
    return _unlimited_client
