"""Response helpers: pre-serialized JSON for hot routes, and the OpenAPI document's error
responses, so Swagger shows the envelope for each status."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from backend.models import ErrorEnvelope


def json_response(body: BaseModel, response: Response, status_code: int = 200) -> Response:
    """`body` serialized in one pass, with the headers and status set on the request's
    injected `response` (ETag, Location, Link, rate-limit headers), as FastAPI would send it.

    A sync route returning a model makes FastAPI re-validate it in a second thread-pool hop
    before serializing; returning this skips both (the route keeps `response_model=` for the
    OpenAPI document). The bytes are the same: FastAPI also serializes with pydantic's
    `dump_json`, by alias."""
    out = Response(
        body.model_dump_json(by_alias=True),
        status_code=response.status_code or status_code,
        media_type="application/json",
    )
    out.headers.raw.extend(response.headers.raw)
    return out


_DESCRIPTIONS = {
    400: "The body is not decodable as the declared content type (`BAD_REQUEST`).",
    401: "Missing, malformed, forged or expired bearer token (`UNAUTHORIZED`).",
    404: "No such task for this user (`NOT_FOUND`); another user's task looks the same.",
    409: "Conflicts with existing data (`CONFLICT`), or a request with the same "
    "`Idempotency-Key` is still in progress (`IDEMPOTENCY_KEY_IN_USE`, retry after "
    "`Retry-After`).",
    412: "`If-Match` names no current `ETag` of the task: it changed since it was read "
    "(`PRECONDITION_FAILED`); nothing was changed.",
    413: "Request body larger than the configured limit (`PAYLOAD_TOO_LARGE`).",
    429: "Too many requests (`RATE_LIMITED`); retry after `Retry-After` seconds. "
    "`RateLimit` / `RateLimit-Policy` describe the limits.",
    422: "Invalid input (`VALIDATION_ERROR`); `details` lists each field. On a POST, "
    "an `Idempotency-Key` already used with a different body or route is "
    "`IDEMPOTENCY_KEY_MISMATCH`.",
    503: "The database is unreachable, or the token issuer's keys (JWKS) have never been "
    "fetched (`SERVICE_UNAVAILABLE`); retry after `Retry-After`.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[s]} for s in statuses}


_ETAG = {
    "description": 'The task\'s strong entity tag, e.g. `"42-3"`; it changes with every change '
    "of the task. Send it back in `If-Match` / `If-None-Match`.",
    "schema": {"type": "string"},
}


def etag_header() -> dict[str, Any]:
    """`headers` of a response that carries one task's ETag."""
    return {"headers": {"ETag": _ETAG}}


def not_modified() -> dict[int | str, dict[str, Any]]:
    return {
        304: {
            "description": "`If-None-Match` names the current `ETag`: not modified, no body.",
            **etag_header(),
        }
    }
