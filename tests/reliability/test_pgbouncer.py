"""Promise: the app works behind a transaction-pooling PgBouncer, as behind Neon's pooler.

A subset of the suite runs again, in a subprocess, with TEST_DATABASE_URL pointing at Debian's
pgbouncer in `pool_mode = transaction` (the test database is created and migrated through the
direct URL, as production migrates through DATABASE_MIGRATION_URL). In that mode a server
connection is lent to a client for one transaction only, so anything that relies on session
state breaks: a session-level SET, a session advisory lock, a server-side prepared statement,
LISTEN, a WITH HOLD cursor, a temporary table.

The subset (SUBSET below) is every test that sends real SQL through the app's engine on the
paths users hit, within about a minute and a half on 2 cores:
- tests/api/test_tasks.py, test_task_features.py: every task route, every filter, sort, keyset
  page and bulk operation (one transaction per request, commit-before-response);
- tests/api/test_auth.py, test_revocation.py: registration, sign-in, the token-version check
  (the user upsert on a token's first use);
- three tests of tests/api/test_rate_limits.py: the rate limiter's own short upsert
  transaction, per user and per account, and its window reset (the rest of that file repeats
  the same SQL with other policies, or starts extra servers: ~50 s for no new statement);
- tests/api/test_isolation.py: two users' requests interleaved;
- tests/api/test_idempotency.py: the transaction-level advisory lock and the recorded response
  committed with the write (a session-level lock would break behind the pooler);
- tests/services: TaskService and the unit of work against the pooled engine directly;
- tests/test_round_trips.py: every route's and tool's messages (several statements in one,
  BEGIN ... COMMIT inside one, answers in notices), and a keyed write's check, replay and
  refusal with rate limits on;
- four tests of tests/api/test_recurrence.py: a completion and its successor's INSERT ...
  SELECT ... ON CONFLICT in one transaction, a schedule write that reads the task first;
- tests/reliability/test_statement_timeout.py: SET LOCAL statement_timeout is honoured through
  the pooler and does not stick to the server connection;
- tests/api/test_lists.py, test_subtasks.py: lists, the placement statements (CTEs, one
  UPDATE ... FROM plan, constraints checked at the statement's end) and the tree's triggers;
- tests/chat/test_chat.py and the keyed retry of tests/chat/test_failures.py: a chat turn's
  units of work (the chat limit's own transaction, the door's with the turn's record, each
  tool call's with its record riding with the COMMIT, the answer's upsert with the
  conversation's activity, a keyed retry's claim of the turn) and the fake model server;
- tests/chat/test_chatkit.py and test_chatkit_widgets.py: ChatKit's statements (a thread's
  messages and items in one union page, the keyset row comparisons, a turn's ids and title in
  one UPDATE ... RETURNING, the items' upsert) and a widget's write through the door.
Left out: validation/HTTP-shape tests that never reach the database differently
(test_validation, test_http), the hypothesis pagination property (long; its SQL is the
listing SQL test_task_features already runs), and the sign-in timing test (timing on a
shared machine, no SQL difference).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.reliability.servers import DedicatedPostgres, PgBouncer

SUBSET = [
    "tests/api/test_tasks.py",
    "tests/api/test_task_features.py",
    "tests/api/test_auth.py",
    "tests/api/test_revocation.py",
    "tests/api/test_rate_limits.py::test_task_writes_are_limited_per_user",
    "tests/api/test_rate_limits.py::test_sign_in_is_limited_per_account",
    "tests/api/test_rate_limits.py::test_window_resets",
    "tests/api/test_isolation.py",
    "tests/api/test_idempotency.py",
    "tests/services",
    "tests/test_round_trips.py",
    "tests/api/test_rate_limits.py::test_keyed_writes_count_and_carry_headers_replays_and_refusals_too",
    "tests/api/test_recurrence.py::test_completing_creates_the_next_occurrence",
    "tests/api/test_recurrence.py::test_reopening_creates_none_and_completing_again_no_second",
    "tests/api/test_recurrence.py::"
    "test_a_new_rule_or_zone_restarts_the_series_and_the_same_rule_keeps_it",
    "tests/api/test_recurrence.py::"
    "test_the_change_feed_records_the_completion_and_the_new_occurrence_in_one_transaction",
    "tests/reliability/test_statement_timeout.py",
    "tests/api/test_lists.py",
    "tests/api/test_subtasks.py",
    "tests/chat/test_chat.py",
    "tests/chat/test_chatkit.py",
    "tests/chat/test_chatkit_widgets.py",
    "tests/chat/test_failures.py::"
    "test_committed_calls_are_reported_and_a_keyed_retry_never_repeats_them",
]


@pytest.mark.timeout(600)
def test_suite_subset_passes_through_pgbouncer_transaction_pooling(
    dedicated_pg: DedicatedPostgres,
) -> None:
    bouncer = PgBouncer(dedicated_pg)
    try:
        config = {row["key"]: row["value"] for row in bouncer.show("CONFIG")}
        assert config["pool_mode"] == "transaction"
        assert config["listen_addr"] == "127.0.0.1"
        env = {
            **os.environ,
            "TEST_DATABASE_URL": bouncer.url(),
            "TEST_DATABASE_DIRECT_URL": dedicated_pg.url(),
        }
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *SUBSET, "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        tail = result.stdout[-4000:] + result.stderr[-2000:]
        assert result.returncode == 0, tail
        summary = result.stdout.strip().splitlines()[-1]
        passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
        assert "failed" not in summary and "error" not in summary, summary
        assert "skipped" not in summary, tail
        # The traffic really went through the pooler: its transaction count for the test
        # database far exceeds the number of tests.
        row = next(r for r in bouncer.show("STATS") if r["database"] == "task_api_test")
        transactions = int(row["total_xact_count"])
        assert transactions > passed, (transactions, passed)
        print(f"\n[pgbouncer transaction mode] {summary}; pooled transactions={transactions}")
    finally:
        bouncer.close()
