"""HTTP layer: routers only. See `routes/`."""

# The scope extension by which the server's protocol (`backend/server.py`, above this layer)
# asks the request gate (`middleware.py`) to refuse a request on a connection beyond
# `HTTP_MAX_CONNECTIONS` (503). Here, in a package that imports nothing, so the protocol reads
# it without loading the app (its workers must start fast).
OVER_CONNECTION_LIMIT = "task_api.over_connection_limit"
