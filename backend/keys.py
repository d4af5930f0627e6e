"""The server's own keys: a VAPID key (Web Push, RFC 8292) as VAPID_PRIVATE_KEY holds it, and the
secrets development mode makes once and keeps in the data folder."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec


def vapid_private_key(encoded: str) -> ec.EllipticCurvePrivateKey:
    """A VAPID private key from base64url of its raw 32-byte scalar."""
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if len(raw) != 32:
            raise ValueError
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except (ValueError, binascii.Error):
        raise ValueError(
            "VAPID_PRIVATE_KEY must be base64url of a raw 32-byte P-256 private key; "
            "generate one with `python -m backend push-key`"
        ) from None


def new_vapid_key() -> str:
    """A new VAPID private key, as VAPID_PRIVATE_KEY holds it."""
    scalar = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return base64.urlsafe_b64encode(scalar.to_bytes(32, "big")).decode().rstrip("=")


def vapid_public_key(private: str) -> str:
    """The public key of a VAPID_PRIVATE_KEY: its uncompressed point, base64url unpadded."""
    point = vapid_private_key(private).public_key().public_numbers()
    raw = b"\x04" + point.x.to_bytes(32, "big") + point.y.to_bytes(32, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@lru_cache
def development_secret(
    path: Path, new: Callable[[], str] = lambda: secrets.token_urlsafe(48)
) -> str:
    # Kept so tokens survive restarts and every process agrees: written whole, then linked into
    # place, so of two processes starting at once the first link wins and both read it.
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".secret-") as draft:
            draft.write(new())
            draft.flush()
            os.chmod(draft.name, 0o600)
            with contextlib.suppress(FileExistsError):
                os.link(draft.name, path)
    return path.read_text().strip()
