"""MCP (Model Context Protocol) access to the caller's tasks, for AI agents: the tools
(`tools/`), the server that runs them in a `UnitOfWork` (`server.py`), who calls (`caller.py`,
without the SDK), `/mcp` on the app (`mount.py`, loading `http.py` and the SDK beside the
start) and the same server over stdio (`stdio.py`)."""
