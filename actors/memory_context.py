"""How much memory each kind of request gets, and how it is written into a prompt.

Per-collection quotas (the sops agent leans on SOPs; the planner also sees past conversations),
then the best matches across collections in score order until the token budget is spent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.schemas import MemoryCollection

Quotas = dict[MemoryCollection, int]
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
