"""Sub-agent types (specs) and their typed tools.

Importing the package registers the eight built-in agent types and their tools.
"""

from __future__ import annotations

from actors.agents import _builtins  # noqa: F401  (registers the built-in tools and agent types)
from actors.agents._tooling import Tool, invoke
from actors.agents.context import ToolContext, ToolStore
from actors.agents.prompts import PromptError, render
from actors.agents.specs import (
    AgentSpec,
    all_specs,
    get,
    get_tool,
    names,
    register,
    register_tool,
    render_subagent_prompt,
    tool_names,
    tools_for,
)

__all__ = [
    "AgentSpec", "PromptError", "Tool", "ToolContext", "ToolStore", "all_specs", "get", "get_tool", "invoke",
    "names", "register", "register_tool", "render", "render_subagent_prompt", "tool_names", "tools_for",
]
