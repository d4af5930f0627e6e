"""The DAV sign-in (`backend.dav.auth.sign_in`) as a write route will use it (objects, issue
62's next part): called with a real request on the running app and its database, a `read`
password's write method is 403 before anything is entered, a `read_write` one's enters as its
account, counted as a write."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import Response

from backend.api.deps import READ_METHODS
from backend.dav.auth import READ_ONLY, sign_in
from backend.dav.routes import _EVERY_METHOD as DAV_METHODS
from backend.errors import Forbidden
from backend.services.tasks.service import TaskService
from tests.api.test_app_passwords import basic, create
from tests.conftest import Account


def _request(client: TestClient, method: str, authorization: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": method,
            "path": "/dav/calendars/no-list/task.ics",
            "raw_path": b"/dav/calendars/no-list/task.ics",
            "root_path": "",
            "scheme": "http",
            "query_string": b"",
            "headers": [(b"authorization", authorization.encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "app": client.app,
        }
    )


@pytest.mark.parametrize("method", sorted(set(DAV_METHODS) - READ_METHODS))
def test_a_read_password_may_not_write(client: TestClient, alice: Account, method: str) -> None:
    made = create(client, alice, scope="read")
    header = basic(made["username"], made["password"])["Authorization"]
    with pytest.raises(Forbidden) as refused:
        sign_in(_request(client, method, header), Response())
    assert refused.value.message == READ_ONLY
    # It still reads.
    reading = sign_in(_request(client, "PROPFIND", header), Response())
    with reading:
        assert reading.caller_id == alice.id


def test_a_read_write_password_writes_as_its_account(client: TestClient, alice: Account) -> None:
    made = create(client, alice, scope="read_write")
    header = basic(made["username"], made["password"])["Authorization"]
    work = sign_in(_request(client, "PUT", header), Response())
    with work:
        assert work.caller_id == alice.id
        assert work.service(TaskService).user_id == alice.id
