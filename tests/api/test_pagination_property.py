"""Property: paging through a listing while tasks are added and deleted never repeats a task
and never skips one that existed throughout (keyset pagination, not OFFSET)."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import bearer, make_token

users = itertools.count()

task_specs = st.fixed_dictionaries(
    {
        # Few distinct values, so ties (broken by id) are common.
        "title": st.sampled_from(["a", "B", "b", "c"]),
        "priority": st.sampled_from(["none", "low", "medium", "high"]),
        "due_date": st.sampled_from([None, "2030-01-01", "2030-01-02"]),
    }
)
# Between two page fetches: insert a task, delete the n-th known task, or do nothing.
changes = st.one_of(
    st.tuples(st.just("insert"), task_specs),
    st.tuples(st.just("delete"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("none"), st.none()),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    initial=st.lists(task_specs, min_size=0, max_size=12),
    sort=st.sampled_from(["created", "updated", "title", "due_date", "priority"]),
    order=st.sampled_from(["asc", "desc"]),
    page_size=st.integers(min_value=1, max_value=4),
    interleaved=st.lists(changes, max_size=8),
)
def test_pages_never_repeat_or_skip_unchanged_tasks(
    client: TestClient,
    initial: list[dict[str, Any]],
    sort: str,
    order: str,
    page_size: int,
    interleaved: list[tuple[str, Any]],
) -> None:
    headers = bearer(make_token(sub=f"pager-{next(users)}"))

    def create(spec: dict[str, Any]) -> int:
        response = client.post("/api/tasks", json=spec, headers=headers)
        assert response.status_code == 201, response.text
        return int(response.json()["data"]["id"])

    existing = [create(spec) for spec in initial]
    deleted: set[int] = set()
    seen: list[int] = []
    pending_changes = list(interleaved)
    url = f"/api/tasks?sort={sort}&order={order}&limit={page_size}"
    max_pages = len(initial) + len(interleaved) + 2
    for _ in range(max_pages):
        body = client.get(url, headers=headers).json()
        seen += [t["id"] for t in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
        if pending_changes:
            kind, value = pending_changes.pop(0)
            if kind == "insert":
                create(value)
            elif kind == "delete" and existing:
                victim = existing[value % len(existing)]
                client.delete(f"/api/tasks/{victim}", headers=headers)
                deleted.add(victim)
        url = f"/api/tasks?sort={sort}&order={order}&limit={page_size}&cursor={cursor}"
    else:
        raise AssertionError(f"pagination did not end within {max_pages} pages")

    assert len(seen) == len(set(seen)), "a task appeared twice"
    unchanged = set(existing) - deleted
    assert unchanged <= set(seen), f"skipped: {sorted(unchanged - set(seen))}"
