"""`create_calendar_feed` (MCP, and so chat): the same service as REST; its URL works, and
starts with `PUBLIC_URL` when the server has one."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import HttpUrl

from backend.config import Settings
from backend.main import create_app
from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc
from tests.sharing.conftest import SharedList


def test_an_agent_makes_a_feed_the_user_can_subscribe_to(
    client: TestClient, alice: Account, bob: Account, shared_list: SharedList
) -> None:
    client.post(
        "/api/tasks",
        json={"title": "dentist", "due_date": "2030-01-01T09:00:00Z"},
        headers=alice.headers,
    )
    made = call_tool_rpc(client, "/mcp", alice.token, "create_calendar_feed", {})
    assert made["isError"] is False, made
    feed = made["structuredContent"]
    assert (feed["status"], feed["kind"], feed["list_id"]) == ("created", "events", None)
    assert feed["url"].startswith("/api/calendar/") and feed["url"].endswith(".ics")
    assert client.get(feed["url"]).status_code == 200
    listed = client.get("/api/calendar-feeds", headers=alice.headers).json()["data"]
    assert [f["id"] for f in listed] == [feed["feed_id"]]
    # Another's list: the answer a missing list gets, and no feed.
    refused = call_tool_rpc(
        client, "/mcp", bob.token, "create_calendar_feed", {"list_id": shared_list.list_id}
    )
    assert refused["isError"] is True and "List not found" in refused["content"][0]["text"]
    assert client.get("/api/calendar-feeds", headers=bob.headers).json()["data"] == []


def test_the_url_starts_with_public_url(settings: Settings, alice: Account) -> None:
    public = settings.model_copy(update={"public_url": HttpUrl("https://tasks.example.com/")})
    with TestClient(create_app(public)) as client:
        made = call_tool_rpc(client, "/mcp", alice.token, "create_calendar_feed", {"kind": "todos"})
        url = made["structuredContent"]["url"]
        assert url.startswith("https://tasks.example.com/api/calendar/") and "//api" not in url
        rest = client.post("/api/calendar-feeds", json={}, headers=alice.headers)
        assert rest.json()["data"]["url"].startswith("https://tasks.example.com/api/calendar/")
