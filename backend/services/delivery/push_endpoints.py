"""A push endpoint is a URL the worker POSTs to: an SSRF door, checked twice (specs/api-contract.md,
"Push subscriptions"). When stored (`check_endpoint`): https, no user info, an allowlisted host, a
public address literal. When sent to (`resolve`): every address the host resolves to must be public,
and the POST goes to that checked address, so a DNS answer that changes in between cannot steer it.
Only tests may allow loopback."""

from __future__ import annotations

import base64
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from backend.config import Settings
from backend.errors import InvalidRequest

FIELD = "body.endpoint"
_LOOPBACK_NAMES = {"localhost"}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeEndpoint(ValueError):
    """The endpoint may not be sent to (its scheme, host or an address it resolves to)."""


@dataclass(frozen=True)
class Target:
    """Where one push goes: the endpoint's host (TLS name, `Host`), its checked address."""

    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def origin(self) -> str:
        """The endpoint's origin, the VAPID JWT's `aud` (RFC 8292)."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# IPv6 ranges Python's `is_global` (3.11) passes that are no Internet host: site-local (RFC 3879)
# and NAT64's local-use prefix (RFC 8215).
_NOT_GLOBAL_V6 = (ipaddress.IPv6Network("fec0::/10"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# IPv6 forms carrying an IPv4 address in their last 32 bits: NAT64 (RFC 6052), IPv4-compatible (RFC
# 4291) and IPv4-translated (RFC 2765); mapped, 6to4 and Teredo have their own attributes.
_EMBEDDING_V6 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)


def _embedded(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address wraps (none for a plain one)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in _EMBEDDING_V6):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _public(address: IPAddress) -> bool:
    """Globally reachable: `is_global`, not multicast, for IPv6 not site-local, local NAT64 nor
    Teredo, and any IPv4 address it wraps public too (else reached through it)."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    if address.teredo is not None or any(address in n for n in _NOT_GLOBAL_V6):
        return False
    return all(v4.is_global and not v4.is_multicast for v4 in _embedded(address))


def _loopback_allowed(host: str, address: IPAddress | None, settings: Settings) -> bool:
    if not settings.push_allow_loopback:
        return False
    return host in _LOOPBACK_NAMES or (address is not None and address.is_loopback)


def _allowed_host(host: str, settings: Settings) -> bool:
    for allowed in settings.push_allowed_hosts:
        if allowed.startswith(".") and host.endswith(allowed) and len(host) > len(allowed):
            return True
        if host == allowed:
            return True
    return False


def _parts(endpoint: str, settings: Settings) -> tuple[str, str, int, str]:
    """The endpoint's scheme, host, port and path (with its query), or why it is refused."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise UnsafeEndpoint("the endpoint is not a URL (or its port is not 1-65535)") from exc
    if port == 0:
        raise UnsafeEndpoint("the endpoint's port is not 1-65535")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeEndpoint("the endpoint has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeEndpoint("the endpoint may not carry a user name or password")
    address = _address(host)
    loopback = _loopback_allowed(host, address, settings)
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise UnsafeEndpoint("the endpoint must use https")
    if not loopback:
        if address is not None and not _public(address):
            raise UnsafeEndpoint("the endpoint's address is not a public one")
        if not _allowed_host(host, settings):
            raise UnsafeEndpoint(f"{host} is not a push service this server sends to")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, host, port or default, path


def check_endpoint(endpoint: str, settings: Settings) -> None:
    """Refuse what may never be sent to (422); no DNS: it is checked again when sent."""
    try:
        _parts(endpoint, settings)
    except UnsafeEndpoint as exc:
        raise InvalidRequest.at(FIELD, str(exc)) from None


def resolve(endpoint: str, settings: Settings) -> Target:
    """Where to send: the endpoint checked again, its host resolved, every address public
    (else `UnsafeEndpoint`). The system resolver's own timeouts bound the lookup."""
    scheme, host, port, path = _parts(endpoint, settings)
    literal = _address(host)
    if literal is not None:
        return Target(scheme, host, port, str(literal), path)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeEndpoint(f"{host} does not resolve: {type(exc).__name__}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]
    if not addresses:
        raise UnsafeEndpoint(f"{host} does not resolve")
    loopback = _loopback_allowed(host, None, settings)
    for address in addresses:
        if not (_public(address) or (loopback and address.is_loopback)):
            raise UnsafeEndpoint(f"{host} resolves to an address that is not a public one")
    return Target(scheme, host, port, str(addresses[0]), path)


def public_key(settings: Settings) -> str:
    """The VAPID public key for `PushManager.subscribe`: the raw P-256 point, base64url unpadded."""
    point = (
        settings.vapid_key()
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    return base64.urlsafe_b64encode(point).decode().rstrip("=")
