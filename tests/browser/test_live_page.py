"""The live page (examples/live/index.html, docs/guides/live.md) in headless Debian Chromium,
against the real `serve` command: two users on a shared list, two pages. The member's page
shows the owner's create, rename, complete and delete; removed, it shows the tombstones and
nothing after; across a restart of the server, the owner's page gets every change made while
it was down, none twice. The browser's own `EventSource`, with a one-time ticket.

The page is served at the API's origin by Playwright (`page.route`), as a deployment would
serve it beside the API. How long each change took to show is printed (`-s`), not asserted:
no test depends on the machine's speed; each wait is bounded only so a failure cannot hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Account, _free_port, running_server
from tests.sharing.helpers import join, make_list, make_task

PAGE = Path(__file__).resolve().parents[2] / "examples" / "live" / "index.html"
WAIT_MS = 15_000


def _open(page: Any, base_url: str, account: Account) -> None:
    html = PAGE.read_text()
    page.route(f"{base_url}/live", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto(f"{base_url}/live")
    page.evaluate("token => start(token)", account.token)
    page.wait_for_function("document.getElementById('status').textContent === 'live'")


def _shows(page: Any, condition: str, shown: list[float]) -> None:
    """Wait until `condition` (JS, over `tasks`' items and `changes`) holds; note how long."""
    began = time.monotonic()
    page.wait_for_function(condition, timeout=WAIT_MS)
    shown.append(time.monotonic() - began)


def _titles(task_id: int) -> str:
    return f"[...document.querySelectorAll('li[data-task-id=\"{task_id}\"]')]"


def test_a_members_page_stays_live_and_a_restart_loses_nothing(
    database_url: str,
    browser_page: Any,
    client: TestClient,
    register: Callable[..., Account],
) -> None:
    alice, bob = register(), register()
    list_id = make_list(client, alice, "Groceries")
    join(client, alice, bob, list_id, "viewer")
    port = _free_port()
    settings = {"STREAM_HEARTBEAT_SECONDS": "1", "RATE_LIMIT_ENABLED": "false"}
    shown: list[float] = []
    with ExitStack() as running:
        base_url, _, _ = running.enter_context(running_server(database_url, port=port, **settings))
        owner_page = browser_page.context.new_page()
        _open(browser_page, base_url, bob)
        _open(owner_page, base_url, alice)

        # The owner's create, rename, complete and delete, each on the member's page.
        task = make_task(client, alice, "Milk", list_id=list_id)
        _shows(browser_page, f"{_titles(task)}.some(li => li.textContent === 'Milk')", shown)
        rename = {"title": "Oat milk"}
        renamed = client.patch(f"/api/tasks/{task}", json=rename, headers=alice.headers)
        assert renamed.status_code == 200
        _shows(browser_page, f"{_titles(task)}.some(li => li.textContent === 'Oat milk')", shown)
        done = client.patch(f"/api/tasks/{task}/complete", headers=alice.headers)
        assert done.status_code == 200
        _shows(browser_page, f"{_titles(task)}.some(li => li.className === 'completed')", shown)
        assert client.delete(f"/api/tasks/{task}", headers=alice.headers).status_code == 204
        _shows(browser_page, f"{_titles(task)}.length === 0", shown)
        print(f"\nshown on the member's page after (s): {[round(s, 3) for s in shown]}")

        # Removed: the tombstones of the list's tasks, then nothing of it.
        kept = make_task(client, alice, "Bread", list_id=list_id)
        _shows(browser_page, f"{_titles(kept)}.length === 1", shown)
        removed = client.delete(f"/api/lists/{list_id}/members/{bob.id}", headers=alice.headers)
        assert removed.status_code == 204, removed.text
        _shows(
            browser_page,
            f"changes.some(c => c.type === 'access.ended' && c.task_id === {kept})",
            shown,
        )
        after = make_task(client, alice, "Eggs", list_id=list_id)
        # The owner's page has it: the change went out; the member's never gets it.
        _shows(owner_page, f"{_titles(after)}.length === 1", shown)
        browser_page.wait_for_timeout(2500)  # two heartbeats' reads
        assert browser_page.evaluate(f"changes.filter(c => c.task_id === {after}).length") == 0
        assert browser_page.evaluate("document.querySelectorAll('li').length") == 0

        # The server restarts; changes made meanwhile (through another app on the same
        # database) reach the owner's page once it reconnects, each once.
        running.close()
        before = owner_page.evaluate("changes.length")
        made = [make_task(client, alice, f"while down {n}") for n in range(3)]
        rename = {"title": "renamed while down"}
        assert client.patch(f"/api/tasks/{made[0]}", json=rename, headers=alice.headers).is_success
        running.enter_context(running_server(database_url, port=port, **settings))
        _shows(owner_page, f"changes.length >= {before + 4}", shown)
        owner_page.wait_for_timeout(2500)
        changes = owner_page.evaluate(f"changes.slice({before})")
        assert [(c["type"], c["task_id"]) for c in changes] == [
            *(("created", task_id) for task_id in made),
            ("updated", made[0]),
        ]
        every = owner_page.evaluate("changes.map(c => c.event_id)")
        assert len(every) == len(set(every)), "a change came twice"
        owner_page.close()
