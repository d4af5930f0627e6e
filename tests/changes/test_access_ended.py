"""Once a member's access to a list ends (removed by the owner, or leaving), no cursor of its
feed shows content of that list (issue 49, 3): from the start of the feed, from a cursor older
than its membership and from one taken while it was a member, the list's tasks come only as
`access.ended` tombstones; its `access.granted` copies (titles, descriptions as they were when
it joined) are gone. Joining again brings the list's tasks as they are then. Over real
PostgreSQL, through the routes (an invitation accepted, a member removed or leaving)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.sharing.helpers import drain_feed, join, make_list, make_task

SECRET = "Secret plan"
DETAILS = "Only for the team"


def _of(feed: list[dict[str, Any]], tasks: set[int]) -> list[tuple[str, int, Any]]:
    return [(e["type"], e["task_id"], e["task"]) for e in feed if e["task_id"] in tasks]


@pytest.mark.parametrize("how", ["removed", "left"])
def test_after_access_ends_every_cursor_sees_only_tombstones_of_the_list(
    client: TestClient, alice: Account, bob: Account, how: str
) -> None:
    own = make_task(client, bob, "Bob's own")
    _, before_joining = drain_feed(client, bob)
    list_id = make_list(client, alice)
    shared = {
        make_task(client, alice, SECRET, list_id=list_id, description=DETAILS),
        make_task(client, alice, "Second", list_id=list_id),
    }
    join(client, alice, bob, list_id, "editor")
    as_member, while_member = drain_feed(client, bob, before_joining)
    assert sorted(t for kind, t, _ in _of(as_member, shared) if kind == "access.granted") == sorted(
        shared
    )

    member = f"/api/lists/{list_id}/members/{bob.id}"
    by = alice if how == "removed" else bob
    assert client.delete(member, headers=by.headers).status_code == 204

    for cursor in (None, before_joining, while_member):
        feed, _ = drain_feed(client, bob, cursor)
        assert sorted(_of(feed, shared)) == sorted(
            ("access.ended", task_id, None) for task_id in shared
        ), (cursor, feed)
        assert SECRET not in str(feed) and DETAILS not in str(feed), cursor
    # The caller's own changes stay in its feed.
    whole, _ = drain_feed(client, bob)
    assert ("created", own) in [(e["type"], e["task_id"]) for e in whole]

    # Joining again: the list's tasks as they are now, after the tombstones.
    retitled = next(iter(shared))
    changed = client.patch(f"/api/tasks/{retitled}", json={"title": "New"}, headers=alice.headers)
    assert changed.status_code == 200, changed.text
    join(client, alice, bob, list_id, "viewer")
    whole, _ = drain_feed(client, bob)
    granted = [(t, task) for kind, t, task in _of(whole, shared) if kind == "access.granted"]
    assert sorted(t for t, _ in granted) == sorted(shared)
    assert dict(granted)[retitled]["title"] == "New"
    kinds = [kind for kind, _, _ in _of(whole, shared)]
    assert kinds.index("access.ended") < kinds.index("access.granted")


def test_deleting_a_shared_list_leaves_its_members_only_tombstones(
    client: TestClient, alice: Account, bob: Account
) -> None:
    list_id = make_list(client, alice)
    task_id = make_task(client, alice, SECRET, list_id=list_id, description=DETAILS)
    join(client, alice, bob, list_id, "viewer")
    assert client.delete(f"/api/lists/{list_id}", headers=alice.headers).status_code == 204
    whole, _ = drain_feed(client, bob)
    assert _of(whole, {task_id}) == [("access.ended", task_id, None)]
    assert SECRET not in str(whole)
