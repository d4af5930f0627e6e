"""Password hashing for the built-in accounts (argon2 via pwdlib)."""

from __future__ import annotations

import uuid
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_password_hash = PasswordHash((Argon2Hasher(),))


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Verified against for an unknown email, so a failed sign-in costs the same either way;
    made on first use, not at import (an argon2 hash would slow every CLI command)."""
    return _password_hash.hash(uuid.uuid4().hex)


def hash_password(password: str) -> str:
    return _password_hash.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _password_hash.verify(password, dummy_hash())
        return False
    return _password_hash.verify(password, password_hash)
