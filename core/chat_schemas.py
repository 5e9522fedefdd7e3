"""The LLM traffic: what the runtime asks a model (a chat request with its messages and tools) and
what comes back (whole, or streamed in chunks), between sub-agents, the master and the gateway."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from core.schemas import ToolCallFormat, _Model

Priority = Literal["interactive", "background"]
ModelRole = Literal["planner", "worker"]


class ToolCall(_Model):
    id: str = Field(description="Id the model gave the call (echoed in the tool result).")
    name: str = Field(description="Tool name.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments as parsed JSON.")
    parse_error: str | None = Field(None, description="Why the call as the model wrote it could not be read "
                                                      "(then it is not run: the model is told this instead).")


class ChatMessage(_Model):
    role: Literal["system", "user", "assistant", "tool"] = Field(description="Speaker.")
    content: str = Field("", description="Text content.")
    tool_calls: list[ToolCall] = Field(default_factory=list, description="Calls made by the assistant.")
    tool_call_id: str | None = Field(None, description="For role=tool: the call this answers.")
    name: str | None = Field(None, description="For role=tool: the tool's name.")


class ToolSpec(_Model):
    name: str = Field(description="Tool name the model calls.")
    description: str = Field(description="What the tool does (from its docstring).")
    parameters: dict[str, Any] = Field(description="JSON schema of the arguments (derived).")


class ChatRequest(_Model):
    kind: Literal["chat"] = "chat"
    messages: list[ChatMessage] = Field(description="Conversation so far.")
    role: ModelRole = Field("worker", description="Which configured model answers.")
    priority: Priority = Field("background", description="Interactive calls jump the queue.")
    json_schema: dict[str, Any] | None = Field(None, description="Constrain output to this schema.")
    schema_name: str | None = Field(None, description="Name of json_schema.")
    tools: list[ToolSpec] = Field(default_factory=list, description="Tools the model may call.")
    max_tokens: int | None = Field(None, description="Cap on output tokens.")
    temperature: float | None = Field(None, description="Sampling temperature; None = server default.")
    run_id: str | None = Field(None, description="Run this call belongs to (for agent_runs).")
    task_id: str | None = Field(None, description="Task this call belongs to (for agent_runs).")
    agent: str | None = Field(None, description="Agent type or 'master' (for agent_runs).")
    stream_phase: Literal["plan", "summary"] | None = Field(
        None, description="Stream the reply into the run's event log (as token events of this phase) while it is "
                          "written; the call still returns the whole reply.")


class ChatResponse(_Model):
    kind: Literal["chat_response"] = "chat_response"
    message: ChatMessage = Field(description="The assistant's message.")
    model: str = Field(description="Model that answered.")
    tokens_in: int = Field(0, description="Prompt tokens.")
    tokens_out: int = Field(0, description="Completion tokens.")
    latency_ms: float = Field(0.0, description="Wall time of the call, queueing included.")
    queued_ms: float = Field(0.0, description="Time spent waiting for a gateway slot.")
    tool_call_format: ToolCallFormat | None = Field(
        None, description="How the model wrote its tool calls (native field or a text form); None: it made none.")


class StreamChunk(_Model):
    kind: Literal["chunk"] = "chunk"
    text: str = Field(description="Text since the previous chunk (coalesced tokens).")
    done: bool = Field(False, description="True on the last chunk.")
