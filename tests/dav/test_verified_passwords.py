"""App passwords verified earlier in this process (backend/auth/password_cache.py): a hit
enters at once and its entry refuses a password revoked since; only a right password under
its own username is ever stored; entries are bounded in number and age, and a failure drops
its username's and address's."""

from __future__ import annotations

from fastapi.testclient import TestClient

from backend.auth.password_cache import VerifiedPassword, VerifiedPasswords
from backend.dav.auth import _verified_passwords
from backend.services.statements.tokens import token_hash
from tests.api.test_app_passwords import basic, create, propfind
from tests.conftest import Account

_NEW = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VTODO\r\n"
    b"UID:cached-NAME\r\nSUMMARY:written NAME\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)


def _put(client: TestClient, headers: dict[str, str], name: str) -> int:
    answer = client.put(
        f"/dav/calendars/no-list/{name}.ics",
        content=_NEW.replace(b"NAME", name.encode()),
        headers={**headers, "Content-Type": "text/calendar", "If-None-Match": "*"},
    )
    return answer.status_code


def _titles(client: TestClient, who: Account) -> list[str]:
    return [task["title"] for task in client.get("/api/tasks", headers=who.headers).json()["data"]]


def _verified(
    password: str = "tapw_x", username: str = "u", ip: str = "1.2.3.4"
) -> VerifiedPassword:
    return VerifiedPassword("user", "read_write", 0, "hash-" + password, username, ip)


def test_a_password_revoked_after_its_check_is_refused_by_its_next_request(
    client: TestClient, alice: Account
) -> None:
    made = create(client, alice)
    headers = basic(made["username"], made["password"])
    assert _put(client, headers, "first") == 201  # checked, then stored
    assert _put(client, headers, "second") == 201  # a hit: no check
    assert client.delete(f"/api/app-passwords/{made['id']}", headers=alice.headers).status_code
    refused = client.put(
        "/dav/calendars/no-list/third.ics",
        content=_NEW.replace(b"NAME", b"third"),
        headers={**headers, "Content-Type": "text/calendar"},
    )
    assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"]
    assert _put(client, headers, "fourth") == 401
    assert sorted(t for t in _titles(client, alice) if t.startswith("written")) == [
        "written first",
        "written second",
    ]


def test_signing_out_everywhere_refuses_a_verified_password(
    client: TestClient, alice: Account
) -> None:
    made = create(client, alice)
    headers = basic(made["username"], made["password"])
    assert propfind(client, headers).status_code == 207
    assert client.post("/api/auth/logout-all", headers=alice.headers).status_code == 204
    assert propfind(client, headers).status_code == 401


def test_a_verified_password_under_another_username_is_refused(
    client: TestClient, alice: Account, bob: Account
) -> None:
    mine, his = create(client, alice), create(client, bob)
    assert propfind(client, basic(mine["username"], mine["password"])).status_code == 207
    # Alice's right password with Bob's username never enters as either of them.
    assert propfind(client, basic(his["username"], mine["password"])).status_code == 401
    assert _put(client, basic(his["username"], mine["password"]), "crossed") == 401
    assert "written crossed" not in _titles(client, alice) + _titles(client, bob)


def test_only_a_right_password_is_stored(client: TestClient, alice: Account) -> None:
    made = create(client, alice)
    cache = _verified_passwords(client.app)
    username, right, wrong = made["username"], made["password"], "tapw_" + "z" * 43
    for _ in range(2):
        assert propfind(client, basic(username, wrong)).status_code == 401
        assert cache.get(username, wrong, token_hash(wrong)) is None
    assert cache.get(username, right, token_hash(right)) is None
    assert propfind(client, basic(username, right)).status_code == 207
    stored = cache.get(username, right, token_hash(right))
    assert stored is not None and (stored.user_id, stored.username) == (alice.id, username)


def test_a_read_passwords_write_stays_refused_when_verified(
    client: TestClient, alice: Account
) -> None:
    made = create(client, alice, scope="read")
    headers = basic(made["username"], made["password"])
    assert propfind(client, headers).status_code == 207
    for name in ("one", "two"):
        assert _put(client, headers, name) == 403


def test_an_entry_lives_at_most_its_age() -> None:
    cache = VerifiedPasswords(ttl=0.0)
    cache.put("tapw_x", _verified())
    assert cache.get("u", "tapw_x", "hash-tapw_x") is None and len(cache) == 0


def test_entries_are_bounded_and_keyed_on_the_whole_credential() -> None:
    cache = VerifiedPasswords(max_entries=2)
    for password in ("tapw_a", "tapw_b", "tapw_c"):
        cache.put(password, _verified(password))
    assert len(cache) == 2 and cache.get("u", "tapw_a", "hash-tapw_a") is None
    assert cache.get("u", "tapw_c", "hash-tapw_c") is not None
    assert cache.get("v", "tapw_c", "hash-tapw_c") is None  # another username
    assert cache.get("u", "tapw_c", "hash-other") is None  # another stored hash
    assert cache.get("u", "tapw_b", "hash-tapw_c") is None


def test_a_failure_drops_its_usernames_and_its_addresses_entries() -> None:
    cache = VerifiedPasswords()
    cache.put("tapw_a", _verified("tapw_a", username="u", ip="10.0.0.1"))
    cache.put("tapw_b", _verified("tapw_b", username="v", ip="10.0.0.2"))
    cache.put("tapw_c", _verified("tapw_c", username="w", ip="10.0.0.3"))
    cache.failed("u", "10.0.0.2")
    assert cache.get("u", "tapw_a", "hash-tapw_a") is None
    assert cache.get("v", "tapw_b", "hash-tapw_b") is None
    assert cache.get("w", "tapw_c", "hash-tapw_c") is not None
