"""How memories are stored, matched and written into a prompt.

A ``memory_entries`` row becomes a point (its payload, the text embedded for it); a hit becomes a
source. Per-collection quotas (the sops agent leans on SOPs; the planner also sees past
conversations), then the best matches across collections in score order until the token budget
is spent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from core.schemas import MemoryCollection, MemorySource
from memory.chunking import Chunk
from memory.vectors import Hit

_SNIPPET = 600
_log = structlog.get_logger("maos.memory")

Quotas = dict[MemoryCollection, int]
RunSources = list[tuple[str, str | None, list[MemorySource]]]
"""``(run id, task id or None, sources)`` for each step or plan given memories."""
_CHARS_PER_TOKEN = 4
_LABEL: Mapping[str, str] = {"sops": "SOP", "documents": "Document", "conversations": "Earlier conversation",
                             "learnings": "Past request"}


def quotas_for(agent: str | None) -> Quotas:
    """Matches to fetch per collection: ``None`` is the master's planning, else a sub-agent type."""
    if agent is None:
        return {"sops": 3, "documents": 3, "conversations": 2}
    if agent == "sops":
        return {"sops": 5, "documents": 2}
    if agent == "research":
        return {"documents": 4, "sops": 2, "conversations": 2}
    return {"sops": 2, "documents": 2, "conversations": 1}


def render_memory(hits: Sequence[tuple[MemoryCollection, Mapping[str, Any], float]], token_budget: int) -> tuple[str, int]:
    """The memory block for a prompt from hits best first, within ``token_budget``; and how many it used.

    A hit that would overflow the budget is shortened to fit when at least a few lines of it fit,
    and nothing after it is added.
    """
    budget = token_budget * _CHARS_PER_TOKEN
    parts: list[str] = []
    for collection, payload, score in hits:
        where = f" › {payload['heading']}" if payload.get("heading") else ""
        head = f'[{_LABEL[collection]}] "{payload.get("title", "")}"{where} (relevance {score:.2f})'
        body = " ".join(str(payload.get("text", "")).split())
        room = budget - len(head) - 2
        if room <= 0:
            break
        if len(body) > room:
            if room < 120:
                break
            body = body[:room - 1].rsplit(" ", 1)[0] + "…"
        parts.append(f"{head}\n{body}")
        budget -= len(head) + len(body) + 2
    return "\n\n".join(parts), len(parts)


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def entry_embed_text(entry: dict[str, Any]) -> str:
    meta = json.loads(entry["metadata"] or "{}")
    if entry["source"] == "upload":
        return Chunk(index=entry["chunk_index"] or 0, text=entry["content"], heading=meta.get("heading", ""),
                     start=0).embed_text(meta.get("title", ""))
    return str(entry["content"])


def entry_payload(entry: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    meta = json.loads(entry["metadata"] or "{}")
    return {"user_id": entry["user_id"], "source": entry["source"], "source_id": entry["source_id"],
            "timestamp": entry["created_at"], "tags": meta.get("tags", []), "title": meta.get("title", ""),
            "heading": meta.get("heading", ""), "link": meta.get("link", ""), "text": entry["content"],
            "chunk_index": entry["chunk_index"], **(extra or {})}


def hit_source(collection: MemoryCollection, hit: Hit) -> MemorySource:
    p = hit.payload
    text = str(p.get("text", ""))
    return MemorySource(collection=collection, source_id=str(p["source_id"]), title=str(p.get("title", "")),
                        heading=str(p.get("heading", "")), snippet=text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…",
                        score=round(float(hit.score), 4), link=str(p.get("link", "")))


class SourceRecorder:
    """Records the sources each run was given, without holding up the caller.

    One ``send`` (a Store call) at a time: what arrives while one is in flight goes in the next, so a
    thousand steps' sources cost a few calls and statements, and a lone one goes at once. The Store
    applies them in the order they were given.
    """

    def __init__(self, send: Callable[[RunSources], Awaitable[object]]) -> None:
        self._send_batch = send
        self._pending: RunSources = []
        self._sender: asyncio.Task[None] | None = None

    def add(self, run_id: str, task_id: str | None, sources: list[MemorySource]) -> None:
        self._pending.append((run_id, task_id, sources))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._send_batch(batch)
            except Exception as exc:  # sources explain a run; losing them must not fail it
                _log.warning("memory.sources_not_recorded", error=str(exc), runs=len({r for r, _, _ in batch}))
