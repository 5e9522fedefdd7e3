"""Research over what is stored here (documents and leads). There is no web search yet, and no faking one."""

from __future__ import annotations

from typing import Any

from actors.agents.context import ToolContext
from actors.agents.tools._common import search_terms
from actors.agents.tools.documents import rank_documents
from core.errors import ToolError

_NO_WEB = "No web search is available; only stored documents and leads were searched."


async def _matching_leads(ctx: ToolContext, terms: list[str], limit: int) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in {"id": lead.id, "name": lead.name, "company": lead.company, "status": lead.status,
                           "tags": lead.tags}.items() if v not in (None, [])}
        for lead in await ctx.store.search_leads(terms, limit)
    ]


async def research_notes(ctx: ToolContext, topic: str) -> dict[str, Any] | str:
    """Gather what is stored about a topic: matching documents and SOPs (with snippets) and matching leads.

    Args:
        topic: What to research, in a few keywords.
    """
    terms = search_terms(topic)[:8]
    if not terms:
        raise ToolError(f"topic '{topic}' has no words to search for")
    documents = await rank_documents(ctx, topic, None, 5)
    leads = await _matching_leads(ctx, terms, 10)
    if not documents and not leads:
        return (
            f"Nothing stored matches '{topic}': no documents and no leads. {_NO_WEB} "
            "Say in your answer that nothing was found; do not invent facts."
        )
    return {"topic": topic, "documents": documents, "leads": leads, "note": _NO_WEB}


TOOLS = (research_notes,)
