"""Documents and SOPs: search, reading, and saving writing drafts (once per step).

Uploaded documents and SOPs are searched by meaning through the Memory actor (the best sections,
each with its document id). Saved drafts, and everything when memory is not reachable, are
searched by keywords in SQL: every query word found counts 10, each occurrence in the title 3 and
in the content 1 (at most 5 per word).

A draft is what a step wrote, maybe from what it read: it is found only when a search asks for
drafts (kind 'draft'), never among the documents and SOPs a person uploaded (README: "No write
without a rule").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from actors.agents.context import ToolContext
from actors.agents.tools._common import iso, new_id, now, search_terms, snippet, words_score
from core.errors import ToolError
from core.schemas import MemoryCollection

DocumentKind = Literal["doc", "sop", "draft"]
READ_CHUNK_CHARS = 3000
_MAX_TERMS = 8
# One query word's score for the word ``t``; ``lt``/``lc`` are the lower-cased title and content, made
# once per row. Counting (a split) only where the word is found: this scan runs over every saved draft.
_TERM_SCORE = (
    "CASE WHEN contains(lc, t) THEN 10 + least(len(string_split(lc, t)) - 1, 5) ELSE 0 END"
    " + CASE WHEN contains(lt, t) THEN 3 * (len(string_split(lt, t)) - 1)"
    " + CASE WHEN contains(lc, t) THEN 0 ELSE 10 END ELSE 0 END"
)


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
    params: list[Any] = [ctx.user_id, limit, terms]
    score = words_score("$3", _TERM_SCORE)
    kind_filter = " AND kind IN ('doc', 'sop')"  # drafts only when asked for
    if kind is not None:
        params.append(kind)
        kind_filter = f" AND kind = ${len(params)}"
    rows = await ctx.store.read(
        f"SELECT id, kind, title, content, created_at, score FROM (SELECT id, kind, title, content, created_at, "
        f"{score} AS score FROM (SELECT id, kind, title, content, created_at, lower(title) AS lt, "
        f"lower(content) AS lc FROM documents WHERE user_id = $1{kind_filter})) "
        f"WHERE score > 0 ORDER BY score DESC, created_at DESC, id LIMIT $2",
        params,
    )
    return [
        {"id": r[0], "kind": r[1], "title": r[2], "snippet": snippet(r[3], terms), "added": iso(r[4])}
        for r in rows
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
    rows = await ctx.store.read(
        "SELECT id, kind, title, content FROM documents WHERE user_id = ? AND id = ?",
        [ctx.user_id, document_id.strip()],
    )
    if not rows:
        raise ToolError(f"no document with id '{document_id}' (search_documents shows document ids)")
    doc_id, kind, title, content = rows[0]
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
    rows = await ctx.store.write(
        "INSERT INTO documents (id, user_id, kind, title, content, tags, task_id, idempotency_key, created_at) "
        "VALUES (?, ?, 'draft', ?, ?, '[]', ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        [new_id(), ctx.user_id, title.strip(), content, ctx.task_id, key, now()],
    )
    if rows:
        return f"Saved draft document '{title.strip()}' (id {rows[0][0]})."
    existing = await ctx.store.read("SELECT id FROM documents WHERE idempotency_key = ?", [key])
    doc_id = existing[0][0] if existing else "unknown"
    return (
        f"A draft titled '{title.strip()}' was already saved by this step (id {doc_id}); it was kept as it is. "
        "Use a different title for a new version."
    )


TOOLS = (search_documents, read_document, save_draft_document)
