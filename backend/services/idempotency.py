"""Idempotency-Key for creating requests (draft-ietf-httpapi-idempotency-key-header;
specs/statements.md). The write and its recorded answer commit or roll back together: `begin` queues
the key's check ahead of the write, under a transaction-level advisory lock on (user, key) so a
second request waits, then replays (a lock that ends with the transaction keeps PgBouncer's
transaction pooling working); a replay refuses the write and sends the answer in a notice, not an
error that would log the body. `record` stores the response with the COMMIT and deletes a bounded
batch of the caller's expired rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from backend.db.scope import OWNER, Scoped, Stmt, owned
from backend.db.sender import Outcome, Sender
from backend.errors import IdempotencyKeyMismatch
from backend.models import IdempotencyKey

# Expired rows deleted per recorded response: enough to outpace new keys, cheap for a request.
PRUNE_BATCH = 100
# Namespaces the advisory-lock hash, should anything else ever use advisory locks.
_LOCK_NAMESPACE = b"task-api:idempotency-key\0"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class Replayed(Exception):
    """The key's record answers this request: its write did not run."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("Idempotency-Key replayed")
        self.stored = stored


def fingerprint(method: str, route: str, payload: Any) -> str:
    """SHA-256 of method, route and the body's canonical JSON: any other is another request."""
    canonical = json.dumps(
        [method.upper(), route, payload], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_id(user_id: str, key: str) -> int:
    digest = hashlib.sha256(
        _LOCK_NAMESPACE + user_id.encode("utf-8", "surrogatepass") + b"\0" + key.encode()
    ).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_KEYS = IdempotencyKey.__table__.c  # type: ignore[attr-defined]
# The key's check (migrations 0015, 0020) and the codes it refuses a write with.
_CHECK = text("SELECT task_api_idempotency_key(:owner, :key, :lock, :fingerprint)")
_MISMATCH, _REPLAY = "TA422", "TA208"


def _expired_batch(limit: int, *, owned_only: bool) -> Any:
    """Delete up to `limit` expired records: the caller's (`owned_only`) or anyone's."""
    expired = select(col(IdempotencyKey.user_id), col(IdempotencyKey.key))
    gone = delete(IdempotencyKey)
    if owned_only:
        expired, gone = _owned(expired), _owned(gone)
    expired = (
        expired.where(col(IdempotencyKey.expires_at) < func.now())
        .order_by(col(IdempotencyKey.expires_at))
        .limit(limit)
        # Concurrent pruners split the work instead of queueing on each other's rows.
        .with_for_update(skip_locked=True)
    )
    return gone.where(tuple_(col(IdempotencyKey.user_id), col(IdempotencyKey.key)).in_(expired))


def _owned(statement: Stmt) -> Stmt:
    """A statement on `idempotency_keys`, scoped to the caller's records."""
    return owned(statement, _KEYS.user_id)


class IdempotencyService(Scoped):
    """The caller's key records, on the request's connection (so they commit with the write)."""

    def __init__(self, send: Sender, user_id: str, ttl_seconds: int) -> None:
        super().__init__(send, user_id)
        self.ttl = timedelta(seconds=ttl_seconds)

    def begin(self, key: str, request_fingerprint: str) -> None:
        """Hold the key and check its record in the next write's message (`refused`)."""
        self._hold_commit()
        self._ahead(
            _CHECK, key=key, lock=_lock_id(self.user_id, key), fingerprint=request_fingerprint
        )

    @staticmethod
    def refused(outcome: Outcome) -> None:
        """Raise what the key's check refused the request with, if it did."""
        if outcome.refused == _MISMATCH:
            raise IdempotencyKeyMismatch()
        if outcome.refused == _REPLAY and outcome.replay is not None:
            stored = outcome.replay
            raise Replayed(
                StoredResponse(stored["status"], stored["body"], dict(stored["headers"]))
            )

    def record(self, key: str, request_fingerprint: str, response: StoredResponse) -> None:
        """Store the response in the transaction, then prune a batch of expired records."""
        values = {
            "user_id": bindparam(OWNER),
            "key": key,
            "fingerprint": request_fingerprint,
            "response_status": response.status,
            "response_body": response.body,
            "response_headers": response.headers,
            "created_at": func.now(),
            "expires_at": func.now() + self.ttl,
        }
        statement = insert(IdempotencyKey).values(**values)
        updated = {k: statement.excluded[k] for k in values if k not in ("user_id", "key")}
        # Nobody reads either result: both ride with the COMMIT.
        self._at_commit(
            statement.on_conflict_do_update(
                index_elements=[col(IdempotencyKey.user_id), col(IdempotencyKey.key)], set_=updated
            )
        )
        self._at_commit(_expired_batch(PRUNE_BATCH, owned_only=True))


def prune_expired(engine: Engine, batch: int = 10_000) -> int:
    """Delete every expired record, `batch` a transaction (`python -m backend prune`)."""
    total = 0
    while True:
        with engine.begin() as conn:
            deleted = conn.execute(_expired_batch(batch, owned_only=False)).rowcount
        total += deleted
        if deleted < batch:
            return total
