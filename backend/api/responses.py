"""Error responses for the OpenAPI document, so Swagger shows the envelope for each status."""

from __future__ import annotations

from typing import Any

from backend.models import ErrorEnvelope

_DESCRIPTIONS = {
    400: "The body is not decodable as the declared content type (`BAD_REQUEST`).",
    401: "Missing, malformed, forged or expired bearer token (`UNAUTHORIZED`).",
    404: "No such task for this user (`NOT_FOUND`); another user's task looks the same.",
    409: "Conflicts with existing data (`CONFLICT`).",
    413: "Request body larger than the configured limit (`PAYLOAD_TOO_LARGE`).",
    429: "Too many requests (`RATE_LIMITED`); retry after `Retry-After` seconds. "
    "`RateLimit` / `RateLimit-Policy` describe the limits.",
    422: "Invalid input (`VALIDATION_ERROR`); `details` lists each field.",
    503: "The database is unreachable, or the token issuer's keys (JWKS) have never been "
    "fetched (`SERVICE_UNAVAILABLE`); retry after `Retry-After`.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[s]} for s in statuses}
