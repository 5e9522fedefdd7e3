"""Research over what is stored here (documents and leads). There is no web search yet, and no faking one."""

from __future__ import annotations

import json
from typing import Any

from actors.agents.context import ToolContext
from actors.agents.tools._common import search_terms, words_score
from actors.agents.tools.documents import rank_documents
from core.errors import ToolError

_NO_WEB = "No web search is available; only stored documents and leads were searched."


async def _matching_leads(ctx: ToolContext, terms: list[str], limit: int) -> list[dict[str, Any]]:
    hits = words_score("$3", "CASE WHEN contains(lt, t) THEN 1 ELSE 0 END")
    rows = await ctx.store.read(
        f"SELECT id, name, company, status, tags, hits FROM (SELECT *, {hits} AS hits FROM (SELECT *, "
        "lower(concat_ws(' ', name, email, company, notes, tags)) AS lt FROM leads WHERE user_id = $1)) "
        "WHERE hits > 0 ORDER BY hits DESC, created_at DESC, id LIMIT $2",
        [ctx.user_id, limit, terms],
    )
    return [
        {k: v for k, v in {"id": r[0], "name": r[1], "company": r[2], "status": r[3],
                           "tags": json.loads(r[4]) if r[4] else []}.items() if v not in (None, [])}
        for r in rows
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
