"""Sharing's races, with real concurrency (issue 39, "Races"): two requests at once through
the real server (`live_server`: uvicorn in its own process, rate limits on), each thread its
own client and connection, started together at a barrier, many rounds. Each race must end in
one consistent state, whatever the interleaving."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.chat import chatkit, fake_model
from tests.chat.fake_model import FakeModel, Reply, call, say
from tests.conftest import Account

ROUNDS = 8
# A transfer's races: more rounds, on the unlimited server (each round writes several times).
TRANSFER_ROUNDS = 20


@pytest.fixture
def carol(register: Callable[..., Account]) -> Account:
    return register("carol@example.com")


@pytest.fixture
def dave(register: Callable[..., Account]) -> Account:
    return register("dave@example.com")


def _at_once(base_url: str, *requests: tuple[Account, str, str, Any]) -> list[httpx.Response]:
    """Send the requests together, each from its own thread and client (connection)."""
    barrier = threading.Barrier(len(requests))

    def send(request: tuple[Account, str, str, Any]) -> httpx.Response:
        caller, method, path, body = request
        with httpx.Client(base_url=base_url, headers=caller.headers, timeout=60) as http:
            http.get("/api/auth/me")  # connected and warm before the barrier
            barrier.wait()
            return http.request(method, path, json=body)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def _call(base_url: str, caller: Account, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(base_url=base_url, headers=caller.headers, timeout=60) as http:
        answer = http.request(method, path, json=body)
    assert answer.is_success, answer.text
    return answer.json()["data"] if answer.content else None


def _join(base_url: str, owner: Account, member: Account, list_id: int, role: str) -> None:
    made = _call(base_url, owner, "POST", f"/api/lists/{list_id}/invitations", {"role": role})
    _call(base_url, member, "POST", "/api/invitations/accept", {"token": made["token"]})


def _state(engine: Engine, list_id: int) -> tuple[str, dict[str, str], int]:
    """The list's owner, its memberships (member: role) and its invitations, as stored."""
    with engine.connect() as conn:
        owner = conn.execute(
            text("SELECT user_id FROM task_lists WHERE id = :l"), {"l": list_id}
        ).scalar_one()
        rows = conn.execute(
            text("SELECT member_id, role, user_id FROM list_members WHERE list_id = :l"),
            {"l": list_id},
        ).all()
        invitations = conn.execute(
            text("SELECT count(*) FROM list_invitations WHERE list_id = :l"), {"l": list_id}
        ).scalar_one()
    assert all(user_id == owner for _, _, user_id in rows), "a membership in another space"
    return owner, {member: role for member, role, _ in rows}, int(invitations)


def test_two_admins_changing_one_role_end_in_one_of_the_two(
    live_server: str, alice: Account, bob: Account, carol: Account, dave: Account, db_engine: Engine
) -> None:
    list_id = _call(live_server, alice, "POST", "/api/lists", {"name": "Race"})["id"]
    _join(live_server, alice, bob, list_id, "admin")
    _join(live_server, alice, carol, list_id, "admin")
    _join(live_server, alice, dave, list_id, "editor")
    path = f"/api/lists/{list_id}/members/{dave.id}"
    for _ in range(ROUNDS):
        answers = _at_once(
            live_server,
            (bob, "PATCH", path, {"role": "viewer"}),
            (carol, "PATCH", path, {"role": "commenter"}),
        )
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        _, roles, _ = _state(db_engine, list_id)
        assert roles[dave.id] in {"viewer", "commenter"}
        assert roles == {bob.id: "admin", carol.id: "admin", dave.id: roles[dave.id]}


def test_accepting_while_the_invitation_is_revoked_is_one_or_the_other(
    live_server: str, alice: Account, dave: Account, db_engine: Engine
) -> None:
    list_id = _call(live_server, alice, "POST", "/api/lists", {"name": "Race"})["id"]
    outcomes = set()
    for _ in range(ROUNDS):
        made = _call(
            live_server, alice, "POST", f"/api/lists/{list_id}/invitations", {"role": "viewer"}
        )
        accept, revoke = _at_once(
            live_server,
            (dave, "POST", "/api/invitations/accept", {"token": made["token"]}),
            (alice, "DELETE", f"/api/lists/{list_id}/invitations/{made['id']}", None),
        )
        _, roles, invitations = _state(db_engine, list_id)
        # Never both a membership and a live invitation; never neither answer succeeding.
        assert invitations == 0
        if accept.status_code == 200:
            assert revoke.status_code == 404, revoke.text
            assert roles == {dave.id: "viewer"}
            outcomes.add("accepted")
            _call(live_server, dave, "DELETE", f"/api/lists/{list_id}/members/{dave.id}")
        else:
            assert (accept.status_code, revoke.status_code) == (404, 204), (
                accept.text,
                revoke.text,
            )
            assert roles == {}
            outcomes.add("revoked")
    assert outcomes  # (which ones happened depends on the scheduler)


def test_transferring_while_the_new_owner_leaves_is_one_or_the_other(
    unlimited_live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    # Unlimited: alice writes four times a round, more in a minute than the limit allows.
    server = unlimited_live_server
    for round_ in range(TRANSFER_ROUNDS):
        list_id = _call(server, alice, "POST", "/api/lists", {"name": f"Race {round_}"})["id"]
        _call(server, alice, "POST", "/api/tasks", {"title": "t", "list_id": list_id})
        _join(server, alice, bob, list_id, "editor")
        transfer, leave = _at_once(
            server,
            (alice, "POST", f"/api/lists/{list_id}/transfer", {"user_id": bob.id}),
            (bob, "DELETE", f"/api/lists/{list_id}/members/{bob.id}", None),
        )
        owner, roles, _ = _state(db_engine, list_id)
        # Never an owner who is also a member; always exactly one owner. Never a deadlock:
        # the transfer takes both change locks before any row lock, waiting for neither while
        # it holds the other (migration 0036), so the leave's order (bob's, then alice's
        # space) cannot meet it.
        assert owner not in roles
        if transfer.status_code == 200:
            # The leave came second: the leaver is the owner now, and cannot leave.
            assert leave.status_code == 409, leave.text
            assert (owner, roles) == (bob.id, {alice.id: "admin"})
        else:
            # The leave came first: bob is no member to hand the list to.
            assert transfer.status_code == 404, transfer.text
            assert leave.status_code == 204, leave.text
            assert (owner, roles) == (alice.id, {})
        assert _tasks_owners(db_engine, list_id) == {owner}


def _tasks_owners(engine: Engine, list_id: int) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT DISTINCT user_id FROM tasks WHERE list_id = :l"), {"l": list_id}
        ).scalars()
        return set(rows)


# What the new owner (bob) or the old one (alice) writes while alice hands bob her list: in
# bob's own space (a list, a task), in the list as its member, in a list of bob's that alice
# is a member of, and bob handing alice a list of his at the same moment (each of those last
# takes the two spaces' locks in the other order). (caller, method, path, body, the answer):
# `LIST` is the list being handed over, `BOBS` bob's list.
RACERS = {
    "bob creates a list": ("bob", "POST", "/api/lists", {"name": "Bob's {round}"}, 201),
    "bob creates a task": ("bob", "POST", "/api/tasks", {"title": "mine"}, 201),
    "bob adds to the list": ("bob", "POST", "/api/tasks", {"title": "b", "list_id": "LIST"}, 201),
    "alice adds to bob's": ("alice", "POST", "/api/tasks", {"title": "a", "list_id": "BOBS"}, 201),
    "bob hands his over": ("bob", "POST", "/api/lists/BOBS/transfer", {"user_id": "ALICE"}, 200),
}


@pytest.mark.parametrize("racer", list(RACERS))
def test_a_transfer_racing_either_owners_write_never_deadlocks(
    unlimited_live_server: str, alice: Account, bob: Account, db_engine: Engine, racer: str
) -> None:
    """Both requests always succeed (the transfer reads the new owner's lists after it holds
    that space's lock, so a list bob just made is counted and the handed list goes after
    it), and the stored state is both writes'."""
    # Unlimited: each round writes five times or more per account.
    server = unlimited_live_server
    who, method, path, body, expected = RACERS[racer]
    for round_ in range(TRANSFER_ROUNDS):
        list_id = _call(server, alice, "POST", "/api/lists", {"name": f"Race {round_}"})["id"]
        _call(server, alice, "POST", "/api/tasks", {"title": "t", "list_id": list_id})
        _join(server, alice, bob, list_id, "editor")
        bobs = _call(server, bob, "POST", "/api/lists", {"name": f"Bob's list {round_}"})["id"]
        _join(server, bob, alice, bobs, "editor")
        names = {"LIST": list_id, "BOBS": bobs, "ALICE": alice.id}
        racer_path = path.replace("LIST", str(list_id)).replace("BOBS", str(bobs))
        racer_body = {
            key: names.get(value, value.format(round=round_) if isinstance(value, str) else value)
            for key, value in body.items()
        }
        transfer, raced = _at_once(
            server,
            (alice, "POST", f"/api/lists/{list_id}/transfer", {"user_id": bob.id}),
            ({"alice": alice, "bob": bob}[who], method, racer_path, racer_body),
        )
        assert transfer.status_code == 200, transfer.text
        assert raced.status_code == expected, raced.text
        owner, roles, _ = _state(db_engine, list_id)
        assert (owner, roles) == (bob.id, {alice.id: "admin"})
        assert _tasks_owners(db_engine, list_id) == {bob.id}
        if path == "/api/tasks":
            # The new task is in bob's space whichever list it went into: bob's own, the one
            # handed to him (before the transfer, it moved with the list), or bob's list.
            with db_engine.connect() as conn:
                stored = conn.execute(
                    text("SELECT user_id, list_id FROM tasks WHERE id = :t"),
                    {"t": raced.json()["data"]["id"]},
                ).one()
            assert tuple(stored) == (bob.id, racer_body.get("list_id")), racer
        if racer == "bob hands his over":
            assert _state(db_engine, bobs)[:2] == (alice.id, {bob.id: "admin"})
            assert _tasks_owners(db_engine, bobs) <= {alice.id}


# Each round, each thread sends this many writes back to back on its own connection: more
# overlaps per round than one request each would give.
MUTUAL_WRITES = 6
MUTUAL_ROUNDS = 15


def test_two_members_writing_in_each_others_lists_never_deadlock(
    unlimited_live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """Alice is an editor of bob's list and bob of alice's; each writes in the other's list
    at the same moment (PATCH a task, add one). Each write takes the caller's change lock and
    the owner's: taken caller first, the two would be (alice, bob) and (bob, alice), a
    deadlock PostgreSQL breaks by failing one (503 "retry"). Every write must succeed."""
    # Unlimited: each account writes MUTUAL_WRITES times a round, more than the limit allows.
    server = unlimited_live_server
    alices = _call(server, alice, "POST", "/api/lists", {"name": "Alice's"})["id"]
    bobs = _call(server, bob, "POST", "/api/lists", {"name": "Bob's"})["id"]
    _join(server, alice, bob, alices, "editor")
    _join(server, bob, alice, bobs, "editor")
    in_bobs = _call(server, alice, "POST", "/api/tasks", {"title": "a", "list_id": bobs})["id"]
    in_alices = _call(server, bob, "POST", "/api/tasks", {"title": "b", "list_id": alices})["id"]

    def writes(caller: Account, task_id: int, list_id: int, round_: int) -> list[httpx.Response]:
        with httpx.Client(base_url=server, headers=caller.headers, timeout=60) as http:
            http.get("/api/auth/me")  # connected and warm before the barrier
            barrier.wait()
            answers = []
            for n in range(MUTUAL_WRITES):
                if n % 2:
                    body = {"title": f"{round_}.{n}", "list_id": list_id}
                    answers.append(http.post("/api/tasks", json=body))
                else:
                    body = {"title": f"{round_}.{n}", "completed": n % 4 == 0}
                    answers.append(http.patch(f"/api/tasks/{task_id}", json=body))
            return answers

    failed: list[str] = []
    for round_ in range(MUTUAL_ROUNDS):
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            mine = pool.submit(writes, alice, in_bobs, bobs, round_)
            theirs = pool.submit(writes, bob, in_alices, alices, round_)
            answers = mine.result() + theirs.result()
        failed += [f"{a.status_code} {a.text}" for a in answers if not a.is_success]
    assert not failed, f"{len(failed)} of {2 * MUTUAL_WRITES * MUTUAL_ROUNDS}: {failed[:3]}"
    # Both tasks carry the last round's writes; each list holds what its member added.
    with db_engine.connect() as conn:
        added = conn.execute(
            text("SELECT list_id, count(*) FROM tasks WHERE list_id IN (:a, :b) GROUP BY 1"),
            {"a": alices, "b": bobs},
        ).all()
    each = 1 + MUTUAL_ROUNDS * (MUTUAL_WRITES // 2)
    assert dict(added) == {alices: each, bobs: each}


# The other writes a member makes in an owner's space (issue 49), each raced the same way:
# alice does it in bob's list while bob does it in alice's (each an admin of the other's list;
# carol a viewer of both). (write number, the other's list, the task alice or bob added there,
# the tokens of invitations to that list, the invitation made by the last write) -> request.
Mirrored = Callable[[int, int, int, list[str], dict[str, Any]], tuple[str, str, Any]]


def _rename(n: int, list_id: int, task_id: int, tokens: list[str], made: dict[str, Any]) -> Any:
    return "PATCH", f"/api/lists/{list_id}", {"name": f"Renamed {list_id}.{n}.{len(tokens)}"}


def _bulk(n: int, list_id: int, task_id: int, tokens: list[str], made: dict[str, Any]) -> Any:
    priority = ("low", "medium", "high")[n % 3]
    operations = [{"op": "set_priority", "id": task_id, "priority": priority}]
    return "POST", "/api/tasks/bulk", {"operations": operations}


def _invite(n: int, list_id: int, task_id: int, tokens: list[str], made: dict[str, Any]) -> Any:
    # Even: invite (carol's address: the pending one is replaced); odd: revoke it.
    if n % 2 == 0:
        return "POST", f"/api/lists/{list_id}/invitations", {"role": "viewer", "email": "x@e.org"}
    # (An invitation that failed leaves the last one's id: already revoked, a 404.)
    return "DELETE", f"/api/lists/{list_id}/invitations/{made.get('id', 1)}", None


def _role(n: int, list_id: int, task_id: int, tokens: list[str], made: dict[str, Any]) -> Any:
    role = ("commenter", "viewer")[n % 2]
    return "PATCH", f"/api/lists/{list_id}/members/{made['carol']}", {"role": role}


def _leave(n: int, list_id: int, task_id: int, tokens: list[str], made: dict[str, Any]) -> Any:
    # Even: leave the other's list; odd: join it again with one of its invitations.
    if n % 2 == 0:
        return "DELETE", f"/api/lists/{list_id}/members/{made['me']}", None
    return "POST", "/api/invitations/accept", {"token": tokens.pop()}


MIRRORED: dict[str, Mirrored] = {
    "a list's rename": _rename,
    "a bulk request": _bulk,
    "an invitation made and revoked": _invite,
    "a member's role changed": _role,
    "leaving and accepting again": _leave,
}


@pytest.mark.parametrize("write", list(MIRRORED))
def test_two_admins_managing_each_others_lists_never_deadlock(
    unlimited_live_server: str,
    alice: Account,
    bob: Account,
    carol: Account,
    db_engine: Engine,
    write: str,
) -> None:
    """Alice is an admin of bob's list and bob of alice's; each makes the same kind of write
    in the other's list at the same moment. Taken caller first (at entry) and the owner's
    space after it, the two locks would be (alice, bob) and (bob, alice): PostgreSQL breaks
    the deadlock by failing one (503). Each takes both, waiting for neither while it holds
    the other: every write succeeds."""
    server = unlimited_live_server
    request = MIRRORED[write]
    alices = _call(server, alice, "POST", "/api/lists", {"name": "Alice's"})["id"]
    bobs = _call(server, bob, "POST", "/api/lists", {"name": "Bob's"})["id"]
    _join(server, alice, bob, alices, "admin")
    _join(server, bob, alice, bobs, "admin")
    _join(server, alice, carol, alices, "viewer")
    _join(server, bob, carol, bobs, "viewer")
    in_bobs = _call(server, alice, "POST", "/api/tasks", {"title": "a", "list_id": bobs})["id"]
    in_alices = _call(server, bob, "POST", "/api/tasks", {"title": "b", "list_id": alices})["id"]

    def invitations(owner: Account, list_id: int) -> list[str]:
        # Enough for every accept of a round (`_leave`), made by the list's owner beforehand.
        return [
            _call(server, owner, "POST", f"/api/lists/{list_id}/invitations", {"role": "admin"})[
                "token"
            ]
            for _ in range(MUTUAL_WRITES // 2)
        ]

    def writes(caller: Account, list_id: int, task_id: int, tokens: list[str]) -> list[Any]:
        made: dict[str, Any] = {"carol": carol.id, "me": caller.id}
        with httpx.Client(base_url=server, headers=caller.headers, timeout=60) as http:
            http.get("/api/auth/me")  # connected and warm before the barrier
            barrier.wait()
            answers = []
            for n in range(MUTUAL_WRITES):
                method, path, body = request(n, list_id, task_id, tokens, made)
                answer = http.request(method, path, json=body)
                if method == "POST" and path.endswith("/invitations") and answer.is_success:
                    made["id"] = answer.json()["data"]["id"]
                answers.append(answer)
            return answers

    failed: list[str] = []
    for _ in range(MUTUAL_ROUNDS):
        leaving = write == "leaving and accepting again"
        to_bobs = invitations(bob, bobs) if leaving else []
        to_alices = invitations(alice, alices) if leaving else []
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            mine = pool.submit(writes, alice, bobs, in_bobs, to_bobs)
            theirs = pool.submit(writes, bob, alices, in_alices, to_alices)
            answers = mine.result() + theirs.result()
        failed += [f"{a.status_code} {a.text}" for a in answers if not a.is_success]
    assert not failed, f"{len(failed)} of {2 * MUTUAL_WRITES * MUTUAL_ROUNDS}: {failed[:3]}"
    # Each is still what the other's list made it: an admin (or, after leaving and accepting
    # an admin's invitation again, an admin still), and carol a member of both.
    _, alices_roles, _ = _state(db_engine, alices)
    _, bobs_roles, _ = _state(db_engine, bobs)
    assert alices_roles[bob.id] == bobs_roles[alice.id] == "admin"
    assert carol.id in alices_roles and carol.id in bobs_roles


@pytest.fixture(scope="module")
def chat_server(database_url: str) -> Iterator[tuple[str, FakeModel]]:
    """The real server (rate limits off) whose chat model is a fake one (tests/chat)."""
    from tests.conftest import running_server

    for fake in fake_model.serve():
        env = {"CHAT_BASE_URL": fake.url, "CHAT_MODEL": "fake-model", "CHAT_API_KEY": "k"}
        with running_server(database_url, RATE_LIMIT_ENABLED="false", **env) as (url, _, _):
            yield url, fake


def _as_asked(request: dict[str, Any]) -> Reply:
    """The model's step: "add <title> to list <id>" adds a task there (`add_task`), "what do I
    have?" lists the caller's tasks (`list_tasks`: a ChatKit widget of them); the tool's
    result back, the turn ends."""
    last = request["messages"][-1]
    if last["role"] == "tool":
        return say("Done.")
    content = last["content"]
    words = content if isinstance(content, str) else " ".join(p["text"] for p in content)
    if words.startswith("add "):
        return call("add_task", {"title": words, "list_id": int(words.rsplit(" ", 1)[1])})
    return call("list_tasks", {"status": "all"})


def test_two_members_chats_adding_to_each_others_lists_never_deadlock(
    chat_server: tuple[str, FakeModel], alice: Account, bob: Account, db_engine: Engine
) -> None:
    """Alice's chat adds a task to bob's list (MCP `add_task`, after the turn's entry stored
    her message) while bob's adds one to hers: each tool call takes the caller's change lock
    and the list owner's together (`task_tree.spaces_lock`). Every call succeeds."""
    server, fake = chat_server
    fake.steps[:] = [_as_asked] * (4 * MUTUAL_WRITES * MUTUAL_ROUNDS)
    alices = _call(server, alice, "POST", "/api/lists", {"name": "Alice's"})["id"]
    bobs = _call(server, bob, "POST", "/api/lists", {"name": "Bob's"})["id"]
    _join(server, alice, bob, alices, "editor")
    _join(server, bob, alice, bobs, "editor")

    def turns(caller: Account, list_id: int, round_: int) -> list[str]:
        with httpx.Client(base_url=server, headers=caller.headers, timeout=60) as http:
            http.get("/api/auth/me")  # connected and warm before the barrier
            barrier.wait()
            failed = []
            for n in range(MUTUAL_WRITES):
                message = f"add {round_}.{n} to list {list_id}"
                answer = http.post("/api/chat", json={"message": message})
                calls = answer.json()["data"]["tool_calls"] if answer.is_success else []
                if [c["outcome"] for c in calls] != ["ok"]:
                    failed.append(f"{answer.status_code} {answer.text[:300]}")
            return failed

    failed: list[str] = []
    for round_ in range(MUTUAL_ROUNDS):
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            mine = pool.submit(turns, alice, bobs, round_)
            theirs = pool.submit(turns, bob, alices, round_)
            failed += mine.result() + theirs.result()
    assert not failed, f"{len(failed)} of {2 * MUTUAL_WRITES * MUTUAL_ROUNDS}: {failed[:3]}"
    with db_engine.connect() as conn:
        added = conn.execute(
            text("SELECT list_id, count(*) FROM tasks WHERE list_id IN (:a, :b) GROUP BY 1"),
            {"a": alices, "b": bobs},
        ).all()
    each = MUTUAL_ROUNDS * MUTUAL_WRITES
    assert dict(added) == {alices: each, bobs: each}


def test_two_members_pressing_widget_buttons_on_each_others_tasks_never_deadlock(
    chat_server: tuple[str, FakeModel], alice: Account, bob: Account, db_engine: Engine
) -> None:
    """A ChatKit widget lists the caller's tasks, a task of the other's list among them; alice
    presses Complete on the one in bob's list while bob presses it on the one in hers. The
    button's write is by the task's id, in its body: its entry takes the caller's change lock
    and the task's owner's together (migration 0041), not the caller's alone with the owner's
    after it. Every press succeeds."""
    server, fake = chat_server
    fake.steps[:] = [_as_asked] * 4
    alices = _call(server, alice, "POST", "/api/lists", {"name": "Alice's"})["id"]
    bobs = _call(server, bob, "POST", "/api/lists", {"name": "Bob's"})["id"]
    _join(server, alice, bob, alices, "editor")
    _join(server, bob, alice, bobs, "editor")
    in_bobs = _call(server, alice, "POST", "/api/tasks", {"title": "a", "list_id": bobs})["id"]
    in_alices = _call(server, bob, "POST", "/api/tasks", {"title": "b", "list_id": alices})["id"]

    def widget(caller: Account) -> tuple[str, str]:
        """A thread whose agent listed the caller's tasks, and the widget's item."""
        with httpx.Client(base_url=server, headers=caller.headers, timeout=60) as http:
            made = http.post(
                chatkit.PATH,
                json=chatkit.body("threads.create", input=chatkit.user_input("what do I have?")),
            )
        events = chatkit.frames(made.text)
        [shown] = chatkit.done_items(events, "widget")
        return events[0]["thread"]["id"], shown["id"]

    threads = {alice.id: widget(alice), bob.id: widget(bob)}

    def presses(caller: Account, task_id: int) -> list[str]:
        thread_id, item_id = threads[caller.id]
        action = {"type": "task.complete", "payload": {"task_id": task_id}}
        press = chatkit.body(
            "threads.custom_action", thread_id=thread_id, item_id=item_id, action=action
        )
        with httpx.Client(base_url=server, headers=caller.headers, timeout=60) as http:
            http.get("/api/auth/me")  # connected and warm before the barrier
            barrier.wait()
            answers = [http.post(chatkit.PATH, json=press) for _ in range(MUTUAL_WRITES)]
        return [f"{a.status_code} {a.text[:300]}" for a in answers if not a.is_success]

    failed: list[str] = []
    for _ in range(MUTUAL_ROUNDS):
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            mine = pool.submit(presses, alice, in_bobs)
            theirs = pool.submit(presses, bob, in_alices)
            failed += mine.result() + theirs.result()
    assert not failed, f"{len(failed)} of {2 * MUTUAL_WRITES * MUTUAL_ROUNDS}: {failed[:3]}"
    with db_engine.connect() as conn:
        done = conn.execute(
            text("SELECT bool_and(completed) FROM tasks WHERE id IN (:a, :b)"),
            {"a": in_bobs, "b": in_alices},
        ).scalar_one()
    assert done is True
