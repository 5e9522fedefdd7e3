"""What a tool receives: explicit dependencies, never globals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class ToolStore(Protocol):
    """The Store as tools see it. Writes are group-committed: an awaited write is committed."""

    async def read(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    async def write(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class ToolContext:
    """Per-call context handed to every tool as its first argument."""

    store: ToolStore
    user_id: str
    run_id: str
    task_id: str
    idempotency_key: str
