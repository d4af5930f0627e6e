"""What real clients (the `caldav` library's functional suite, vdirsyncer + todoman:
tests/interop/test_dav_clients.py) showed wrong in the DAV answers, one focused test each, in
process so a regression is caught by the fast tier."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.dav.test_objects import responses, signed_in
from tests.sharing.helpers import make_list

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"


def _children(node: ET.Element | None) -> list[str]:
    assert node is not None
    return [child.tag for child in node]


def test_resourcetype_holds_its_kinds_directly(client: TestClient, alice: Account) -> None:
    """`D:resourcetype` holds `D:collection` and `C:calendar` themselves: the `caldav`
    library read a second `resourcetype` inside it as no calendar, and listed none."""
    own = make_list(client, alice, "Groceries")
    headers = {**signed_in(client, alice), "Depth": "1"}
    listed = responses(client.request("PROPFIND", "/dav/calendars/", headers=headers))
    kinds = {href: _children(r.find(f".//{D}resourcetype")) for href, r in listed.items()}
    assert kinds == {
        "/dav/calendars/": [f"{D}collection"],
        "/dav/calendars/no-list/": [f"{D}collection", f"{C}calendar"],
        f"/dav/calendars/{own}/": [f"{D}collection", f"{C}calendar"],
    }
    for path, expected in (("/dav/", [f"{D}collection"]),
                           ("/dav/principal/", [f"{D}collection", f"{D}principal"])):  # fmt: skip
        found = responses(client.request("PROPFIND", path, headers={**headers, "Depth": "0"}))
        assert _children(found[path].find(f".//{D}resourcetype")) == expected
