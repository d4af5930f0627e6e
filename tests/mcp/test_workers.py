"""Statelessness: `serve --workers 2` behind one port answers one client's sequence of calls
(the initialize handshake included) whichever worker takes each request."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import running_server
from tests.mcp.conftest import mcp_client, run, structured


def _mcp_pids(log: Path) -> set[int]:
    """The worker processes whose access lines show a request to /mcp."""
    pids = set()
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("logger") == "task_api.access" and record.get("route") == "/mcp":
            pids.add(record["pid"])
    return pids


def test_two_workers_answer_one_clients_calls(database_url: str) -> None:
    with running_server(database_url, workers=2, LOG_FORMAT="json") as (base_url, _, log):
        registered = httpx.post(
            f"{base_url}/api/auth/register",
            json={"email": "two-workers@example.com", "password": "password-123"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["data"]["access_token"]
        titles: list[str] = []

        async def main() -> None:
            # A new connection per request, so the kernel hands them to either worker.
            async with mcp_client(base_url, token, mode="legacy", keepalive=False) as client:
                for n in range(200):
                    title = f"call {n}"
                    added = structured(await client.call_tool("add_task", {"title": title}))
                    titles.append(title)
                    got = structured(
                        await client.call_tool("get_task", {"task_id": added["task_id"]})
                    )
                    assert got["title"] == title
                    done = await client.call_tool("complete_task", {"task_id": added["task_id"]})
                    assert structured(done)["status"] == "completed"
                    if n >= 3 and len(_mcp_pids(log)) == 2:
                        break
                listed = structured(await client.call_tool("list_tasks", {"status": "completed"}))
                assert [t["title"] for t in listed["tasks"]] == titles[::-1]

        run(main)
        assert len(_mcp_pids(log)) == 2, "one worker answered every request"
        # The access line is the one line per request: no SDK chatter per stateless request.
        assert "Terminating session" not in log.read_text()
        seen = httpx.get(
            f"{base_url}/api/tasks?limit=500", headers={"Authorization": f"Bearer {token}"}
        ).json()["data"]
        assert sorted(t["title"] for t in seen) == sorted(titles)
        assert all(t["completed"] for t in seen)
