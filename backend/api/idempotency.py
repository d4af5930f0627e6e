"""The Idempotency-Key header on creating routes, around `IdempotencyService`:
`idempotent.respond(door, body, status, write)` is `write()` without the header; with it, the
first success is recorded and replayed byte for byte with `Idempotent-Replayed: true`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from backend.models.idempotency import KEY_MAX_LENGTH
from backend.services.idempotency import IdempotencyService, Replayed, StoredResponse, fingerprint
from backend.services.unit_of_work import UnitOfWork

REPLAYED_HEADER = "Idempotent-Replayed"
# Response headers that belong to the recorded answer (rate-limit headers are per attempt).
_RECORDED_HEADERS = ("Location", "ETag")

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=KEY_MAX_LENGTH,
        # Visible ASCII only: the key is compared byte for byte and echoed nowhere.
        pattern=r"^[!-~]+$",
        description="A unique value (1-255 visible ASCII characters, e.g. a UUID) that makes "
        "retries safe: a retry with the same key and body within 24 hours (the default "
        "retention) gets the first "
        f"response again (with `{REPLAYED_HEADER}: true`) instead of a second write. The "
        "same key with another body is 422 `IDEMPOTENCY_KEY_MISMATCH`. A retry sent while "
        "the first request is still running waits for it, then gets its answer. Failed "
        "requests are not recorded. Keys are per user.",
        examples=["0b6f5a8e-6c1e-4a7b-9d83-2f0e3c7a9b41"],
    ),
]


M = TypeVar("M", bound=BaseModel)


class Idempotent:
    def __init__(self, key: str | None, route: str, response: Response) -> None:
        self.key = key
        self.route = route
        self.response = response

    def respond(
        self, door: UnitOfWork, body: BaseModel, status_code: int, write: Callable[[], M]
    ) -> M | Response:
        """`write()`'s result, or (with a key) the recorded response to this request. The
        key's check goes in the write's first message and its record with the COMMIT
        (`IdempotencyService`): a keyed write costs the round trips of any write."""
        if self.key is None:
            return write()
        store: IdempotencyService = door.service(IdempotencyService)
        request_fingerprint = fingerprint("POST", self.route, body.model_dump(mode="json"))
        store.begin(self.key, request_fingerprint)
        try:
            result = write()
        except Replayed as replay:
            # The key's check answered the request before: its write wrote nothing.
            stored = replay.stored
            door.roll_back()
            replayed = True
        else:
            recorded = self.response.headers
            stored = StoredResponse(
                status_code,
                result.model_dump_json(by_alias=True),
                {name: recorded[name] for name in _RECORDED_HEADERS if name in recorded},
            )
            store.record(self.key, request_fingerprint, stored)
            replayed = False
        # A returned Response does not get the injected response's headers (the rate-limit
        # ones) from FastAPI: copy them, and the recorded ones over them.
        skip = {name.lower() for name in (*_RECORDED_HEADERS, "content-length")}
        headers = {k: v for k, v in self.response.headers.items() if k.lower() not in skip}
        headers.update(stored.headers)
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(
            stored.body, status_code=stored.status, media_type="application/json", headers=headers
        )


async def get_idempotent(
    request: Request, response: Response, key: IdempotencyKeyHeader = None
) -> Idempotent:
    matched = request.scope.get("route")
    # The path's published spelling, /api/{user_id}/tasks, records as its twin /api/tasks.
    route = str(
        getattr(matched, "canonical_path", None) or getattr(matched, "path", request.url.path)
    )
    return Idempotent(key, route, response)


IdempotentDep = Annotated[Idempotent, Depends(get_idempotent)]
