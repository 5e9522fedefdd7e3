"""Documents and SOPs: search, reading, and saving writing drafts (once per step).

Uploaded documents and SOPs are searched by meaning through the Memory actor (the best sections,
each with its document id). Saved drafts, and everything when memory is not reachable, are
searched by keywords (``actors.storage.documents.search``).

A draft is what a step wrote, maybe from what it read: it is found only when a search asks for
drafts (kind 'draft'), never among the documents and SOPs a person uploaded (README: "No write
without a rule").
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from actors.agents.context import ToolContext
from actors.agents.tools._common import iso, search_terms, snippet
from core.errors import ToolError
from core.schemas import MemoryCollection
from core.storage_schemas import StoredDocumentKind

DocumentKind = StoredDocumentKind
READ_CHUNK_CHARS = 3000
_MAX_TERMS = 8


async def rank_documents(ctx: ToolContext, query: str, kind: DocumentKind | None, limit: int) -> list[dict[str, Any]]:
    """The user's documents best matching ``query``, best first, each with a snippet."""
    if ctx.memory is not None and kind != "draft":
        collections: list[MemoryCollection] = ["sops"] if kind == "sop" else ["documents"] if kind == "doc" else [
            "sops", "documents"]
        try:
            found = await ctx.memory.search(ctx.user_id, query, collections, limit)
        except Exception:  # memory down: keyword search still answers  # noqa: BLE001
            found = None
        if found:
            return [{"id": f.source_id, "kind": "sop" if f.collection == "sops" else "doc", "title": f.title,
                     "section": f.heading, "snippet": f.snippet, "relevance": f.score} for f in found]
    return await _keyword_rank(ctx, query, kind, limit)


async def _keyword_rank(ctx: ToolContext, query: str, kind: DocumentKind | None, limit: int) -> list[dict[str, Any]]:
    terms = search_terms(query)[:_MAX_TERMS]
    if not terms:
        raise ToolError(f"query '{query}' has no words to search for")
    return [
        {"id": d.id, "kind": d.kind, "title": d.title, "snippet": snippet(d.content, terms), "added": iso(d.created_at)}
        for d in await ctx.store.search_documents(terms, kind, limit)
    ]


async def search_documents(
    ctx: ToolContext,
    query: str,
    kind: DocumentKind | None = None,
    limit: Annotated[int, Field(ge=1, le=20)] = 5,
) -> dict[str, Any]:
    """Search stored documents and SOPs (or saved drafts) by keywords; returns ids, titles and snippets.

    Args:
        query: Keywords to look for, e.g. 'refund policy'.
        kind: Only this kind: 'sop' (procedures), 'doc' (documents) or 'draft' (saved drafts, only found so).
        limit: Most results to return.
    """
    found = await rank_documents(ctx, query, kind, limit)
    result: dict[str, Any] = {"count": len(found), "documents": found}
    if not found:
        result["note"] = f"no stored {kind or 'document'} matches '{query}'"
    return result


async def read_document(
    ctx: ToolContext, document_id: str, offset: Annotated[int, Field(ge=0)] = 0
) -> dict[str, Any]:
    """Read a stored document or SOP by id, in pieces of a few thousand characters.

    Args:
        document_id: Id of the document (from search_documents).
        offset: Character to start from; use the next_offset of the previous piece.
    """
    doc = await ctx.store.read_document(document_id.strip())
    if doc is None:
        raise ToolError(f"no document with id '{document_id}' (search_documents shows document ids)")
    doc_id, kind, title, content = doc.id, doc.kind, doc.title, doc.content
    if offset > 0 and offset >= len(content):
        raise ToolError(f"offset {offset} is past the end of the document ({len(content)} characters)")
    end = offset + READ_CHUNK_CHARS
    result: dict[str, Any] = {"id": doc_id, "kind": kind, "title": title, "content": content[offset:end]}
    if end < len(content):
        result["next_offset"] = end
        result["total_chars"] = len(content)
    return result


async def save_draft_document(ctx: ToolContext, title: str, content: str) -> str:
    """Save a piece of writing as a draft document. Saving the same title again in this step keeps the first.

    Args:
        title: Short title of the draft.
        content: The full text.
    """
    if not title.strip() or not content.strip():
        raise ToolError("title and content must not be empty")
    key = f"{ctx.idempotency_key}:{title.strip()}"
    saved = await ctx.store.save_document_draft(ctx.task_id, title.strip(), content, key)
    if saved.created:
        return f"Saved draft document '{title.strip()}' (id {saved.id})."
    return (
        f"A draft titled '{title.strip()}' was already saved by this step (id {saved.id or 'unknown'}); it was kept "
        "as it is. "
        "Use a different title for a new version."
    )


TOOLS = (search_documents, read_document, save_draft_document)
