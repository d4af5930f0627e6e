"""The benchmark's raw baseline (scripts/bench/baseline.py) sends the database the API's
messages (specs/statements.md), counted, not asserted: both servers run as the benchmark runs
them (`servers.start`), each behind its own counting proxy (scripts/bench/dbproxy.py), and
every benchmarked request is measured on a warm pool. Per request both send the same number
of messages, that number is the API's budget in tests/test_round_trips.py, and the messages
are the same text up to their values (literals, ids, the deadline), SQLAlchemy's column
qualification and labels, parentheses and spacing (`_normalised`). A read is the `SET LOCAL`s,
`task_api_enter(...)` and the query in one message; a write that nothing follows is those, the
deadline check `task_api_in_time` and the write in one, with no `BEGIN` or `COMMIT` (one
implicit transaction); so is a toggle, whose write returns the stored row instead when it would
complete a series (the bench's tasks never recur). Either way the last statement answers with
the request's outcome as columns beside its rows (`task_api_outcome_read()`): no notice carries
anything."""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.bench import seed, servers, workload
from scripts.bench.dbproxy import DbProxy
from tests.test_round_trips import budget_of

# The benchmarked requests: (name, method, path, body, the API's budget key).
REQUESTS: list[tuple[str, str, str, dict[str, Any] | None, str]] = [
    ("get", "GET", "/api/tasks/{task}", None, "GET /api/tasks/{task_id}"),
    ("list", "GET", "/api/tasks", None, "GET /api/tasks"),
    ("search", "GET", "/api/tasks?status=pending&q=invoice", None, "GET /api/tasks?search"),
    ("update", "PATCH", "/api/tasks/{task}", {"title": "x", "priority": "low"}, ""),
    ("toggle", "PATCH", "/api/tasks/{task}/complete", None, ""),
    ("create", "POST", "/api/tasks", {"title": "new", "tags": ["a"]}, "POST /api/tasks"),
    ("delete", "DELETE", "/api/tasks/{victim}", None, "DELETE /api/tasks/{task_id}"),
]
BUDGET_KEYS = {
    "update": "PATCH /api/tasks/{task_id}",
    "toggle": "PATCH /api/tasks/{task_id}/complete+not recurring",
}


# What `_normalised` leaves out of a message: the labels SQLAlchemy gives unnamed columns,
# literal values (strings, psycopg2's ARRAY[...], numbers, casts of literals), column
# qualification; then parentheses and spacing. The entry's clean-up flag is not compared.
LABEL = re.compile(r" AS (?:count|max|anon|coalesce|greatest)_\d+\b")
STRING = re.compile(r"'(?:[^']|'')*'")
ARRAY = re.compile(r"ARRAY\[[^\]]*\]")
CAST = re.compile(r"::[A-Za-z]+(?:\[\])?")
NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
QUALIFIER = re.compile(r"\b(?:tasks|child|task_events|task_events_pruned)\.")
SPACE = re.compile(r"\s*([=,;])\s*")
# The last statement of a message that carries the entry: the statement's rows beside the
# outcome's columns (backend/db/sender.py `_WITH_OUTCOME`); a toggle's CTEs (`scope.py`
# `_WRITTEN_OR_STORED`).
OUTCOME = "SELECT o.*, r.* FROM task_api_outcome_read() AS o"
ANSWERED = OUTCOME + " LEFT JOIN (SELECT true AS task_api_row, * FROM r) AS r ON true"
BEGIN_OR_COMMIT = re.compile(r"\b(?:BEGIN|COMMIT)\b")
WRITTEN_OR_STORED = re.compile(
    r"WITH w AS \(UPDATE tasks .*\), s AS \(SELECT .*\), r AS \(SELECT w\.\*, true AS "
    r"task_api_written FROM w UNION ALL SELECT s\.\*, false FROM s WHERE NOT EXISTS "
    r"\(SELECT FROM w\)\) SELECT o\.\*",
    re.DOTALL,
)
# The entry's last argument: whether this hit also deletes expired rate-limit windows, drawn
# at random (one in 500) by each server on its own.
CLEAN_UP = re.compile(r"(task_api_enter\([^;]*,\s*)(?:true|false)(\s*\))", re.IGNORECASE)


def _normalised(message: str) -> str:
    """A message as the statements it sends, whatever the values and SQLAlchemy's spelling:
    the baseline writes its SQL by hand, the API compiles its statements."""
    for pattern, by in (
        (CLEAN_UP, r"\1?\2"),
        (LABEL, ""),
        (STRING, "?"),
        (ARRAY, "?"),
        (CAST, ""),
        (NUMBER, "?"),
        (QUALIFIER, ""),
    ):
        message = pattern.sub(by, message)
    message = SPACE.sub(r"\1", message.replace("(", " ").replace(")", " "))
    return " ".join(message.split())


@pytest.fixture(scope="module")
def bench_servers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    db = seed.prepare(database_url, 2, 200, reuse=True, quiet=True)
    secret = secrets.token_urlsafe(48)
    tokens = workload.mint_tokens(workload.settings_for(secret, db.url), db.users)
    owned = workload.owned_pairs(db)
    logs = tmp_path_factory.mktemp("bench-logs")
    with ExitStack() as stack:
        running = {}
        for kind in ("api", "baseline"):
            proxy = stack.enter_context(DbProxy.for_url(db.url, record=True))
            server = stack.enter_context(
                servers.start(
                    kind,
                    workers=1,
                    database_url=proxy.url(db.url),
                    secret=secret,
                    log_dir=Path(logs),
                    # No idle ping on a slow run (tests/test_pool_checkout.py).
                    extra_env={"DB_POOL_PING_IDLE_SECONDS": "3600"},
                )
            )
            running[kind] = (server, proxy)
        yield running, tokens, owned
    shutil.rmtree(logs, ignore_errors=True)


def _send(server: servers.Server, token: str, method: str, path: str, body: Any) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.request(method, server.url + path, json=body, headers=headers, timeout=30)
    assert response.status_code < 300, response.text
    return response.status_code


def _create(server: servers.Server, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.post(server.url + "/api/tasks", json={"title": "victim"}, headers=headers)
    return int(response.json()["data"]["id"])


@pytest.mark.parametrize("request_", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_the_baseline_sends_the_apis_messages(
    request_: tuple[str, str, str, dict[str, Any] | None, str], bench_servers: Any
) -> None:
    running, tokens, owned = bench_servers
    name, method, path, body, budget_key = request_
    user, task = owned[0]
    token = tokens[user - 1]
    messages: dict[str, list[str]] = {}
    for kind, (server, proxy) in running.items():
        victim = 0
        if "{victim}" in path:
            _send(server, token, method, path.format(victim=_create(server, token)), body)  # warm
            victim = _create(server, token)
        else:
            _send(server, token, method, path.format(task=task), body)  # warm: pool, token
        with proxy.measure() as counts:
            _send(server, token, method, path.format(task=task, victim=victim), body)
        assert counts.connections == 0, f"{kind}: a new connection; the pool was not warm"
        budget = budget_of(budget_key or BUDGET_KEYS[name])
        assert counts.round_trips == budget, (kind, counts.round_trips, counts.queries)
        messages[kind] = counts.queries
    api, baseline = ([_normalised(m) for m in messages[k]] for k in ("api", "baseline"))
    assert api == baseline, (messages["api"], messages["baseline"])
    for kind, sent in messages.items():
        # Each server's own text, before `_normalised`: the entry goes with the first
        # statement, whose answer carries the outcome as its columns (no notice carries it).
        first = sent[0]
        assert first.startswith("SET LOCAL TimeZone = 'UTC'; "), (kind, first)
        assert "SELECT task_api_enter(" in first, (kind, first)
        assert OUTCOME in first, (kind, first)
        assert "task_api_return" not in first, (kind, first)
        if method == "GET":
            assert "task_api_in_time" not in first, (kind, first)
        if budget == 1 and method != "GET":
            # A write that nothing follows commits itself as one implicit transaction: no
            # `BEGIN` or `COMMIT`; its deadline is checked just before the write.
            assert not BEGIN_OR_COMMIT.search(first), (kind, first)
            enter, in_time = first.index("task_api_enter("), first.index("task_api_in_time(")
            assert enter < in_time < first.index(OUTCOME), (kind, first)
            assert first.rstrip().endswith(ANSWERED), (kind, first)
        if name == "toggle":
            # The write, or the stored row when it would complete a series, marked.
            assert WRITTEN_OR_STORED.search(first), (kind, first)
