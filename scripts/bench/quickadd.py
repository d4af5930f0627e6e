"""Issue 80's target ("benchmark the parse's CPU per request beside a plain create: at most 1 ms
of server CPU for a 100-character text"), run against the API alone (the baseline and the naive
app have no quick add): `parse` and `quick`, beside `create`.

Every request sends `BODY`: a realistic 100-character line with a `time_zone`, so the service
looks nothing up (no `#list`, no `+member`, a zone sent: specs/api-contract.md, "Quick add") and
what the request pays beyond the door is the grammar's reading. `parse` is `POST
/api/tasks/parse` (a preview, 200, nothing created), `quick` is `POST /api/tasks/quick` (the same
reading created, 201; `seed.reset` deletes what it made). `lua/parse.lua` and `lua/quick.lua`
carry the same body (tests/scripts/test_bench.py checks it). `validate` checks the line reads as
written and that `quick` creates what `parse` shows.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

PARSE, QUICK = SCENARIOS = ("parse", "quick")
TEXT = (
    "Buy oat milk and bread for the weekend brunch with Sam and Alex tomorrow at 5pm "
    "@errands @food !high"
)
TIME_ZONE = "Europe/Berlin"
BODY = {"text": TEXT, "time_zone": TIME_ZONE}
# What the line reads as: its title, and its tokens (the due's value moves with the clock).
TITLE = "Buy oat milk and bread for the weekend brunch with Sam and Alex"
TOKENS = [
    ("due", "tomorrow at 5pm"),
    ("tag", "@errands"),
    ("tag", "@food"),
    ("priority", "!high"),
]


def body_json() -> str:
    """The body as the Lua scripts send it (compact JSON)."""
    return json.dumps(BODY, separators=(",", ":"))


def _instant(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def validate(url: str, token: str) -> list[str]:
    """The line reads as written (title, tokens, a due, tags, priority, the zone sent), and
    `quick` creates exactly the task `parse` shows for it."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        parsed = client.post("/api/tasks/parse", json=BODY)
        if parsed.status_code != 200:
            raise AssertionError(f"{PARSE}: {parsed.status_code} {parsed.text[:200]}")
        preview = parsed.json()["data"]
        shown = preview["task"]
        tokens = [(t["kind"], t["text"]) for t in preview["tokens"]]
        if shown["title"] != TITLE or tokens != TOKENS or shown["due_date"] is None:
            raise AssertionError(f"{PARSE}: the line read as {preview}")
        if len(TEXT) != 100:
            raise AssertionError(f"{PARSE}: the line is {len(TEXT)} characters, not 100")
        made = client.post("/api/tasks/quick", json=BODY)
        if made.status_code != 201 or "Location" not in made.headers:
            raise AssertionError(f"{QUICK}: {made.status_code} {made.text[:200]}")
        task = made.json()["data"]
        same = {k: task[k] for k in ("title", "time_zone", "priority", "tags", "list_id")}
        expected = {k: shown[k] for k in same}
        if same != expected or _instant(task["due_date"]) != _instant(shown["due_date"]):
            raise AssertionError(f"{QUICK}: created {task}, the preview showed {shown}")
    return [
        f"{PARSE}, {QUICK}: the {len(TEXT)}-character line reads as its title and "
        f"{len(TOKENS)} tokens in {TIME_ZONE} (200), quick creates what parse shows (201)"
    ]
