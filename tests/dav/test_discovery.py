"""DAV discovery (issue 62): `/.well-known/caldav`, OPTIONS and PROPFIND of the root, the
principal, the calendar home and the collections, signed in with HTTP Basic and an app
password only; lists through the access relation; bad XML and bad credentials are 4xx."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from base64 import b64encode
from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_app_passwords import basic, create
from tests.conftest import Account
from tests.sharing.helpers import join, make_list

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"


def _signed_in(client: TestClient, who: Account, scope: str = "read_write") -> dict[str, str]:
    made = create(client, who, f"client {scope}", scope=scope)
    return basic(made["username"], made["password"])


def _propfind(client: TestClient, path: str, headers: dict[str, str], depth: str = "0") -> Any:
    return client.request("PROPFIND", path, headers={**headers, "Depth": depth})


def _responses(answer: Any) -> dict[str, ET.Element]:
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    return {r.findtext(f"{D}href") or "": r for r in root.iter(f"{D}response")}


def test_well_known_redirects_to_the_dav_root(client: TestClient) -> None:
    for method in ("GET", "PROPFIND"):
        answer = client.request(method, "/.well-known/caldav", follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (301, "/dav/")


def test_options_says_what_the_server_speaks(client: TestClient, alice: Account) -> None:
    # Signed in, as every DAV request is (a stranger learns not even which paths exist).
    assert client.options("/dav/").status_code == 401
    answer = client.options("/dav/", headers=_signed_in(client, alice))
    assert answer.status_code == 200
    assert "calendar-access" in answer.headers["DAV"]
    assert answer.headers["Allow"] == "OPTIONS, PROPFIND"


def test_discovery_finds_principal_home_and_every_readable_list(
    client: TestClient, alice: Account, bob: Account
) -> None:
    own = make_list(client, alice, "Groceries")
    client.patch(f"/api/lists/{own}", json={"color": "#2e7d32"}, headers=alice.headers)
    shared = make_list(client, bob, "Team")
    join(client, bob, alice, shared, "viewer")
    make_list(client, bob, "Bob's own")
    headers = _signed_in(client, alice)
    root = _responses(_propfind(client, "/dav/", headers))["/dav/"]
    principal = root.findtext(f".//{D}current-user-principal/{D}href")
    assert principal == "/dav/principal/"
    found = _responses(_propfind(client, principal, headers))[principal]
    home = found.findtext(f".//{C}calendar-home-set/{D}href")
    assert home == "/dav/calendars/"
    listed = _responses(_propfind(client, home, headers, depth="1"))
    assert set(listed) == {
        home, "/dav/calendars/no-list/", f"/dav/calendars/{own}/", f"/dav/calendars/{shared}/"
    }  # fmt: skip
    mine = listed[f"/dav/calendars/{own}/"]
    assert mine.findtext(f".//{D}displayname") == "Groceries"
    assert mine.find(f".//{D}resourcetype/{C}calendar") is not None
    comps = mine.findall(f".//{C}supported-calendar-component-set/{C}comp")
    assert [c.get("name") for c in comps] == ["VTODO"]
    assert mine.findtext(".//{http://apple.com/ns/ical/}calendar-color") == "#2E7D32"
    theirs = listed[f"/dav/calendars/{shared}/"]
    privileges = theirs.findall(f".//{D}current-user-privilege-set/{D}privilege/*")
    assert [p.tag for p in privileges] == [f"{D}read"]  # a viewer reads only
    owned = mine.findall(f".//{D}current-user-privilege-set/{D}privilege/*")
    assert {p.tag for p in owned} >= {f"{D}read", f"{D}write-content", f"{D}write-properties"}
    # A `read` password: read only, whatever the role.
    reader = _signed_in(client, alice, "read")
    read_only = _responses(_propfind(client, f"/dav/calendars/{own}/", reader))
    tags = read_only[f"/dav/calendars/{own}/"].findall(f".//{D}privilege/*")
    assert [p.tag for p in tags] == [f"{D}read"]


def test_a_list_the_caller_may_not_read_is_the_missing_ones_404(
    client: TestClient, alice: Account, bob: Account
) -> None:
    theirs = make_list(client, bob, "Private")
    headers = _signed_in(client, alice)
    stranger = _propfind(client, f"/dav/calendars/{theirs}/", headers)
    missing = _propfind(client, "/dav/calendars/999999/", headers)
    assert stranger.status_code == missing.status_code == 404
    assert stranger.content == missing.content
    assert _propfind(client, "/dav/calendars/nonsense/", headers).content == missing.content


def test_only_basic_with_an_app_password_signs_in(client: TestClient, alice: Account) -> None:
    made = create(client, alice)
    bodies = set()
    for headers in (
        {},
        alice.headers,  # a bearer token
        basic(made["username"], alice.password),  # the account's password
        basic("someone-else", made["password"]),
        basic(
            made["username"],
            made["password"][:-1] + ("B" if made["password"].endswith("A") else "A"),
        ),
        {"Authorization": "Basic %%%"},
        {"Authorization": "Basic " + b64encode(b"no colon").decode()},
    ):
        answer = _propfind(client, "/dav/", headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith('Basic realm="')
        assert answer.headers["content-type"].startswith("application/xml")
        bodies.add(answer.content)
    assert len(bodies) == 1  # one answer for every reason


def test_failed_sign_ins_are_rate_limited_per_username_and_address(
    client: TestClient, alice: Account
) -> None:
    made = create(client, alice)
    wrong = basic(made["username"], "tapw_" + "x" * 43)
    seen = []
    for _ in range(11):
        answer = _propfind(client, "/dav/", wrong)
        seen.append(answer.status_code)
    assert seen[:10] == [401] * 10 and seen[10] == 429, seen
    assert "dav-auth-user" in answer.headers["RateLimit-Policy"]
    # Past the limit, the right password is refused too until the window ends, from there.
    right = _propfind(client, "/dav/", basic(made["username"], made["password"]))
    assert right.status_code == 429 and "Retry-After" in right.headers
    # The username is the account id every co-member sees: their guesses from their address
    # never lock the owner's devices out elsewhere (the limit is per username and address).
    # (No `with`: the session's app is already started; this client only sends from there.)
    elsewhere = TestClient(client.app, client=("192.0.2.7", 50000))
    owner = _propfind(elsewhere, "/dav/", basic(made["username"], made["password"]))
    assert owner.status_code == 207, owner.text


def test_bad_xml_is_a_4xx_with_a_dav_error_body(client: TestClient, alice: Account) -> None:
    headers = _signed_in(client, alice)
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><D:propfind xmlns:D="DAV:">'
        b"<D:prop><D:displayname>&b;</D:displayname></D:prop></D:propfind>"
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop>&e;</D:prop></D:propfind>'
    )
    deep = b'<D:propfind xmlns:D="DAV:">' + b"<a>" * 100 + b"</a>" * 100 + b"</D:propfind>"
    for body in (b"<not xml", laughs, external, deep, b'<D:other xmlns:D="DAV:"/>', b"\x00"):
        answer = client.request("PROPFIND", "/dav/", content=body, headers=headers)
        assert answer.status_code == 400, (body, answer.text)
        assert b"<D:error" in answer.content
    big = client.request("PROPFIND", "/dav/", content=b" " * (300 * 1024), headers=headers)
    assert big.status_code == 413
    depth = client.request("PROPFIND", "/dav/", headers={**headers, "Depth": "infinity"})
    assert depth.status_code == 403 and b"<D:propfind-finite-depth />" in depth.content
    odd = client.request("PROPFIND", "/dav/", headers={**headers, "Depth": "2"})
    assert odd.status_code == 422 and b"<D:error" in odd.content


def test_a_named_property_it_lacks_is_a_404_propstat(client: TestClient, alice: Account) -> None:
    headers = _signed_in(client, alice, "read")
    body = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
        b"<D:current-user-principal/><D:getetag/></D:prop></D:propfind>"
    )
    answer = client.request("PROPFIND", "/dav/", content=body, headers={**headers, "Depth": "0"})
    [response] = _responses(answer).values()
    statuses = {s.findtext(f"{D}status"): s for s in response.iter(f"{D}propstat")}
    assert set(statuses) == {"HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"}
    assert statuses["HTTP/1.1 404 Not Found"].find(f".//{D}getetag") is not None
