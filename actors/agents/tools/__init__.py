"""Built-in tool functions. Each is a typed async function; ``actors.agents`` turns them into Tools."""

from __future__ import annotations

from actors.agents.tools import actions, documents, google, leads, outbox, research

BUILTIN_TOOL_FUNCTIONS = (*leads.TOOLS, *documents.TOOLS, *outbox.TOOLS, *research.TOOLS, *google.TOOLS,
                          *actions.TOOLS)

__all__ = ["BUILTIN_TOOL_FUNCTIONS", "actions", "documents", "google", "leads", "outbox", "research"]
