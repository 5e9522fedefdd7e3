"""What a tool receives: explicit dependencies, never globals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.action_schemas import ActionType, ActionView
from core.memory_schemas import DocumentKind, UploadResult
from core.schemas import MemoryCollection, MemorySource


class ToolStore(Protocol):
    """The Store as tools see it. Writes are group-committed: an awaited write is committed."""

    async def read(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    async def write(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...


class ToolMemory(Protocol):
    """Semantic search over the user's memory (the Memory actor), as tools see it."""

    async def search(self, user_id: str, query: str, collections: list[MemoryCollection],
                     limit: int) -> list[MemorySource]: ...

    async def ingest(self, user_id: str, filename: str, data: bytes, kind: DocumentKind,
                     tags: list[str]) -> UploadResult: ...


class ToolWorkspace(Protocol):
    """Google and the gated actions (the Workspace actor), as tools see it.

    ``google`` runs one read or draft operation of ``integrations.google.ops.OPS`` ("gmail.search",
    ...) for the user and returns plain JSON data. It raises ToolError for what the model can fix
    (Google's 404s, permissions, bad arguments), and IntegrationUnavailable when the user must
    reconnect (the step then waits). ``propose`` records an action that leaves the machine; it runs
    only under the user's policy or a person's approval, never because a tool said so.
    """

    async def google(self, user_id: str, op: str, args: dict[str, Any]) -> Any: ...

    async def propose(self, user_id: str, run_id: str | None, task_id: str | None, idempotency_key: str,
                      action: ActionType, arguments: dict[str, Any]) -> ActionView: ...


@dataclass(frozen=True)
class ToolContext:
    """Per-call context handed to every tool as its first argument."""

    store: ToolStore
    user_id: str
    run_id: str
    task_id: str
    idempotency_key: str
    memory: ToolMemory | None = None
    workspace: ToolWorkspace | None = None
