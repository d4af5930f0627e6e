"""A database on the test server that has never been migrated."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from backend.db.engine import libpq_url

NAME = "task_api_unmigrated"


@pytest.fixture
def unmigrated_database_url(database_url: str) -> Iterator[str]:
    server = make_url(libpq_url(database_url)).set(database="postgres")
    admin = psycopg2.connect(server.render_as_string(hide_password=False))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {NAME}")
    try:
        yield server.set(database=NAME).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
        admin.close()
