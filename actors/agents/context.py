"""What a tool receives: explicit dependencies, never globals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.schemas import MemoryCollection, MemorySource


class ToolStore(Protocol):
    """The Store as tools see it. Writes are group-committed: an awaited write is committed."""

    async def read(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    async def write(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...


class ToolMemory(Protocol):
    """Semantic search over the user's memory (the Memory actor), as tools see it."""

    async def search(self, user_id: str, query: str, collections: list[MemoryCollection],
                     limit: int) -> list[MemorySource]: ...


@dataclass(frozen=True)
class ToolContext:
    """Per-call context handed to every tool as its first argument."""

    store: ToolStore
    user_id: str
    run_id: str
    task_id: str
    idempotency_key: str
    memory: ToolMemory | None = None
