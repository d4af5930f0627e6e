"""Set-up shared by the sharing tests: a list of alice's with a task in it, and a way to
give another account a role in it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account
from tests.sharing.helpers import add_member, remove_member


@dataclass
class SharedList:
    owner: Account
    list_id: int
    task_id: int


@pytest.fixture
def shared_list(client: TestClient, alice: Account) -> SharedList:
    made = client.post("/api/lists", json={"name": "Team"}, headers=alice.headers)
    assert made.status_code == 201, made.text
    list_id = made.json()["data"]["id"]
    task = client.post(
        "/api/tasks", json={"title": "Shared task", "list_id": list_id}, headers=alice.headers
    )
    assert task.status_code == 201, task.text
    return SharedList(owner=alice, list_id=list_id, task_id=task.json()["data"]["id"])


@pytest.fixture
def grant(db_engine: Engine) -> Callable[[SharedList, Account, str | None], None]:
    """Give `member` `role` in the list (None: remove it), as the membership routes would
    write it: one row of `list_members` in the owner's space."""

    def _grant(shared: SharedList, member: Account, role: str | None) -> None:
        remove_member(db_engine, shared.list_id, member)
        if role is not None:
            add_member(db_engine, shared.owner, shared.list_id, member, role)

    return _grant
