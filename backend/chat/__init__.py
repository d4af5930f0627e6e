"""Chat with your tasks (specs/chat.md): an agent (the OpenAI Agents SDK over the Chat
Completions protocol) whose tools are the MCP tools, run for the signed-in caller.

provider.py  the model: any OpenAI-compatible provider, from CHAT_* settings; no tracing
tools.py     the MCP tools as agent tools: same schemas, same `run_tool`, a ledger of calls
agent.py     instructions, the history the model gets, one run, provider errors -> AppErrors
turn.py      one request: the chat limit, the stored user message, the run, the stored answer
"""
