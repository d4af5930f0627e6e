"""`seed`: demo tasks created through TaskService, visible through the API to their owner."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.cli.helpers import run_cli
from tests.conftest import Account, bearer, count_rows


def sign_in(client: TestClient, email: str, password: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return bearer(response.json()["data"]["access_token"])


def test_seed_registers_an_email_and_creates_its_tasks(
    database_url: str, client: TestClient, db_engine: Engine
) -> None:
    result = run_cli(
        "seed",
        "Demo@Example.com",
        "--count",
        "12",
        "--password",
        "pw-123456",
        DATABASE_URL=database_url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("seeded 12 tasks (4 completed) for Demo@Example.com (new ")
    assert "100%" in result.stderr  # the progress bar, on stderr so stdout stays parseable
    headers = sign_in(client, "demo@example.com", "pw-123456")
    tasks = client.get("/api/tasks", params={"limit": 100}, headers=headers).json()["data"]
    assert len(tasks) == 12
    assert sum(t["completed"] for t in tasks) == 4
    # Rules of the service hold: completed tasks carry a completion time, titles are unique.
    assert all((t["completed_at"] is not None) == t["completed"] for t in tasks)
    assert len({t["title"] for t in tasks}) == 12
    assert count_rows(db_engine, "tasks") == 12


def test_seed_adds_to_an_existing_account_and_leaves_others_alone(
    database_url: str,
    client: TestClient,
    alice: Account,
    register: Callable[..., Account],
) -> None:
    bob = register("bob@example.com")
    client.post("/api/tasks", json={"title": "Bob's own"}, headers=bob.headers)
    result = run_cli("seed", alice.email, "--count", "3", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert "(existing account, id " + alice.id + ")" in result.stdout
    assert len(client.get("/api/tasks", headers=alice.headers).json()["data"]) == 3
    assert [t["title"] for t in client.get("/api/tasks", headers=bob.headers).json()["data"]] == [
        "Bob's own"
    ]


def test_seed_for_a_user_id_provisions_it_like_a_token_would(
    database_url: str, client: TestClient
) -> None:
    result = run_cli("seed", "cli-demo-user", "--count", "2", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    token = run_cli("token", "cli-demo-user").stdout.strip()
    listed = client.get("/api/tasks", headers=bearer(token)).json()["data"]
    assert [t["user_id"] for t in listed] == ["cli-demo-user", "cli-demo-user"]


def test_seed_refuses_bad_input_in_one_line_and_writes_nothing(
    database_url: str, db_engine: Engine
) -> None:
    for args in (["not-an-email@", "--count", "3"], ["a@example.com", "--password", "short"]):
        result = run_cli("seed", *args, DATABASE_URL=database_url)
        assert result.returncode == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: seed: ")
    result = run_cli("seed", "--count", "0", DATABASE_URL=database_url)
    assert result.stderr.strip() == "error: seed: --count must be between 1 and 1000"
    assert count_rows(db_engine, "users") == 0
    assert count_rows(db_engine, "tasks") == 0


def test_seed_twice_adds_nothing_the_second_time_and_says_so(
    database_url: str, client: TestClient, db_engine: Engine
) -> None:
    first = run_cli("seed", "--count", "5", DATABASE_URL=database_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("seeded 5 tasks (2 completed) for demo@example.com (new ")
    again = run_cli("seed", "--count", "5", DATABASE_URL=database_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(
        "nothing to seed: demo@example.com already has all 5 demo tasks (existing account"
    )
    assert count_rows(db_engine, "tasks") == 5
    # A larger count adds only the tasks not there yet.
    more = run_cli("seed", "--count", "12", DATABASE_URL=database_url)
    assert more.returncode == 0, more.stderr
    assert "seeded 7 tasks" in more.stdout and "5 already there" in more.stdout
    headers = sign_in(client, "demo@example.com", "demo-password")
    titles = [t["title"] for t in client.get("/api/tasks", headers=headers).json()["data"]]
    assert len(titles) == len(set(titles)) == 12
