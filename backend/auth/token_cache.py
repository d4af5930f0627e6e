"""A short-lived cache of verified shared-secret tokens: the signature check is most of a
request's authentication. An entry never outlives the token's `exp`; revocation is checked
against the user row on every request anyway.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from backend.auth.tokens import TokenClaims

TTL_SECONDS = 30.0
MAX_ENTRIES = 4096


class VerifiedTokens:
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, TokenClaims]] = OrderedDict()

    def get(self, token: str) -> TokenClaims | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        valid_until, claims = entry
        if time.time() >= valid_until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return claims

    def put(self, token: str, claims: TokenClaims) -> None:
        if claims.expires_at is None:
            return  # never happens for a verified token (`exp` is required); no entry then
        self._entries[token] = (min(time.time() + self.ttl, claims.expires_at), claims)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
