"""How many of our functions one request passes through (issue 31 item 2: "a short walk").

One request is traced in-process with a profile hook on every thread the app runs (the event
loop's and the worker threads' that run sync routes and services), after a warm-up request of
the same kind, and the distinct project functions it called are counted: code objects under
`backend/`, comprehensions and lambdas left out. Counts, not times: the same code takes the
same walk on any machine.

`CEILINGS` hold today's counts: a change that lengthens the path fails here until it is
shortened or the ceiling is raised with its reason. Issue 37's targets (GET 35, PATCH 50)
are met (specs/statements.md, "The walk"). `FILES` bounds the files those functions are in:
the ideas a reader opens to follow the request (issue 91: a GET 14, a member's PATCH 20).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.main import create_app
from backend.observability.metrics import POOL_SAMPLER
from tests.conftest import Account
from tests.sharing.helpers import join, make_list, make_task

BACKEND = str(Path(__file__).resolve().parent.parent / "backend")

# Each +1 since issue 81: `UnitOfWork.service`, the one way into a service (a route's `uses`).
CEILINGS = {
    # A first page (issue 60): 57, one statement form for every caller. With `member_pages`
    # it was 59, and 97 on the listing that switched a member of nothing to its second form.
    "GET /api/tasks": 58,
    "GET /api/tasks/{task_id}": 36,
    "PATCH /api/tasks/{task_id}": 50,
    "PATCH /api/tasks/{task_id}/complete": 47,
    # `created`'s values written by `write_new`: DAV composes its create from the same two.
    "POST /api/tasks": 56,
    "PATCH /api/tasks/{task_id} by a member": 50,
}
FILES = {
    "GET /api/tasks/{task_id}": 14,
    "PATCH /api/tasks/{task_id} by a member": 18,
}


class Walk:
    """The project functions called while `recording`, from any thread."""

    def __init__(self) -> None:
        self.recording = False
        self.called: set[CodeType] = set()
        self._lock = threading.Lock()

    def hook(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or not self.recording:
            return
        if threading.current_thread().name == POOL_SAMPLER:
            return  # a timer's work, not the request's: it would count when it happened to run
        code = frame.f_code
        if code.co_filename.startswith(BACKEND) and not code.co_name.startswith("<"):
            with self._lock:
                self.called.add(code)

    def functions(self) -> list[str]:
        return sorted(
            f"{Path(c.co_filename).relative_to(BACKEND)}:{c.co_firstlineno} {c.co_qualname}"
            for c in self.called
        )

    def files(self) -> set[str]:
        return {c.co_filename for c in self.called}


@pytest.fixture
def walk(settings: Settings) -> Iterator[tuple[Walk, TestClient]]:
    """A client whose every thread is traced: the hook is set before the client starts its
    event loop thread, and worker threads inherit it when they are created."""
    tracer = Walk()
    threading.setprofile(tracer.hook)
    sys.setprofile(tracer.hook)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield tracer, client
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


def _traced(tracer: Walk, send: Callable[[], Any]) -> None:
    send()  # warm-up: first-use imports, caches and compiled statements stay out of the count
    tracer.called.clear()
    tracer.recording = True
    try:
        response = send()
    finally:
        tracer.recording = False
    assert response.status_code < 300, response.text


@pytest.mark.parametrize("route", sorted(CEILINGS))
def test_one_request_walks_a_bounded_path(
    route: str,
    walk: tuple[Walk, TestClient],
    register: Callable[..., Account],
) -> None:
    tracer, client = walk
    account = register()
    headers = account.headers
    task = client.post("/api/tasks", json={"title": "walked"}, headers=headers).json()["data"]
    path = f"/api/tasks/{task['id']}"
    member = register()
    shared = make_list(client, account)
    join(client, account, member, shared, "editor")
    theirs = f"/api/tasks/{make_task(client, account, 'shared', list_id=shared)}"
    sends: dict[str, Callable[[], Any]] = {
        "GET /api/tasks": lambda: client.get("/api/tasks", headers=headers),
        "GET /api/tasks/{task_id}": lambda: client.get(path, headers=headers),
        "PATCH /api/tasks/{task_id}": lambda: client.patch(
            path, json={"title": "walked again"}, headers=headers
        ),
        "PATCH /api/tasks/{task_id}/complete": lambda: client.patch(
            f"{path}/complete", headers=headers
        ),
        "POST /api/tasks": lambda: client.post(
            "/api/tasks", json={"title": "walked"}, headers=headers
        ),
        "PATCH /api/tasks/{task_id} by a member": lambda: client.patch(
            theirs, json={"title": "walked by a member"}, headers=member.headers
        ),
    }
    _traced(tracer, sends[route])
    functions = tracer.functions()
    assert functions, "the hook saw no project function: the trace is not reaching the app"
    assert len(functions) <= CEILINGS[route], (
        f"{route} passes through {len(functions)} project functions in "
        f"{len(tracer.files())} files (ceiling {CEILINGS[route]}):\n" + "\n".join(functions)
    )
    assert len(tracer.files()) <= FILES.get(route, len(tracer.files())), (
        f"{route} passes through {len(tracer.files())} files (ceiling {FILES[route]}):\n"
        + "\n".join(functions)
    )
