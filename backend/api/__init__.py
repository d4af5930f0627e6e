"""HTTP layer: routers only. See `routes/`."""

# Scope extensions the server's protocol (`backend/server.py`) sets, here where nothing is
# imported so it reads them without loading the app: a connection beyond `HTTP_MAX_CONNECTIONS`
# (the request gate's 503)...
OVER_CONNECTION_LIMIT = "task_api.over_connection_limit"
# ...and a long response's connection (`live.py`): `closing`, set at shutdown so the stream
# ends cleanly and its client reconnects elsewhere, and `abort()` for a client not reading.
CONNECTION = "task_api.connection"
