"""App passwords this process verified moments ago (specs/caldav.md, "Cost"), so a DAV client's
next requests skip the check's message: the request enters as the password's account at once,
and its entry checks in the request's own message that the password's row is still there,
with the scope it was verified with (`dav.auth.DavWork(password=...)`), as a JWT's revocation is
checked against the account's token version. A revoked password is refused by its next request.

Keyed on the SHA-256 of the username, the password and the stored hash (no password is held);
a value is what the database said of that exact pair: one account's id, the scope and the
token version, never another username's. Only a successful check is stored (a wrong
password, a refusal, a 429 never are). An entry lives at most `ttl` seconds; the least
recently used go first past `max_entries`. A failed attempt drops every entry of its username
and of its address, so the failure limits' 429 (which a right password gets too) is never
skipped for a username or address that failed in this process since the entry was made.
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
