"""Chat with your tasks (specs/chat.md): an agent (the OpenAI Agents SDK over Chat Completions,
`provider.py`, `agent.py`) whose tools are the MCP tools (`tools.py`), run for the signed-in
caller; one request's turn: `turn.py`; ChatKit's protocol on it: `chatkit_*.py`."""
