"""A dedicated PostgreSQL for the tests that stop it or kill its connections, migrated like
production; the session's shared test server is never stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.db.migrations import migrate_up
from tests.reliability.servers import DedicatedPostgres


@pytest.fixture(scope="module")
def dedicated_pg() -> Iterator[DedicatedPostgres]:
    server = DedicatedPostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def dedicated_db(dedicated_pg: DedicatedPostgres) -> str:
    """A migrated database on the dedicated server; its URL."""
    url = dedicated_pg.create_database("task_api_reliability")
    migrate_up(url)
    return url
