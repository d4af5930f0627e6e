"""The trusted issuer's JSON Web Key Set, fetched from `JWT_JWKS_URL` and cached. An unknown
`kid` refetches at most once per `JWT_JWKS_MIN_REFETCH_SECONDS` (forged `kid`s cannot make us
hammer the issuer); a failed fetch keeps the last good keys; the document is capped in size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 64 * 1024
MAX_KEYS = 32

# What each accepted algorithm needs of a JWK (RFC 7518 / RFC 8037).
KEY_TYPES: dict[str, dict[str, str]] = {
    "RS256": {"kty": "RSA"},
    "ES256": {"kty": "EC", "crv": "P-256"},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
}


class JwksUnavailable(Exception):
    """No key set has ever been fetched, so no asymmetric token can be checked."""


def key_matches_algorithm(key: dict[str, Any], algorithm: str) -> bool:
    """A JWK may verify `algorithm` only if its type (and curve) fit, its `alg` (when given)
    is that algorithm and its `use` (when given) is `sig`."""
    wanted = KEY_TYPES.get(algorithm)
    if wanted is None:
        return False
    if any(key.get(member) != value for member, value in wanted.items()):
        return False
    if key.get("alg") not in (None, algorithm):
        return False
    return key.get("use") in (None, "sig")


class JwksCache:
    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        min_refetch_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    def get(self, kid: str) -> dict[str, Any] | None:
        """The key with this `kid`, or None if the issuer does not publish it."""
        with self._lock:
            now = self._clock()
            stale = self._keys is None or now - self._fetched_at >= self.cache_seconds
            unknown = self._keys is not None and kid not in self._keys
            if (stale or unknown) and self._may_fetch(now):
                self._refresh(now)
            if self._keys is None:
                raise JwksUnavailable(f"no key set could be fetched from {self.url}")
            return self._keys.get(kid)

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_refetch_seconds

    def _refresh(self, now: float) -> None:
        # On first use: most processes never fetch keys, and httpx costs 0.1 s to import.
        import httpx

        self._attempted_at = now
        try:
            keys = self._fetch()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning(
                "JWKS fetch from %s failed (%s); %s",
                self.url,
                type(exc).__name__,
                "keeping the last good keys" if self._keys is not None else "no keys yet",
            )
            return
        self._keys = keys
        self._fetched_at = now

    def _fetch(self) -> dict[str, dict[str, Any]]:
        import httpx  # loaded by `_refresh`

        # httpx's timeout bounds each network step; the deadline bounds the whole fetch, so a
        # server that drips bytes cannot hold the lock (and the requests behind it) for long.
        deadline = time.monotonic() + self.timeout_seconds
        body = b""
        with (
            httpx.Client(timeout=self.timeout_seconds, follow_redirects=False) as client,
            client.stream("GET", self.url, headers={"Accept": "application/json"}) as resp,
        ):
            resp.raise_for_status()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS document too large")
                if time.monotonic() > deadline:
                    raise ValueError("JWKS fetch exceeded its deadline")
        document = httpx.Response(200, content=body).json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("JWKS document has no 'keys' list")
        keys: dict[str, dict[str, Any]] = {}
        for entry in document["keys"][:MAX_KEYS]:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if any(key_matches_algorithm(entry, alg) for alg in KEY_TYPES) and "d" not in entry:
                keys[entry["kid"]] = entry
        return keys
