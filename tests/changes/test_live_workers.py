"""The live stream on two workers (issue 64): two server processes on one database, the
streams split between them, each worker's one reader reading every woken stream's page in one
statement. Every event reaches every member once, in order, on whichever worker its stream
is; a worker killed mid-run loses no event for the streams that reconnect to the other by
`Last-Event-ID`. End-to-end tier (two servers; tests/conftest.py `E2E_FILES`). Nothing asserts
a duration: a deadline is only what a test would otherwise hang on."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from tests.changes.sse import Event, Stream
from tests.conftest import Account, _registering, running_server
from tests.sharing.helpers import add_member, make_list, make_task

SETTINGS = {"STREAM_HEARTBEAT_SECONDS": "0.5", "RATE_LIMIT_ENABLED": "false"}


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[tuple[str, object], tuple[str, object]]]:
    with (
        running_server(database_url, **SETTINGS) as (a_url, a_process, _),
        running_server(database_url, **SETTINGS) as (b_url, b_process, _),
    ):
        yield (a_url, a_process), (b_url, b_process)


def _titles(events: list[Event]) -> list[str]:
    return [event.data["task"]["title"] for event in events]


def test_two_workers_deliver_every_event_once_in_order_and_a_killed_ones_streams_resume(
    two: tuple[tuple[str, object], tuple[str, object]], db_engine: Engine
) -> None:
    (a_url, _), (b_url, b_process) = two
    opened: list[Stream] = []
    with httpx.Client(base_url=a_url, timeout=30) as a, httpx.Client(base_url=b_url) as b:
        register = _registering(a)  # type: ignore[arg-type]
        owner: Account = register()
        members = [register() for _ in range(4)]
        list_id = make_list(a, owner)  # type: ignore[arg-type]
        for member in members:
            add_member(db_engine, owner, list_id, member, "viewer")

        def stream(url: str, account: Account, headers: dict[str, str] | None = None) -> Stream:
            opened.append(Stream(url, {**account.headers, **(headers or {})}))
            assert opened[-1].response.status_code == 200
            return opened[-1]

        try:
            # The owner and two members on A, two members on B; writes through either.
            on_a = [stream(a_url, owner), stream(a_url, members[0]), stream(a_url, members[1])]
            on_b = [stream(b_url, members[2]), stream(b_url, members[3])]
            titles = [f"w{n}" for n in range(10)]
            for n, title in enumerate(titles[:5]):
                make_task(a if n % 2 else b, owner, title, list_id=list_id)  # type: ignore[arg-type]
            last: dict[int, str | None] = {}
            for each in on_a + on_b:
                got = each.take(5, timeout=15)
                assert _titles(got) == titles[:5]
                assert [e.data["type"] for e in got] == ["created"] * 5
                last[id(each)] = got[-1].id
            seen: dict[int, list[Event]] = {}
            # B killed mid-run: writes before, between and after; its streams reconnect to A.
            make_task(a, owner, titles[5], list_id=list_id)  # type: ignore[arg-type]
            make_task(a, owner, titles[6], list_id=list_id)  # type: ignore[arg-type]
            b_process.kill()  # type: ignore[attr-defined]
            make_task(a, owner, titles[7], list_id=list_id)  # type: ignore[arg-type]
            resumed = []
            for account, each in zip(members[2:], on_b, strict=True):
                # What came before the worker died, then the last id the client saw.
                before = seen[id(each)] = each.until_end(timeout=15)
                cursor = before[-1].id if before else last[id(each)]
                resumed.append((each, stream(a_url, account, {"Last-Event-ID": cursor or ""})))
            make_task(a, owner, titles[8], list_id=list_id)  # type: ignore[arg-type]
            make_task(a, owner, titles[9], list_id=list_id)  # type: ignore[arg-type]
            for each in on_a:
                assert _titles(each.take(5, timeout=15)) == titles[5:]
            for old, new in resumed:
                before = seen[id(old)]
                after = new.take(5 - len(before), timeout=15)
                assert _titles(before + after) == titles[5:]
                # Once each: nothing more comes.
                assert new.quiet(1.5)
            for each in on_a:
                assert each.quiet(1.5)
        finally:
            for each in opened:
                each.close()
