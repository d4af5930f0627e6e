"""HEAD for every GET route, and OWASP's protective headers on every response.

One pure ASGI middleware, just inside the access log (which therefore records HEAD as HEAD)
and outside CORS, the body limit and the error middleware (so their answers get the headers
too). Per request it costs a path prefix check and one list concatenation: the header lists
are built once.

- HEAD: FastAPI routes answer only the methods they declare, so HEAD was a 405. The request
  goes in as a GET (on a copy of the scope: the server's own scope must keep saying HEAD, so
  it sends no body either) and the answer goes out with the GET's status and headers, its
  `Content-Length` included, and an empty body (RFC 9110 9.3.2).
- API responses (everything but the documentation): `Cache-Control: no-store` (tokens, tasks
  and errors must not be kept by a browser or a shared cache; ETag / If-None-Match keep
  working, they do not need a cache), `X-Content-Type-Options: nosniff`, `X-Frame-Options:
  DENY` and `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` (a JSON
  answer loads nothing and may not be framed).
- Documentation (`/docs`, `/redoc`, `/openapi.json`, their assets): the same minus the
  `default-src 'none'` (Swagger UI runs scripts) and the `no-store` (they may be cached),
  except on errors.
- `Strict-Transport-Security: max-age=<HSTS_MAX_AGE_SECONDS>` when configured (only for a
  deployment served over HTTPS; browsers ignore it over plain HTTP).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PREFIXES = ("/docs", "/redoc", "/openapi.json", "/static-offline-docs/")

Headers = list[tuple[bytes, bytes]]


class ResponseHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts_max_age: int = 0) -> None:
        self.app = app
        common: Headers = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
        if hsts_max_age > 0:
            common.append((b"strict-transport-security", f"max-age={hsts_max_age}".encode()))
        no_store = (b"cache-control", b"no-store")
        self.api: Headers = [
            *common,
            no_store,
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        ]
        self.docs: Headers = [*common, (b"content-security-policy", b"frame-ancestors 'none'")]
        self.docs_error: Headers = [*self.docs, no_store]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(DOCS_PREFIXES)
        head = scope["method"] == "HEAD"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not docs:
                    extra = self.api
                else:
                    extra = self.docs if message["status"] < 400 else self.docs_error
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        if not head:
            await self.app(scope, receive, send_with_headers)
            return
        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, send_with_headers)
        finally:
            # The access log and metrics read the matched route from the outer scope.
            if "route" in inner:
                scope["route"] = inner["route"]
