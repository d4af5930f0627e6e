"""Idempotency-Key for creating requests (draft-ietf-httpapi-idempotency-key-header).

Design: everything happens in the request's own transaction, so the write and its recorded
answer commit (or roll back) together.

1. `begin` takes `pg_try_advisory_xact_lock` on a hash of (user, key). Not granted: another
   request with this key is in flight -> 409 IDEMPOTENCY_KEY_IN_USE (try-lock, not a wait, so
   a retry storm cannot pin connections). The lock is transaction-scoped: it ends with the
   commit, a rollback or a dropped connection (a crashed worker), so nothing is ever stuck
   "in flight", and it works through PgBouncer's transaction pooling.
2. Still in `begin`, a separate statement (a fresh snapshot, taken after the lock, so it sees
   a row committed by the previous holder) reads the unexpired record: the same fingerprint is
   replayed, another one is 422 IDEMPOTENCY_KEY_MISMATCH.
3. No record: the caller does the write, then `record` stores the response. Errors roll the
   transaction back, so a 4xx/5xx is never recorded and a retry can still do the write.

Records live `Settings.idempotency_key_ttl_seconds` (24 h by default). Each `record` also
deletes a bounded batch of the caller's own expired rows (a request touches no other user's
rows); `python -m backend prune` empties everyone's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from backend.errors import IdempotencyKeyInUse, IdempotencyKeyMismatch
from backend.models import IdempotencyKey
from backend.services.scope import OWNER, Scoped, Stmt, owned

# Expired rows deleted per recorded response: enough to outpace new keys, small enough to
# cost a request nothing noticeable.
PRUNE_BATCH = 100
# Namespaces the advisory-lock hash, should anything else ever use advisory locks.
_LOCK_NAMESPACE = b"task-api:idempotency-key\0"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def fingerprint(method: str, route: str, payload: Any) -> str:
    """SHA-256 of method, route and the canonical JSON of the validated body: the same key
    sent to another route, or with another body, is a different request."""
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


def _expired_batch(limit: int, *, owned_only: bool) -> Any:
    """Delete up to `limit` expired records: the caller's (`owned_only`: inside a request,
    which only ever touches its caller's rows), or anyone's (the `prune` command)."""
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
    """The caller's Idempotency-Key records, on the request's connection (so a key's lock
    and record commit with the write they guard)."""

    def __init__(self, connection: Connection, user_id: str, ttl_seconds: int) -> None:
        super().__init__(connection, user_id)
        self.ttl = timedelta(seconds=ttl_seconds)

    def begin(self, key: str, request_fingerprint: str) -> StoredResponse | None:
        """Hold the key for this transaction; return the recorded response to replay, or
        None when the caller should do the write and then `record` it."""
        locked = self._run(
            select(func.pg_try_advisory_xact_lock(_lock_id(self.user_id, key)))
        ).scalar()
        if not locked:
            raise IdempotencyKeyInUse()
        keys = IdempotencyKey.__table__.c  # type: ignore[attr-defined]
        record = self._run(
            _owned(
                select(
                    keys.fingerprint,
                    keys.response_status,
                    keys.response_body,
                    keys.response_headers,
                )
            ).where(col(IdempotencyKey.key) == key, col(IdempotencyKey.expires_at) > func.now())
        ).first()
        if record is None:
            return None
        if record.fingerprint != request_fingerprint:
            raise IdempotencyKeyMismatch()
        return StoredResponse(
            record.response_status, record.response_body, dict(record.response_headers)
        )

    def record(self, key: str, request_fingerprint: str, response: StoredResponse) -> None:
        """Store the response in the request's transaction (replacing an expired record of
        the same key), then prune a bounded batch of the caller's expired records."""
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
        self._run(
            statement.on_conflict_do_update(
                index_elements=[col(IdempotencyKey.user_id), col(IdempotencyKey.key)],
                set_=updated,
            )
        )
        self._run(_expired_batch(PRUNE_BATCH, owned_only=True))


def prune_expired(engine: Engine, batch: int = 10_000) -> int:
    """Delete every expired record in batches of `batch` (one short transaction each);
    return how many. For `python -m backend prune` (cron, or a deploy hook)."""
    total = 0
    while True:
        with engine.begin() as conn:
            deleted = conn.execute(_expired_batch(batch, owned_only=False)).rowcount
        total += deleted
        if deleted < batch:
            return total
