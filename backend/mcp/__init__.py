"""MCP (Model Context Protocol) access to the caller's tasks, for AI agents.

- `tools.py`   the tools: names, arguments, results, annotations, and what each one calls on
               the caller's unit of work (the same services the REST routes call).
- `server.py`  the MCP server (the SDK's low-level `Server`): lists the tools, validates a
               call's arguments, runs it in a worker thread inside a `UnitOfWork`, and turns
               errors into tool errors carrying the REST error envelope.
- `caller.py`  `Caller`: who calls a tool (what chat names too, without the SDK).
- `mount.py`   `/mcp` on the API app; it imports `http.py` (and the SDK) beside the start, and
               the readiness probe waits for it.
- `http.py`    Streamable HTTP at `/mcp`: bearer check (`auth.bearer.authenticate`),
               stateless JSON responses, the RFC 9728 metadata when an external issuer is set.
- `stdio.py`   the same server over stdio for one user (`python -m backend mcp`).
"""
