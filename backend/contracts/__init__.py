"""What REST (`backend/api/`) and MCP (`backend/mcp/`) both accept, declared once: argument
types, bounds and their conversion to service calls. Imports no web framework, so MCP needs
nothing from `backend/api/` (tests/test_imports.py)."""
