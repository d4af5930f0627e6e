"""Web Push subscriptions (issue 72): the public key, a subscription stored once per endpoint
(a constraint's upsert), listed without its keys, deleted; malformed or unsafe subscriptions
refused with the envelope and nothing stored."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.responses import EXAMPLES
from backend.config import Settings
from backend.services.delivery.push_endpoints import UnsafeEndpoint, resolve
from scripts.bench.reminder_peers import Browser, b64, unb64
from tests.conftest import Account, count_rows

FCM = "https://fcm.googleapis.com/fcm/send/cXyZ:APA91bExample"
URL = "/api/push-subscriptions"
# IPv6 forms of inside addresses that `is_global` alone passes (Python 3.11), each wrapping
# 127.0.0.1 or 10.0.0.1, and a site-local and a local-use NAT64 address.
WRAPPED_INSIDE = (
    "64:ff9b::7f00:1",  # NAT64 (RFC 6052)
    "64:ff9b:1::a00:1",  # local-use NAT64 (RFC 8215)
    "2002:7f00:1::1",  # 6to4
    "2002:a00:1::1",
    "::127.0.0.1",  # IPv4-compatible
    "::ffff:0:7f00:1",  # IPv4-translated
    "::ffff:127.0.0.1",  # IPv4-mapped
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo (client 127.0.0.1)
    "fec0::1",  # site-local
)


def subscribe(client: TestClient, who: Account, body: dict[str, Any]) -> Any:
    return client.post(URL, json=body, headers=who.headers)


def test_the_public_key_is_an_uncompressed_p256_point(client: TestClient) -> None:
    answer = client.get("/api/push/public-key")
    assert answer.status_code == 200, answer.text
    point = unb64(answer.json()["data"]["public_key"])
    assert len(point) == 65 and point[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert client.get("/api/push/public-key").json() == answer.json()  # kept, not per request


def test_the_same_endpoint_again_is_the_same_subscription(
    client: TestClient, alice: Account, bob: Account, setup_engine: Engine
) -> None:
    browser = Browser()
    first = subscribe(client, alice, browser.subscription(FCM))
    assert first.status_code == 201, first.text
    made = first.json()["data"]
    assert set(made) == {"id", "endpoint", "created_at"} and made["endpoint"] == FCM
    assert first.headers["Location"] == f"{URL}/{made['id']}"
    renewed = Browser()
    again = subscribe(client, alice, renewed.subscription(FCM))
    assert again.status_code == 200 and again.json()["data"] == made
    with setup_engine.connect() as conn:
        stored = conn.execute(text("SELECT p256dh, auth FROM push_subscriptions")).all()
    assert [tuple(r) for r in stored] == [(renewed.keys["p256dh"], renewed.keys["auth"])]
    # Another account's subscription of the same browser is its own row.
    assert subscribe(client, bob, browser.subscription(FCM)).status_code == 201
    listed = client.get(URL, headers=alice.headers).json()
    assert listed == {"data": [made], "meta": {"count": 1}}  # never the keys


def test_delete_and_another_users_id(client: TestClient, alice: Account, bob: Account) -> None:
    made = subscribe(client, alice, Browser().subscription(FCM)).json()["data"]
    assert client.delete(f"{URL}/{made['id']}", headers=bob.headers).status_code == 404
    assert client.delete(f"{URL}/{made['id']}", headers=alice.headers).status_code == 204
    assert client.delete(f"{URL}/{made['id']}", headers=alice.headers).status_code == 404
    assert client.get(URL, headers=alice.headers).json()["data"] == []


def _bad_subscriptions() -> dict[str, dict[str, Any]]:
    good = Browser().subscription(FCM)
    keys = good["keys"]
    off_curve = b64(b"\x04" + b"\x01" * 64)
    return {
        "http endpoint": {**good, "endpoint": "http://fcm.googleapis.com/fcm/send/x"},
        "private address": {**good, "endpoint": "https://10.0.0.7/push/x"},
        "loopback address": {**good, "endpoint": "https://127.0.0.1:8443/push/x"},
        "link-local address": {**good, "endpoint": "https://[fe80::1]/push/x"},
        "metadata address": {**good, "endpoint": "https://169.254.169.254/latest/"},
        "not a push service": {**good, "endpoint": "https://evil.example.com/push/x"},
        "lookalike host": {**good, "endpoint": "https://fcm.googleapis.com.evil.example/x"},
        "user info": {**good, "endpoint": "https://u:p@fcm.googleapis.com/fcm/send/x"},
        "10 KB endpoint": {**good, "endpoint": FCM + "a" * 10_000},
        "NUL byte": {**good, "endpoint": FCM + "\x00x"},
        "newline": {**good, "endpoint": FCM + "\r\nHost: evil"},
        "ftp": {**good, "endpoint": "ftp://fcm.googleapis.com/x"},
        "port 0": {**good, "endpoint": "https://fcm.googleapis.com:0/fcm/send/x"},
        "port 65536": {**good, "endpoint": "https://fcm.googleapis.com:65536/fcm/send/x"},
        **{
            f"wrapped address {address}": {**good, "endpoint": f"https://[{address}]/push/x"}
            for address in WRAPPED_INSIDE
        },
        "p256dh off the curve": {**good, "keys": {**keys, "p256dh": off_curve}},
        "p256dh compressed": {**good, "keys": {**keys, "p256dh": b64(b"\x02" + b"\x01" * 32)}},
        "p256dh not base64url": {**good, "keys": {**keys, "p256dh": "!" * 87}},
        "auth 15 bytes": {**good, "keys": {**keys, "auth": b64(b"x" * 15)}},
        "auth missing": {**good, "keys": {"p256dh": keys["p256dh"]}},
        "keys missing": {"endpoint": FCM},
        "unknown field": {**good, "extra": 1},
        "expirationTime negative": {**good, "expirationTime": -1},
        "expirationTime text": {**good, "expirationTime": "soon"},
    }


@pytest.mark.parametrize("case", sorted(_bad_subscriptions()))
def test_a_malformed_or_unsafe_subscription_is_refused_and_nothing_stored(
    client: TestClient, alice: Account, setup_engine: Engine, case: str
) -> None:
    answer = subscribe(client, alice, _bad_subscriptions()[case])
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert count_rows(setup_engine, "push_subscriptions") == 0


def test_the_allowlist_takes_subdomains_of_a_suffix(client: TestClient, alice: Account) -> None:
    apple = "https://web.push.apple.com/QGuQyavXutnMbVYb"
    assert subscribe(client, alice, Browser().subscription(apple)).status_code == 201
    bare = "https://push.apple.com/x"  # `.push.apple.com` means its subdomains only
    assert subscribe(client, alice, Browser().subscription(bare)).status_code == 422


def test_the_limit(client: TestClient, alice: Account) -> None:
    from backend.models.push_subscription import PUSH_SUBSCRIPTIONS_PER_USER as LIMIT

    keys = Browser().subscription(FCM)["keys"]
    for n in range(LIMIT):
        body = {"endpoint": f"{FCM}{n}", "keys": keys}
        assert subscribe(client, alice, body).status_code == 201
    over = subscribe(client, alice, {"endpoint": f"{FCM}x", "keys": keys})
    example = EXAMPLES["too_many_push_subscriptions"]
    assert (over.status_code, over.json()) == (example.status, example.example()["value"])
    # Renewing one it has still goes through.
    assert subscribe(client, alice, {"endpoint": f"{FCM}0", "keys": keys}).status_code == 200


def test_resolution_refuses_a_name_that_points_inside(settings: Settings) -> None:
    """When sent to, a host on the allowlist that resolves to a private or loopback address
    is refused (a DNS answer an attacker controls)."""
    inside = settings.model_copy(update={"push_allowed_hosts": ["localhost"]})
    with pytest.raises(UnsafeEndpoint, match="not a public one"):
        resolve("https://localhost/push/x", inside)
    loopback = settings.model_copy(update={"push_allow_loopback": True})
    target = resolve("http://127.0.0.1:9/push/x", loopback)
    assert (target.address, target.port, target.origin) == ("127.0.0.1", 9, "http://127.0.0.1:9")


def test_no_ipv6_form_of_an_inside_address_is_sent_to(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When sent to, an allowed host whose literal or DNS answer is an IPv6 form wrapping a
    private or loopback IPv4 address (NAT64, 6to4, Teredo, IPv4-compatible, -translated) or a
    site-local one is refused, as is a port no connection can use; a public one wrapped so
    passes (the worker's `resolve`, the same check as at registration)."""
    for address in WRAPPED_INSIDE:
        literal = settings.model_copy(update={"push_allowed_hosts": [address]})
        with pytest.raises(UnsafeEndpoint, match="not a public one"):
            resolve(f"https://[{address}]/push/x", literal)
    named = settings.model_copy(update={"push_allowed_hosts": ["push.example.com"]})
    answer: list[str] = []

    def resolver(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        # The system's resolver, answering what a hostile DNS server would.
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)) for a in answer]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    for address in WRAPPED_INSIDE:
        answer[:] = ["2606:4700::1111", address]
        with pytest.raises(UnsafeEndpoint, match="not a public one"):
            resolve("https://push.example.com/push/x", named)
    for public in ("64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"):
        answer[:] = [public]
        sent = resolve("https://push.example.com/push/x", named).address
        assert ipaddress.ip_address(sent) == ipaddress.ip_address(public)
    for port in ("0", "65536", "99999"):
        with pytest.raises(UnsafeEndpoint, match="1-65535"):
            resolve(f"https://push.example.com:{port}/push/x", named)


def test_production_refuses_loopback_and_push_without_a_key() -> None:
    base: dict[str, Any] = {
        "environment": "production",
        "jwt_secret": "x" * 40,
        "database_url": "postgresql://u:p@db/x",
    }
    with pytest.raises(ValueError, match="PUSH_ALLOW_LOOPBACK"):
        Settings(**base, push_allow_loopback=True)
    with pytest.raises(ValueError, match="VAPID_PRIVATE_KEY"):
        Settings(**base, push_enabled=True)
    with pytest.raises(ValueError, match="VAPID_PRIVATE_KEY must be"):
        Settings(**base, vapid_private_key="short")
    assert not Settings(**base).push_on
