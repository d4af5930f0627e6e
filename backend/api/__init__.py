"""HTTP layer: routers only. See `routes/`."""

# The scope extension by which the server's protocol (`backend/server.py`, above this layer)
# asks the request gate (`middleware.py`) to refuse a request on a connection beyond
# `HTTP_MAX_CONNECTIONS` (503). Here, in a package that imports nothing, so the protocol reads
# it without loading the app (its workers must start fast).
OVER_CONNECTION_LIMIT = "task_api.over_connection_limit"
# The scope extension by which the protocol hands a long response (the live change stream,
# `live.py`) its connection: `closing` (an `asyncio.Event`, set when the server shuts down, so
# the stream ends cleanly and its client reconnects to another replica) and `abort()` (drop a
# client that stopped reading).
CONNECTION = "task_api.connection"
