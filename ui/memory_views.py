"""Memory page rendering: pure functions from the memory API's models to rows and HTML."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from core.memory_schemas import DocumentInfo, DocumentView, MemoryStats, UploadResult
from core.schemas import MemorySource
from ui.render import SYMBOLS, fmt_time, short, source_html

DOC_HEADERS = ["Title", "Kind", "Tags", "Status", "Pieces", "Size", "Uploaded"]
KIND_WORDS = {"doc": "document", "sop": "SOP"}
STATUS_SYMBOLS = {"indexing": SYMBOLS["running"], "ready": SYMBOLS["done"], "failed": SYMBOLS["dead"]}
VIEWER_CHARS = 60_000  # the viewer shows this much of a document's text; the API has all of it


def fmt_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def progress_words(d: DocumentInfo) -> str:
    if d.status == "ready":
        return f"{d.chunks} piece{'s' if d.chunks != 1 else ''}"
    if d.status == "failed":
        return d.error or "failed"
    return f"{d.chunks_done} of {d.chunks or '?'} pieces"


def document_rows(docs: Sequence[DocumentInfo]) -> list[list[Any]]:
    return [[d.title, KIND_WORDS.get(d.kind, d.kind), ", ".join(d.tags),
             f"{STATUS_SYMBOLS.get(d.status, '·')} {d.status}", progress_words(d), fmt_bytes(d.bytes),
             fmt_time(d.created_at)] for d in docs]


def documents_note(docs: Sequence[DocumentInfo]) -> str:
    if not docs:
        return "No documents yet: add one above."
    indexing = sum(1 for d in docs if d.status == "indexing")
    busy = f" · {indexing} still indexing" if indexing else ""
    return f"{len(docs)} document(s){busy} · select a row to read it or delete it"


def upload_html(doc: DocumentInfo | None, message: str = "", duplicate: bool = False) -> str:
    """Where an upload stands: indexing with a progress bar, ready, failed, or refused (``message``)."""
    if doc is None:
        if not message:
            return ""
        return f'<div class="upload-state" data-status="refused">✖ {escape(message)}</div>'
    name = f"<b>{escape(doc.filename)}</b>"
    if duplicate:
        return (f'<div class="upload-state" data-status="duplicate" data-document="{escape(doc.id)}">'
                f'{SYMBOLS["done"]} {name} is already in memory as “{escape(doc.title)}”; nothing was added.</div>')
    if doc.status == "ready":
        body = f'{SYMBOLS["done"]} {name} is in memory as “{escape(doc.title)}”: {progress_words(doc)}.'
    elif doc.status == "failed":
        body = f'{SYMBOLS["dead"]} {name} could not be indexed: {escape(doc.error or "no reason given")}'
    else:
        bar = f'<progress max="{max(doc.chunks, 1)}" value="{doc.chunks_done}"></progress>' if doc.chunks else ""
        body = f'{SYMBOLS["running"]} Indexing {name}: {progress_words(doc)} {bar}'
    extra = f'<div class="upload-note">{escape(message)}</div>' if message else ""
    return (f'<div class="upload-state" data-status="{escape(doc.status)}" data-document="{escape(doc.id)}">'
            f'{body}{extra}</div>')


def accepted_html(result: UploadResult) -> str:
    return upload_html(result.document, duplicate=result.duplicate)


def document_html(view: DocumentView | None, error: str | None = None) -> str:
    """The viewer: a document's details and the text memory holds of it."""
    if view is None:
        text = f"✖ {escape(error)}" if error else "Select a document in the list to read what memory holds of it."
        return f'<div class="doc-view doc-empty" id="doc-view">{text}</div>'
    d = view.document
    tags = f" · tags: {escape(', '.join(d.tags))}" if d.tags else ""
    content = view.content if len(view.content) <= VIEWER_CHARS else view.content[:VIEWER_CHARS] + "\n…"
    return (f'<div class="doc-view" id="doc-view" data-document="{escape(d.id)}"><h3>{escape(d.title)}</h3>'
            f'<div class="rec-meta">{escape(KIND_WORDS.get(d.kind, d.kind))} · {escape(d.filename)} · '
            f'{fmt_bytes(d.bytes)} · {escape(progress_words(d))} · added {fmt_time(d.created_at)}{tags} · '
            f'<a href="/api/documents/{escape(d.id)}" target="_blank">API</a></div>'
            f'<pre class="doc-text">{escape(content)}</pre></div>')


def search_html(query: str, found: Sequence[MemorySource], error: str | None = None) -> str:
    """What memory returns for a query, best first, as the model would get it."""
    if error:
        return f'<div class="sources" id="memory-found">✖ {escape(error)}</div>'
    if not query:
        return ""
    if not found:
        return f'<div class="sources sources-none" id="memory-found">Nothing in memory matches “{escape(query)}”.</div>'
    items = "".join(source_html(s, snippet_chars=600) for s in found)
    return (f'<div class="sources" id="memory-found"><div class="plan-head"><b>{len(found)} match(es)</b> '
            f'<span class="plan-count">for “{escape(short(query, 80))}”, best first</span></div>{items}</div>')


def stats_html(stats: MemoryStats | None, error: str | None = None) -> str:
    if stats is None:
        return f'<div class="mem-stats" id="memory-stats-box">Memory did not answer: {escape(error or "")}</div>'
    counts = "".join(f'<span class="mem-count" data-collection="{escape(name)}"><b>{n}</b> {escape(name)}</span>'
                     for name, n in stats.collections.items())
    return (f'<div class="mem-stats" id="memory-stats-box"><div class="mem-counts">{counts}</div>'
            f'<div class="rec-meta">embedder {escape(stats.embedder)} · vectors in {escape(stats.vector_store)}'
            f'</div></div>')
