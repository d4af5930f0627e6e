"""Every command on the site runs: the shell blocks of the Get started pages and the guides
(and the README's first task) are run as written, in order, one shell per page, against a live
server, so a page can never drift from the API.

A `bash` block runs unless the line right above it is `<!-- not run: <reason> -->` (it starts a
server, needs a cluster or a model provider, ...): the reason names what runs it instead. In
these shells `curl` fails on an HTTP error (`--fail-with-body`) unless the call shows the status
line itself (`-i`), which is how a page shows an expected 401 or 503. Each page runs with
`BASE_URL` (its own `BASE_URL=http://127.0.0.1:8000` line is pointed at the test's server) and
`TOKEN` (a fresh user's token) set, the state the pages tell a reader to start from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, make_token, python_on_path
from tests.docs.pages import blocks, runnable

DOCS = ROOT / "docs"
# The pages whose commands talk to a server; the Kubernetes walk-through (a link to
# deploy/README.md) is run by tests/deploy.
PAGES = sorted(
    page
    for folder in ("get-started", "guides")
    for page in (DOCS / folder).glob("*.md")
    if not page.is_symlink()
)
# In the pages' shells: curl fails on an HTTP error, unless it prints the status line (-i).
PRELUDE = r"""
curl() {
  local arg
  for arg in "$@"; do
    case "$arg" in --include|-[a-zA-Z]*i*) command curl "$@"; return;; esac
  done
  command curl --fail-with-body "$@"
}
"""


def readme_first_task() -> str:
    """The README's first curl (a plain fence, as GitHub shows it), under "Your first task"."""
    section = (ROOT / "README.md").read_text().split("## Your first task", 1)[1]
    return section.split("```\n", 2)[1]


def run_script(
    script: str, base_url: str, tmp_path: Path, token: str
) -> subprocess.CompletedProcess[str]:
    script = script.replace("BASE_URL=http://127.0.0.1:8000", f"BASE_URL={base_url}")
    # `python` as the pages spell it: the interpreter running the tests (a venv's python).
    bin_dir = python_on_path(tmp_path / "bin")
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", PRELUDE + script],
        cwd=ROOT,
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "BASE_URL": base_url,
            "TOKEN": token,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def fresh_token() -> str:
    """A new user's token (its account is provisioned on first use)."""
    return make_token(sub=f"docs-{uuid.uuid4().hex[:12]}")


def bodies(out: str) -> list[Any]:
    """Every `{"data": ...}` body in the output (curl -s prints them back to back)."""
    decoder = json.JSONDecoder()
    found = []
    for start in (m.start() for m in re.finditer(re.escape('{"data":'), out)):
        try:
            found.append(decoder.raw_decode(out, start)[0]["data"])
        except ValueError:
            continue
    return found


def check_curl(out: str) -> None:
    """First task from curl: each step used the id the API gave back."""
    created = re.search(r"^created task (\d+)$", out, re.MULTILINE)
    assert created, out
    task_id = created.group(1)
    assert f'"id":{task_id},' in out  # toggled and updated that task
    assert '"completed":true' in out and '"description":"2 litres"' in out
    assert "HTTP/1.1 204 " in out, out  # deleted it (curl -si: no newline before it)
    # Lists, subtasks and manual order: Bread moved right after Milk, which has one subtask;
    # the subtree is Milk then Oat milk under it; deleting the list is the second 204.
    pages = [b for b in bodies(out) if isinstance(b, list)]
    titled = {tuple(t["title"] for t in page): page for page in pages}
    milk, bread = titled[("Milk", "Bread")]
    assert milk["list_id"] == bread["list_id"] is not None
    assert (milk["subtask_count"], bread["subtask_count"]) == (1, 0)
    assert milk["position"] < bread["position"]
    parent, oat = titled[("Milk", "Oat milk")]
    assert parent["id"] == oat["parent_id"] == milk["id"]
    assert oat["list_id"] == milk["list_id"]
    assert out.count("HTTP/1.1 204 ") == 2, out
    # scripts/walkthrough.sh checked every status itself; api.sh's update answered.
    assert '"description":"2 litres"' in out.rsplit("Buy milk", 1)[1]


def check_tasks(out: str) -> None:
    # PUT changed the fields sent and kept the others; an empty PUT changes nothing (422).
    put = next(b for b in bodies(out) if isinstance(b, dict) and b.get("description"))
    assert (put["title"], put["priority"], put["tags"]) == ("Write the Q3 report", "high", ["work"])
    assert "HTTP/1.1 422 " in out, out
    stats = [b for b in bodies(out) if isinstance(b, dict) and "by_priority" in b]
    assert stats and stats[0]["completed"] == 1, out  # the bulk completed the first task
    # The ETag example: created another task and changed it under If-Match.
    assert "HTTP/1.1 200 " in out and '"priority":"high"' in out, out
    # The change feed from the listing's cursor: the deletion, with no task.
    changes = [b for b in bodies(out) if isinstance(b, list) and b and "event_id" in b[0]]
    assert [(c["type"], c["task"]) for c in changes[-1]] == [("deleted", None)], out


def check_recurrence(out: str) -> None:
    # The preview across the change to summer time, then the next occurrence created by the
    # completion, naming the completed one.
    assert (
        '"occurrences":["2030-04-01T07:00:00Z","2030-04-04T07:00:00Z","2030-04-08T07:00:00Z"]'
        in out
    )
    recurring = re.search(r'"task_id":(\d+),"recurrence":"FREQ=WEEKLY;BYDAY=MO,TH"', out)
    assert recurring, out
    assert '"due_date":"2030-04-01T07:00:00Z"' in out
    assert f'"previous_task_id":{recurring.group(1)}' in out


def check_lists(out: str) -> None:
    pages = [b for b in bodies(out) if isinstance(b, list)]
    titled = {tuple(t.get("title", t.get("name")) for t in page): page for page in pages}
    milk, bread = titled[("Milk", "Bread")]
    assert milk["subtask_count"] == 1 and milk["position"] < bread["position"]
    assert ("Milk", "Oat milk") in titled  # the subtree
    assert titled[("Groceries",)][0]["color"] == "#2e7d32"
    assert "HTTP/1.1 204 " in out


def check_sharing(out: str) -> None:
    """Two accounts: Sam accepts an editor's invitation, assigns itself, sets its own
    reminders (the owner's stay none) and comments; a viewer's write is 403, a removed
    member's read 404 and its assignment gone; the list is then handed to Sam and its old
    owner leaves. The bodies come in the page's order."""
    (
        invitation, pending, accepted, listed, seen, assigned, reminded, owners, comment, mine,
        by_id, comments, members, downgraded, after_removal, accepted_again, handed,
        members_after,
    ) = bodies(out)  # fmt: skip
    assert (invitation["role"], invitation["status"]) == ("editor", "pending")
    assert invitation["token"] and [i["id"] for i in pending] == [invitation["id"]]
    assert "token" not in pending[0]  # shown once, in the create's answer
    assert (accepted["name"], accepted["role"]) == ("Team", "editor")
    assert [(lst["name"], lst["role"]) for lst in listed] == [("Team", "editor")]
    owner, sam = members[0]["user_id"], members_after[0]["user_id"]
    # Sam sees the owner's task, in the owner's space (its user_id).
    assert [(t["title"], t["user_id"]) for t in seen] == [("Print the flyer", owner)]
    assert assigned["assignees"] == [sam] and comment["author_id"] == sam
    # Reminders are private: Sam's are its own, the owner's task shows the owner's (none).
    assert reminded["reminders"] == [{"at": "2999-01-01T08:00:00Z"}]
    assert owners["id"] == reminded["id"] and owners["reminders"] == []
    assert [t["id"] for t in mine] == [t["id"] for t in by_id] == [assigned["id"]]
    assert [c["body"] for c in comments] == ["On it: 100 copies by Friday."]
    assert [(m["role"], m["email"]) for m in members] == [
        ("owner", None), ("editor", "sam@example.com"),
    ]  # fmt: skip
    assert downgraded["role"] == "viewer"
    assert re.findall(r"HTTP/1.1 (\d+)", out) == ["403", "204", "404", "204"], out
    assert '"code":"FORBIDDEN"' in out
    assert after_removal["assignees"] == []  # removing Sam unassigned it
    assert accepted_again["role"] == "editor"
    assert handed["role"] == "admin" and handed["user_id"] == sam  # in Sam's space now
    assert [(m["role"], m["user_id"]) for m in members_after] == [("owner", sam)]


def check_authentication(out: str) -> None:
    assert '"email":"grace@example.com"' in out
    assert '"token_type":"bearer"' in out  # the form's bare OAuth2 answer
    statuses = re.findall(r"HTTP/1.1 (\d+)", out)
    assert statuses == ["204", "401"], out  # logout-all, then the same token refused


def check_mcp(out: str) -> None:
    assert '"name":"add_task"' in out.replace(" ", "")
    assert "Buy milk" in out.split('"id":3', 1)[1], out  # listed after the tool added it


def check_chat(out: str) -> None:
    assert '{"data":[]' in out  # a new user has no conversations
    assert "HTTP/1.1 503 " in out and "CHAT_NOT_CONFIGURED" in out
    # ChatKit's threads.list, served without a model: no threads yet.
    assert bodies(out).count([]) == 2 and '"has_more":false' in out


def check_events(out: str) -> None:
    changes = [b for b in bodies(out) if isinstance(b, list) and b and "event_id" in b[0]]
    assert [(c["type"], c["task"]["title"]) for c in changes[-1]] == [
        ("created", "Seen by the feed")
    ]


def check_live(out: str) -> None:
    """`follow` from the listing's cursor printed the create as an event, with its id."""
    events = [line for line in out.splitlines() if line.startswith("data: ")]
    assert [json.loads(e[6:])["task"]["title"] for e in events] == ["Milk"], out
    assert any(line.startswith("id: ") for line in out.splitlines()), out


def check_operations(out: str) -> None:
    assert out.rstrip().endswith("200"), out  # /metrics outside production
    assert '"status":"ok"' in out.replace(" ", "")


def check_calendar(out: str) -> None:
    """A feed with the page's task as a weekly event in its zone with its alarm, a 304 to its
    own tag, and the rotated and revoked URLs dead."""
    assert out.count("BEGIN:VCALENDAR") == 1 and "/api/calendar/" in out
    assert "SUMMARY:Team sync" in out and "DTSTART;TZID=Europe/Berlin:" in out
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO" in out and "TRIGGER:-PT15M" in out
    assert re.search(r"^304$", out, re.MULTILINE), out
    assert re.findall(r"HTTP/1.1 (\d+)", out) == ["404", "404"], out
    assert "HTTP/1.1 204" not in out  # the revoke prints nothing


def check_caldav(out: str) -> None:
    """The well-known redirect, the home with the page's list and the tasks in no list as
    VTODO calendars, a sync's token, the password's last use, and the revoked password's
    401."""
    assert "301 http://127.0.0.1" in out and "/dav/" in out, out
    assert "<D:sync-token>urn:x-task-api:sync:no-list:" in out, out
    assert "Groceries" in out and "Tasks without a list" in out and 'name="VTODO"' in out, out
    assert re.search(r"^\d{4}-\d\d-\d\dT", out, re.MULTILINE), out  # last_used_at
    assert re.findall(r"HTTP/1.1 (\d+)", out) == ["401"], out  # the revoked password


def check_trash(out: str) -> None:
    """The delete, the trash with the task's one subtask, the restore, then the purge."""
    lines = [line.strip() for line in out.splitlines()]
    assert lines[-4].endswith("204") and lines[-3:] == ["1", "Plan the trip", "204"], out


# What each page's commands must have shown, beyond exiting 0.
def check_attachments(out: str) -> None:
    """A file uploaded, listed, downloaded byte for byte (`cmp`), the caller's limits."""
    found = bodies(out)
    listed = [b for b in found if isinstance(b, list) and b]
    assert listed and listed[0][0]["filename"] == "receipt.txt", out
    assert listed[0][0]["size"] == len("Paid in full\n"), out
    assert any(isinstance(b, dict) and "quota_bytes" in b for b in found), out


def check_quick_add(out: str) -> None:
    """The preview read every kind of token at its code-point offsets and created nothing; the
    quick add created that task; rejecting "Monday" made Friday the due, a day; a line of only
    tokens was 422."""
    found = [b for b in bodies(out) if isinstance(b, dict)]
    previews = [b for b in found if "tokens" in b]
    preview = previews[0]
    assert preview["task"]["title"] == "Buy milk", out
    assert preview["task"]["due_date"] == "2030-11-29T16:00:00Z", out
    assert [(t["kind"], t["start"], t["end"]) for t in preview["tokens"]] == [
        ("due", 9, 21), ("list", 22, 27), ("tag", 28, 36), ("priority", 37, 42),
    ]  # fmt: skip
    created = [b for b in found if "id" in b and "all_day" in b]
    milk, report = created
    assert (milk["title"], milk["list_id"]) == ("Buy milk", preview["task"]["list_id"]), out
    assert (milk["tags"], milk["priority"], milk["all_day"]) == (["errands"], "high", False)
    monday = previews[1]["tokens"][0]
    assert (monday["text"], monday["start"], monday["value"]) == ("Monday", 8, "2030-12-02")
    assert (report["title"], report["due_date"], report["all_day"]) == (
        "Prepare Monday report for", "2030-11-29", True,
    )  # fmt: skip
    assert re.findall(r"HTTP/1.1 (\d+)", out) == ["422"], out


def check_reminders(out: str) -> None:
    """The VAPID public key (65 bytes, base64url) and the settings as the PATCH left them."""
    found = bodies(out)
    keys = [b["public_key"] for b in found if isinstance(b, dict) and "public_key" in b]
    assert keys and len(keys[0]) == 87, out
    patched = [b for b in found if isinstance(b, dict) and b.get("time_zone") == "Europe/Berlin"]
    assert patched and patched[0]["push"] is True and patched[0]["email"] is False, out


def check_import_export(out: str) -> None:
    """The export: its file name, its members, and a manifest counting the one task."""
    assert re.search(
        r'content-disposition: attachment; filename="tasks-export-\d{4}-\d\d-\d\d\.zip"', out, re.I
    ), out
    for member in ("manifest.json", "tasks.jsonl", "tasks.ics", "notification_settings.json"):
        assert member in out, out
    manifest = json.JSONDecoder().raw_decode(out, out.index('{\n  "format"'))[0]
    assert manifest["format"] == "task-api-export" and manifest["counts"]["tasks"] == 1, out


CHECKS = {
    "get-started/curl.md": check_curl,
    "guides/tasks.md": check_tasks,
    "guides/recurrence.md": check_recurrence,
    "guides/lists.md": check_lists,
    "guides/sharing.md": check_sharing,
    "guides/authentication.md": check_authentication,
    "guides/mcp.md": check_mcp,
    "guides/chat.md": check_chat,
    "guides/events.md": check_events,
    "guides/live.md": check_live,
    "guides/operations.md": check_operations,
    "guides/calendar.md": check_calendar,
    "guides/caldav.md": check_caldav,
    "guides/trash.md": check_trash,
    "guides/attachments.md": check_attachments,
    "guides/reminders.md": check_reminders,
    "guides/quick-add.md": check_quick_add,
    "guides/import-export.md": check_import_export,
}


def page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def test_every_page_with_commands_is_checked() -> None:
    with_commands = {page_id(p) for p in PAGES if runnable(p.read_text())}
    assert with_commands == set(CHECKS), "a page's commands run without checks, or vice versa"


def test_every_block_names_its_language_and_a_skipped_one_its_reason() -> None:
    """An unlabelled or `sh` block would silently not run: every block says what it is."""
    problems = []
    for page in [*PAGES, DOCS / "index.md"]:
        for block in blocks(page.read_text()):
            if block.info in ("", "sh", "shell"):
                problems.append(f"{page_id(page)}: a ```{block.info} block: say bash (or text)")
            if block.not_run is not None and block.info != "bash":
                problems.append(f"{page_id(page)}: 'not run' above a {block.info} block")
    assert not problems, problems


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p.read_text())], ids=page_id)
def test_page_commands_run_against_a_live_server(
    page: Path, unlimited_live_server: str, tmp_path: Path
) -> None:
    """Rate limits off: the pages sign up and write more in a minute, together, than the
    sign-up limit per address allows on a server other tests share."""
    script = "\n".join(runnable(page.read_text()))
    assert "ID=1" not in script  # each step uses the id the API gave back
    result = run_script(script, unlimited_live_server, tmp_path, fresh_token())
    assert result.returncode == 0, result.stdout + result.stderr
    CHECKS[page_id(page)](result.stdout)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_first_task_runs(unlimited_live_server: str, tmp_path: Path) -> None:
    result = run_script(readme_first_task(), unlimited_live_server, tmp_path, "")
    assert result.returncode == 0, result.stdout + result.stderr
    created = [b for b in bodies(result.stdout) if isinstance(b, dict)]
    assert created[0]["title"] == "Buy milk"
    listed = [b for b in bodies(result.stdout) if isinstance(b, list)]
    assert [t["title"] for t in listed[0]] == ["Buy milk"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_command_that_no_longer_works_fails_its_page(
    unlimited_live_server: str, tmp_path: Path
) -> None:
    """Deliberate breaks: a route the API no longer has, and a field it refuses, each fail
    the page's shell, though curl itself reached the server and printed the error."""
    script = "\n".join(runnable((DOCS / "guides" / "tasks.md").read_text()))
    for broken, shown in (
        # No such route (it reads as a task id, 422): curl prints the error and fails the shell.
        (script.replace("/api/tasks/stats", "/api/tasks/statistics"), '"path.task_id"'),
        # A 422 where the page reads the created task's id: the id is not there.
        (
            script.replace('"priority": "high", "due_date"', '"priority": "urgent", "due_date"'),
            "KeyError: 'data'",
        ),
    ):
        assert broken != script
        result = run_script(broken, unlimited_live_server, tmp_path, fresh_token())
        assert result.returncode != 0, result.stdout
        assert shown in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_block_parser_sees_markers_and_fences() -> None:
    text = (
        "intro\n\n<!-- not run: it starts a server -->\n```bash\nserve\n```\n\n"
        "```bash\ncurl one\n```\n\n   ```text\n   FOO=1\n   ```\n\n```\nbare\n```\n"
    )
    found = blocks(text)
    assert [(b.info, b.body, b.not_run) for b in found] == [
        ("bash", "serve\n", "it starts a server"),
        ("bash", "curl one\n", None),
        ("text", "FOO=1\n", None),
        ("", "bare\n", None),
    ]
    assert runnable(text) == ["curl one\n"]
