"""App passwords this process verified moments ago, so a DAV client's next requests skip the
check's message; each request's own message still checks the password's row (specs/caldav.md,
"Cost"). Keyed on a digest (no password held); a failed attempt drops every entry of its
username and of its address, so the failure limits' 429 is never skipped.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

TTL_SECONDS = 60.0
MAX_ENTRIES = 4096


@dataclass(frozen=True)
class VerifiedPassword:
    user_id: str
    scope: str
    token_version: int | None
    password_hash: str
    username: str
    client_ip: str


def _key(username: str, password: str, password_hash: str) -> bytes:
    joined = "\0".join((username, password, password_hash)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).digest()


class VerifiedPasswords:
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, VerifiedPassword]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, username: str, password: str, password_hash: str) -> VerifiedPassword | None:
        key = _key(username, password, password_hash)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            valid_until, verified = entry
            if time.monotonic() >= valid_until or verified.username != username:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return verified

    def put(self, password: str, verified: VerifiedPassword) -> None:
        key = _key(verified.username, password, verified.password_hash)
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl, verified)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, username: str, password: str, password_hash: str) -> None:
        with self._lock:
            self._entries.pop(_key(username, password, password_hash), None)

    def failed(self, username: str, client_ip: str) -> None:
        """A failed attempt for `username` from `client_ip`: their entries go."""
        with self._lock:
            gone = [
                key
                for key, (_, verified) in self._entries.items()
                if verified.username == username or verified.client_ip == client_ip
            ]
            for key in gone:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
