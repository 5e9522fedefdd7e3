"""Sub-agent types are specs, not subclasses: frozen data registered by name, with their tools.

Built-ins register through ``register_tool`` and ``register`` exactly as an extension would
(see ``actors.agents._builtins``). Registering a spec checks that its tools are registered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from actors.agents._tooling import Tool, ToolFunction
from actors.agents.prompts import render
from core.errors import ConfigError, NotFound

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SPECS: dict[str, AgentSpec] = {}
_TOOLS: dict[str, Tool] = {}


@dataclass(frozen=True)
class AgentSpec:
    """A sub-agent type: what the planner reads, what the model is told, which tools it may call."""

    name: str
    description: str
    instructions: str
    tools: tuple[str, ...] = ()
    max_turns: int = 8

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"agent type name '{self.name}' must be lower-case letters, digits or '_'")
        object.__setattr__(self, "tools", tuple(self.tools))  # a list is accepted, a tuple is kept
        if len(set(self.tools)) != len(self.tools):
            raise ConfigError(f"agent type '{self.name}' lists a tool twice: {', '.join(self.tools)}")
        if self.max_turns < 1:
            raise ConfigError(f"agent type '{self.name}': max_turns must be at least 1, got {self.max_turns}")
        if not self.description.strip() or not self.instructions.strip():
            raise ConfigError(f"agent type '{self.name}' needs a description and instructions")


# --- tools ---------------------------------------------------------------------------------


def register_tool(tool: Tool | ToolFunction, *, replace: bool = False) -> Tool:
    """Register a tool (or a typed async function, made into one) under its name."""
    built = tool if isinstance(tool, Tool) else Tool.from_function(tool)
    if built.name in _TOOLS and not replace and _TOOLS[built.name].fn is not built.fn:
        raise ConfigError(f"tool '{built.name}' is already registered (pass replace=True to override it)")
    _TOOLS[built.name] = built
    return built


def get_tool(name: str) -> Tool:
    try:
        return _TOOLS[name]
    except KeyError:
        raise NotFound(f"unknown tool '{name}'; known: {', '.join(sorted(_TOOLS))}") from None


def tool_names() -> list[str]:
    return sorted(_TOOLS)


def tools_for(spec: AgentSpec | str) -> list[Tool]:
    """The tools of an agent type, in the order its spec lists them."""
    resolved = get(spec) if isinstance(spec, str) else spec
    return [get_tool(name) for name in resolved.tools]


# --- agent types ---------------------------------------------------------------------------


def register(spec: AgentSpec, *, replace: bool = False) -> AgentSpec:
    """Register an agent type. Its tools must be registered first."""
    if spec.name in _SPECS and not replace and _SPECS[spec.name] != spec:
        raise ConfigError(f"agent type '{spec.name}' is already registered (pass replace=True to override it)")
    unknown = [t for t in spec.tools if t not in _TOOLS]
    if unknown:
        raise ConfigError(
            f"agent type '{spec.name}' names unknown tool(s) {', '.join(unknown)}; known: {', '.join(tool_names())}"
        )
    _SPECS[spec.name] = spec
    return spec


def get(name: str) -> AgentSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise NotFound(f"unknown agent type '{name}'; known: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_SPECS)


def all_specs() -> list[AgentSpec]:
    return [_SPECS[n] for n in names()]


# --- the sub-agent's system prompt ---------------------------------------------------------


def render_subagent_prompt(spec: AgentSpec | str, *, task_id: str, today: date | None = None) -> str:
    """The system prompt of one sub-agent run: the fixed instructions of its type, and nothing else.

    The run's goal, its dependencies' results, memory and the step's own instruction go in user
    messages (``actors.agents.subagent.subagent_messages``): text from outside never goes in the system role.
    """
    resolved = get(spec) if isinstance(spec, str) else spec
    day = today if today is not None else datetime.now(UTC).date()
    return render(
        "subagent",
        agent=resolved.name,
        task_id=task_id,
        today=day.isoformat(),
        instructions=resolved.instructions.strip(),
        tools=", ".join(resolved.tools) if resolved.tools else "none",
    )
