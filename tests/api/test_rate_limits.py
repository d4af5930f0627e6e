"""Rate limits: sign-in and sign-up per IP and per account, task writes per user; 429
`RATE_LIMITED` with `Retry-After` and the IETF draft `RateLimit` headers; state in PostgreSQL,
so the limits hold across two uvicorn worker processes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.api.deps import READ_METHODS, anonymous_door, door
from backend.config import Settings
from backend.db.engine import create_db_engine
from backend.main import create_app
from tests.conftest import api_routes, bearer, count_rows, make_token, running_server

# Long windows, so that a test does not straddle a window boundary (fixed windows).
LIMITS: dict[str, Any] = {
    "rate_limit_enabled": True,
    "rate_limit_auth_window_seconds": 3600,
    "rate_limit_sign_in_per_ip": 8,
    "rate_limit_sign_in_per_account": 3,
    "rate_limit_sign_up_per_ip": 4,
    "rate_limit_sign_up_per_account": 2,
    "rate_limit_task_window_seconds": 3600,
    "rate_limit_task_writes_per_user": 5,
}


@pytest.fixture(autouse=True)
def _clear_of_a_window_boundary() -> None:
    """The limits here use one-hour windows, which are fixed and aligned to the clock hour, as
    documented. A test that straddled an hour would see its counts reset and fail, so a test
    that would start within a minute of one waits until it has passed (at most 61 s, in about
    one run in sixty)."""
    to_boundary = 3600 - time.time() % 3600
    if to_boundary < 60:
        time.sleep(to_boundary + 1)


@pytest.fixture
def limited(settings: Settings) -> Callable[..., Any]:
    def _make(**overrides: Any) -> TestClient:
        return TestClient(
            create_app(settings.model_copy(update={**LIMITS, **overrides})),
            raise_server_exceptions=False,
        )

    return _make


@pytest.fixture
def client_limited(limited: Callable[..., TestClient]) -> Iterator[TestClient]:
    with limited() as client:
        yield client


def _register(client: TestClient, email: str, password: str = "password-123") -> str:
    response = client.post("/api/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    token: str = response.json()["data"]["access_token"]
    return token


def _login(client: TestClient, email: str, password: str = "password-123") -> httpx.Response:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def _assert_429(response: httpx.Response, policy: str) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 3600
    assert f'"{policy}";' in response.headers["ratelimit-policy"]
    assert re.search(rf'"{policy}";r=0;t=\d+', response.headers["ratelimit"])


def test_sign_in_is_limited_per_account(client_limited: TestClient) -> None:
    _register(client_limited, "target@example.com")
    for _ in range(3):
        assert _login(client_limited, "target@example.com", "wrong-password").status_code == 401
    # Over the limit even the right password is refused until the window ends.
    _assert_429(_login(client_limited, "target@example.com"), "sign-in-account")
    _assert_429(_login(client_limited, "TARGET@example.com"), "sign-in-account")
    # Another account from the same client is still fine (the IP limit is higher).
    _register(client_limited, "other@example.com")
    assert _login(client_limited, "other@example.com").status_code == 200


def test_successful_responses_carry_ratelimit_headers(client_limited: TestClient) -> None:
    _register(client_limited, "headers@example.com")
    response = _login(client_limited, "headers@example.com")
    assert response.status_code == 200
    assert response.headers["ratelimit-policy"] == (
        '"sign-in-ip";q=8;w=3600, "sign-in-account";q=3;w=3600'
    )
    assert re.fullmatch(
        r'"sign-in-ip";r=7;t=\d+, "sign-in-account";r=2;t=\d+', response.headers["ratelimit"]
    )
    assert "retry-after" not in response.headers


def test_sign_in_is_limited_per_ip_across_accounts(client_limited: TestClient) -> None:
    statuses = [_login(client_limited, f"spray{i}@example.com").status_code for i in range(8)]
    assert statuses == [401] * 8
    _assert_429(_login(client_limited, "spray-next@example.com"), "sign-in-ip")


def test_oauth2_form_counts_against_the_same_limits(client_limited: TestClient) -> None:
    _register(client_limited, "form@example.com")
    for _ in range(2):
        assert _login(client_limited, "form@example.com", "nope-nope").status_code == 401
    form = {"username": "form@example.com", "password": "nope-nope"}
    assert client_limited.post("/api/auth/token", data=form).status_code == 401
    _assert_429(client_limited.post("/api/auth/token", data=form), "sign-in-account")


def test_limits_do_not_reveal_whether_an_email_exists(client_limited: TestClient) -> None:
    _register(client_limited, "exists@example.com")
    known = [_login(client_limited, "exists@example.com", "wrong-pass") for _ in range(4)]
    unknown = [_login(client_limited, "missing@example.com", "wrong-pass") for _ in range(4)]
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [401] * 3 + [429]
    assert known[0].json() == unknown[0].json()
    assert known[-1].json() == unknown[-1].json()


def test_sign_up_is_limited_per_account_and_ip(client_limited: TestClient) -> None:
    body = {"email": "dup@example.com", "password": "password-123"}
    assert client_limited.post("/api/auth/register", json=body).status_code == 201
    assert client_limited.post("/api/auth/register", json=body).status_code == 409
    _assert_429(client_limited.post("/api/auth/register", json=body), "sign-up-account")
    assert (
        client_limited.post(
            "/api/auth/register", json={"email": "new@example.com", "password": "password-123"}
        ).status_code
        == 201
    )
    _assert_429(
        client_limited.post(
            "/api/auth/register", json={"email": "new2@example.com", "password": "password-123"}
        ),
        "sign-up-ip",
    )


def test_task_writes_are_limited_per_user(client_limited: TestClient, db_engine: Engine) -> None:
    alice = bearer(_register(client_limited, "alice-rl@example.com"))
    bob = bearer(_register(client_limited, "bob-rl@example.com"))
    created = client_limited.post("/api/tasks", json={"title": "one"}, headers=alice)
    assert created.status_code == 201
    assert created.headers["ratelimit-policy"] == '"task-writes";q=5;w=3600'
    task_id = created.json()["data"]["id"]
    writes = [
        client_limited.patch(f"/api/tasks/{task_id}", json={"title": "two"}, headers=alice),
        client_limited.put(f"/api/tasks/{task_id}", json={"title": "three"}, headers=alice),
        client_limited.patch(f"/api/tasks/{task_id}/complete", headers=alice),
        client_limited.delete(f"/api/tasks/{task_id}", headers=alice),
    ]
    assert [w.status_code for w in writes] == [200, 200, 200, 204]
    # Every write carries its own count, also the routes that return pre-serialized JSON
    # (their headers are copied from the injected response), and the 200s their ETag.
    remaining = [re.search(r";r=(\d+);", w.headers["ratelimit"]) for w in writes]
    assert [m.group(1) if m else None for m in remaining] == ["3", "2", "1", "0"]
    assert all(w.headers["ratelimit-policy"] == '"task-writes";q=5;w=3600' for w in writes)
    assert [w.headers.get("etag") for w in writes[:3]] == [f'"{task_id}-{v}"' for v in (2, 3, 4)]
    assert re.fullmatch(r'"task-writes";r=0;t=\d+', writes[-1].headers["ratelimit"])
    refused = client_limited.post("/api/tasks", json={"title": "six"}, headers=alice)
    _assert_429(refused, "task-writes")
    assert count_rows(db_engine, "tasks") == 0  # nothing written by the refused request
    # Reads are not limited; other users are not affected.
    assert client_limited.get("/api/tasks", headers=alice).status_code == 200
    assert client_limited.post("/api/tasks", json={"title": "b"}, headers=bob).status_code == 201


def test_an_undo_counts_once_in_its_two_messages(client_limited: TestClient) -> None:
    """An undo reads its entry in a message that counts the write, then writes in a further
    transaction that counts nothing (issue 60), its change locks taken by its own statement:
    one write each, an update's undo and a deletion's."""
    alice = bearer(_register(client_limited, "undo-rl@example.com"))
    created = client_limited.post("/api/tasks", json={"title": "one"}, headers=alice)
    task_id = created.json()["data"]["id"]

    def undo_newest() -> Any:
        newest = client_limited.get("/api/activity", params={"limit": 1}, headers=alice)
        return client_limited.post(
            f"/api/activity/{newest.json()['data'][0]['id']}/undo", headers=alice
        )

    answered = [
        client_limited.patch(f"/api/tasks/{task_id}", json={"title": "two"}, headers=alice),
        undo_newest(),
        client_limited.delete(f"/api/tasks/{task_id}", headers=alice),
        undo_newest(),
    ]
    assert [r.status_code for r in answered] == [200, 200, 204, 200]
    remaining = [re.search(r";r=(\d+);", r.headers["ratelimit"]) for r in answered]
    assert [m.group(1) if m else None for m in remaining] == ["3", "2", "1", "0"]


def test_keyed_writes_count_and_carry_headers_replays_and_refusals_too(
    client_limited: TestClient, db_engine: Engine
) -> None:
    """A keyed create, its replay and a mismatched key each count as one write and say so in
    their headers (the key's check rides in the write's message, and a replay or a refusal
    ends the transaction with a rollback and a recount: specs/statements.md)."""
    alice = bearer(_register(client_limited, "keyed-rl@example.com"))
    keyed = {**alice, "Idempotency-Key": "rl-key"}
    first = client_limited.post("/api/tasks", json={"title": "once"}, headers=keyed)
    replay = client_limited.post("/api/tasks", json={"title": "once"}, headers=keyed)
    mismatch = client_limited.post("/api/tasks", json={"title": "other"}, headers=keyed)
    assert [first.status_code, replay.status_code, mismatch.status_code] == [201, 201, 422]
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    # The refused one carries its count too, as every counted request does.
    after = client_limited.post("/api/tasks", json={"title": "once"}, headers=keyed)
    answered = (first, replay, mismatch, after)
    remaining = [re.search(r";r=(\d+);", r.headers["ratelimit"]) for r in answered]
    assert [m.group(1) if m else None for m in remaining] == ["4", "3", "2", "1"]
    assert count_rows(db_engine, "tasks") == 1
    client_limited.post("/api/tasks", json={"title": "once"}, headers=keyed)
    _assert_429(
        client_limited.post("/api/tasks", json={"title": "once"}, headers=keyed), "task-writes"
    )
    assert count_rows(db_engine, "tasks") == 1


def test_unauthenticated_writes_are_401_not_429(client_limited: TestClient) -> None:
    for _ in range(8):
        assert client_limited.post("/api/tasks", json={"title": "x"}).status_code == 401


def test_window_resets(limited: Callable[..., TestClient]) -> None:
    with limited(rate_limit_task_window_seconds=2, rate_limit_task_writes_per_user=1) as client:
        headers = bearer(_register(client, "reset@example.com"))
        # Two writes in one 2-second window: the second is refused. (A write that lands just
        # past a window's end starts a new one, so writes go on until one is refused: each
        # success is followed by a refusal unless that pair straddles a boundary, which a
        # loaded machine may make happen more than once.)
        statuses = []
        for _ in range(6):
            refused = client.post("/api/tasks", json={"title": "a"}, headers=headers)
            statuses.append(refused.status_code)
            if refused.status_code == 429:
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {201}, statuses
        time.sleep(int(refused.headers["retry-after"]) + 0.1)
        assert client.post("/api/tasks", json={"title": "c"}, headers=headers).status_code == 201


def test_a_zero_limit_turns_one_policy_off(limited: Callable[..., TestClient]) -> None:
    with limited(rate_limit_task_writes_per_user=0) as client:
        headers = bearer(_register(client, "zero@example.com"))
        for _ in range(8):
            response = client.post("/api/tasks", json={"title": "x"}, headers=headers)
            assert response.status_code == 201
        assert "ratelimit" not in response.headers


def test_disabled_limits_send_no_headers(unlimited_client: TestClient) -> None:
    for _ in range(12):
        response = unlimited_client.post(
            "/api/auth/login", json={"email": "off@example.com", "password": "password-1"}
        )
        assert response.status_code == 401
    assert "ratelimit" not in response.headers


@pytest.fixture
def two_workers(database_url: str) -> Iterator[str]:
    """`python -m backend serve --workers 2` with rate limits on, against the test database.
    With no statement deadline: the test counts what the limits answer, and a loaded machine
    must not turn a counted request into a 503 (a deadline's own answer:
    tests/reliability/test_statement_timeout.py)."""
    limits = {
        "DB_STATEMENT_TIMEOUT_MS": "0",
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_SIGN_IN_PER_ACCOUNT": "5",
        "RATE_LIMIT_SIGN_IN_PER_IP": "1000",
        "RATE_LIMIT_TASK_WRITES_PER_USER": "7",
        "RATE_LIMIT_AUTH_WINDOW_SECONDS": "3600",
        "RATE_LIMIT_TASK_WINDOW_SECONDS": "3600",
    }
    with running_server(database_url, workers=2, **limits) as (base_url, _, _):
        yield base_url


def _fresh_connection(
    method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    # A new connection per request, so the kernel spreads them over both workers' accepts; a
    # generous wait (the sign-ins' password hashes queue on a loaded machine).
    with httpx.Client(timeout=120) as http:
        return http.request(
            method, url, headers={**(headers or {}), "Connection": "close"}, **kwargs
        )


# Rounds at most, each with a new account, until one was served by both workers: the kernel,
# not the test, spreads the connections, and on a loaded machine one worker may take a round.
SPREAD_ROUNDS = 8


def _worker(response: httpx.Response) -> str:
    """The process that answered: a generated request id starts with its process's prefix
    (backend/main.py, `_request_id_generator`)."""
    return response.headers["X-Request-ID"][:16]


def _limited_round(base: str, email: str) -> set[str]:
    """Sign-ins and writes past their limits at once; the limits hold exactly. Returns the
    workers that answered."""
    registered = _fresh_connection(
        "POST",
        f"{base}/api/auth/register",
        json={"email": email, "password": "password-123"},
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["data"]["access_token"]

    def attempt(_: int) -> httpx.Response:
        return _fresh_connection(
            "POST",
            f"{base}/api/auth/login",
            json={"email": email, "password": "wrong-password"},
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        sign_ins = list(pool.map(attempt, range(20)))
    statuses = [answer.status_code for answer in sign_ins]
    # Exactly the limit gets through, however the requests were spread over the workers.
    assert statuses.count(401) == 5 and statuses.count(429) == 15, statuses

    def write(i: int) -> httpx.Response:
        return _fresh_connection(
            "POST", f"{base}/api/tasks", json={"title": f"t{i}"}, headers=bearer(token)
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        writes = list(pool.map(write, range(16)))
    codes = [answer.status_code for answer in writes]
    assert codes.count(201) == 7 and codes.count(429) == 9, codes
    return {_worker(answer) for answer in (registered, *sign_ins, *writes)}


@pytest.mark.e2e
def test_limits_hold_across_two_worker_processes(two_workers: str) -> None:
    for round_number in range(SPREAD_ROUNDS):
        workers = _limited_round(two_workers, f"workers-{round_number}@example.com")
        if len(workers) == 2:
            break
    assert len(workers) == 2, f"{SPREAD_ROUNDS} rounds, each answered by one worker alone"


def test_every_counted_request_carries_the_headers_whatever_its_status(
    client_limited: TestClient,
) -> None:
    """Issue 38: a write counted and then refused (422 for its body or path, 404, 412) says
    what it cost, as its successes and 429s do; the budget never drops unannounced."""
    headers = bearer(_register(client_limited, "counted@example.com"))
    answers = [
        client_limited.post("/api/tasks", json={"title": "one"}, headers=headers),
        client_limited.post("/api/tasks", json={}, headers=headers),
        client_limited.patch("/api/tasks/0", json={"title": "x"}, headers=headers),
        client_limited.delete("/api/tasks/999999", headers=headers),
    ]
    assert [a.status_code for a in answers] == [201, 422, 422, 404]
    remaining = [re.search(r";r=(\d+);", a.headers.get("ratelimit", "")) for a in answers]
    assert [m.group(1) if m else None for m in remaining] == ["4", "3", "2", "1"]
    assert all(a.headers["ratelimit-policy"] == '"task-writes";q=5;w=3600' for a in answers)
    task_id = answers[0].json()["data"]["id"]
    stale = client_limited.patch(
        f"/api/tasks/{task_id}", json={"title": "y"}, headers={**headers, "If-Match": '"0-0"'}
    )
    assert stale.status_code == 412, stale.text
    assert re.fullmatch(r'"task-writes";r=0;t=\d+', stale.headers["ratelimit"])
    # A request that was not counted carries none: no token, an invalid sign-in.
    assert "ratelimit" not in client_limited.post("/api/tasks", json={}).headers
    assert "ratelimit" not in client_limited.post("/api/auth/login", json={}).headers


def test_invalid_task_writes_count_but_invalid_sign_ins_do_not(
    client_limited: TestClient,
) -> None:
    headers = bearer(_register(client_limited, "invalid@example.com"))
    for _ in range(5):
        assert client_limited.post("/api/tasks", json={}, headers=headers).status_code == 422
    _assert_429(
        client_limited.post("/api/tasks", json={"title": "x"}, headers=headers), "task-writes"
    )
    # Over the limit, an invalid write is refused as over the limit too.
    _assert_429(client_limited.post("/api/tasks", json={}, headers=headers), "task-writes")
    for _ in range(5):
        bad = client_limited.post("/api/auth/login", json={"email": "not-an-email"})
        assert bad.status_code == 422
    assert _login(client_limited, "invalid@example.com").status_code == 200


def test_counting_a_write_when_the_database_is_unreachable_is_a_503(
    limited: Callable[..., TestClient], settings: Settings
) -> None:
    """Every authenticated write is counted (the door), an invalid one too: with the
    database unreachable, both are a clean 503, never a 500."""
    with limited() as client:
        unreachable = create_db_engine(
            "postgresql://nobody@127.0.0.1:1/none",
            settings.model_copy(update={"db_connect_timeout_seconds": 2}),
        )
        client.app.state.engine = unreachable  # type: ignore[attr-defined]
        headers = bearer(make_token(sub="limiter-down"))
        invalid = client.post("/api/tasks", json={"title": ""}, headers=headers)
        valid = client.post("/api/tasks", json={"title": "x"}, headers=headers)
    for response in (invalid, valid):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


def test_limited_writes_do_not_starve_a_small_pool(database_url: str) -> None:
    """More concurrent writers than pooled connections, with limits on: every request still
    gets through (the limiter must not hold a connection while waiting for another)."""
    settings = {
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_TASK_WRITES_PER_USER": "1000",
        "DB_POOL_SIZE": "2",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT_SECONDS": "5",
    }
    with running_server(database_url, **settings) as (base_url, _, _):
        headers = bearer(make_token(sub="pool-writer"))

        def write(i: int) -> int:
            with httpx.Client(timeout=30) as http:
                response = http.post(
                    f"{base_url}/api/tasks", json={"title": f"t{i}"}, headers=headers
                )
                return response.status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(write, range(48)))
    assert statuses == [201] * 48


def test_every_write_route_enters_through_the_door(settings: Settings) -> None:
    """The door counts every write (POST, PUT, PATCH, DELETE) of a signed-in caller: every
    write route under /api takes it, so none escapes the per-user write limit, but a route
    that declares no caller (`door: AnonymousDoor`: sign-up and sign-in, a reminder mail's
    one-click unsubscribe, RFC 8058, whose POST carries no token and whose link's HMAC names
    the account) and documents a limit of its own (`rate_limited(...)`: a 429, per client
    address or account). Both are read from the route's declaration: no list of routes here."""

    def calls(dependant: Dependant) -> set[object]:
        found = {dependant.call}
        for sub in dependant.dependencies:
            found |= calls(sub)
        return found

    def limited_on_its_own(route: APIRoute, found: set[object]) -> bool:
        return anonymous_door in found and {429, "429"} & set(route.responses) != set()

    routes = [route for route in api_routes(create_app(settings)) if route.path.startswith("/api/")]
    writes = {
        (method, route.path): calls(route.dependant)
        for route in routes
        for method in route.methods
        if method not in READ_METHODS
    }
    anonymous = {
        (method, route.path)
        for route in routes
        for method in route.methods
        if method not in READ_METHODS and limited_on_its_own(route, writes[(method, route.path)])
    }
    # Today's: sign-up, the two sign-ins and the unsubscribe, so the check is not vacuous.
    assert {path for _, path in anonymous} >= {"/api/auth/register", "/api/auth/login"}
    assert len(writes) - len(anonymous) >= 9  # 7 task writes, logout-all, delete-me
    missing = {key for key, found in writes.items() if door not in found} - anonymous
    assert missing == set(), "write routes that neither take the door nor limit themselves"


def test_a_hit_cleans_up_expired_windows_in_the_same_statement(
    limited: Callable[..., TestClient], db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clean-up rides on the hit (no statement of its own, so a request's round trips do
    not depend on a die roll): expired windows go, the keys being hit are counted as usual."""
    from sqlalchemy import text

    from backend.services import rate_limits

    with limited() as client:
        headers = bearer(_register(client, "cleanup@example.com"))
        assert client.post("/api/tasks", json={"title": "a"}, headers=headers).status_code == 201
        with db_engine.begin() as conn:
            # The caller's own window, expired as if its hour had passed, and a stranger's.
            conn.execute(
                text(
                    "UPDATE rate_limits SET window_start = now() - interval '2 hours',"
                    " window_end = now() - interval '1 hour', hits = 4"
                    " WHERE key LIKE 'task-writes:%'"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO rate_limits (key, window_start, window_end, hits) VALUES"
                    " ('sign-in-ip:stale', now() - interval '2 hours',"
                    " now() - interval '1 hour', 3)"
                )
            )
        monkeypatch.setattr(rate_limits, "_CLEAN_UP_ONE_IN", 1)
        response = client.post("/api/tasks", json={"title": "b"}, headers=headers)
        assert response.status_code == 201
        # A new window for the caller (the expired count of 4 is gone): 5 - 1 remaining.
        assert response.headers["ratelimit"].startswith('"task-writes";r=4;'), response.headers
        with db_engine.connect() as conn:
            keys = conn.execute(text("SELECT key FROM rate_limits")).scalars().all()
        assert "sign-in-ip:stale" not in keys
        assert len([k for k in keys if k.startswith("task-writes:")]) == 1
