"""The Memory page: add documents and SOPs (with progress while they index), list, read and delete
them, ask memory what it holds for a query, and see how much it holds. All through the HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core.memory_schemas import DocumentKind
from core.schemas import MEMORY_COLLECTIONS
from ui import memory_views as mv
from ui.client import ApiClient, ApiError
from ui.pages import ANY, Search, Table, table

UPLOAD_TYPES = [".txt", ".md", ".markdown", ".pdf", ".docx", ".csv", ".html", ".htm"]
KIND_CHOICES = [("Document", "doc"), ("SOP (a procedure to follow)", "sop")]
KIND_FILTER = [(ANY, ANY), *KIND_CHOICES]
QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
# (documents table, their ids, note under the table, stats)
Listing = tuple[Table, list[str], str, str]


def _kind(value: str | None) -> DocumentKind | None:
    return "sop" if value == "sop" else "doc" if value == "doc" else None


class MemoryHandlers:
    def __init__(self, client: ApiClient, poll_s: float = 0.5, wait_s: float = 900.0) -> None:
        self.client = client
        self.poll_s = poll_s  # how often an upload's indexing progress is asked for
        self.wait_s = wait_s  # how long the page follows one upload; the list shows the rest

    async def listing(self, q: str | None = None, kind: str | None = None, note: str = "") -> Listing:
        try:
            docs = await self.client.list_documents(kind=_kind(kind), q=(q or "").strip() or None)
        except ApiError as exc:
            docs, note = [], f"✖ Could not list the documents: {exc}"
        try:
            stats = mv.stats_html(await self.client.memory_stats())
        except ApiError as exc:
            stats = mv.stats_html(None, str(exc))
        note = " ".join(x for x in (note, mv.documents_note(docs) if docs or not note else "") if x)
        return table(mv.DOC_HEADERS, mv.document_rows(docs)), [d.id for d in docs], note, stats

    async def upload(self, path: str | None, kind: str, tags: str, q: str,
                     kind_filter: str) -> AsyncIterator[tuple[Any, ...]]:
        """Send the file, then follow its indexing until it is ready or failed; the list follows."""
        skip = (gr.skip(),) * 5
        if not path:
            yield (mv.upload_html(None, "Choose a file first."), *skip)
            return
        name = Path(path).name
        data = await asyncio.to_thread(Path(path).read_bytes)
        try:
            result = await self.client.upload_document(name, data, _kind(kind) or "doc", tags or "")
        except ApiError as exc:  # the message names the file: clear it for the next one
            yield (mv.upload_html(None, exc.detail if exc.status else str(exc)), *skip[:4], None)
            return
        doc = result.document
        yield (mv.accepted_html(result), *await self.listing(q, kind_filter), None)
        deadline = time.monotonic() + self.wait_s
        while doc.status == "indexing" and not result.duplicate:
            if time.monotonic() > deadline:
                yield (mv.upload_html(doc, "Still indexing: the list shows its progress."), *skip)
                return
            await asyncio.sleep(self.poll_s)
            try:
                doc = (await self.client.get_document(doc.id)).document
            except ApiError as exc:
                yield (mv.upload_html(doc, f"Lost track of it: {exc}"), *skip)
                return
            if doc.status == "indexing":
                yield (mv.upload_html(doc), *skip)
        if not result.duplicate:
            yield (mv.upload_html(doc), *await self.listing(q, kind_filter), gr.skip())

    async def read(self, document_id: str | None) -> str:
        if not document_id:
            return mv.document_html(None)
        try:
            return mv.document_html(await self.client.get_document(document_id))
        except ApiError as exc:
            return mv.document_html(None, str(exc))

    async def select(self, ids: list[str], evt: gr.SelectData) -> tuple[str, str | None, Any]:
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        chosen = ids[index] if isinstance(index, int) and 0 <= index < len(ids) else None
        return await self.read(chosen), chosen, gr.Button(interactive=chosen is not None)

    async def delete(self, document_id: str | None, q: str, kind_filter: str) -> tuple[Any, ...]:
        if not document_id:
            return (gr.skip(), gr.skip(), gr.skip(), *await self.listing(q, kind_filter, "Select a document first."))
        try:
            title = (await self.client.get_document(document_id)).document.title
            await self.client.delete_document(document_id)
        except ApiError as exc:
            return (gr.skip(), gr.skip(), gr.skip(), *await self.listing(q, kind_filter, f"✖ Not deleted: {exc}"))
        note = f"✔ Deleted “{title}” and what memory held of it."
        return (mv.document_html(None), None, gr.Button(interactive=False), *await self.listing(q, kind_filter, note))

    async def search(self, q: str, collection: str) -> str:
        query = (q or "").strip()
        if not query:
            return mv.search_html("", [])
        try:
            found = await self.client.search_memory(query, None if collection in (None, "", ANY) else collection)
        except ApiError as exc:
            return mv.search_html(query, [], str(exc))
        return mv.search_html(query, found)


@dataclass
class MemoryPage:
    """The page's column and what the app wires to it (nav refresh, links that open a document)."""

    column: Any
    picked: Any
    documents: Search  # list documents: on opening the page, and by Refresh, the filter box or the kind
    open_picked: tuple[Any, list[Any], list[Any]]  # (handler, inputs, outputs) to show the picked document


def memory_page(client: ApiClient) -> MemoryPage:
    """Build the page inside the current Blocks and wire its own events."""
    h = MemoryHandlers(client)
    with gr.Column(visible=False, elem_id="page-memory") as column:
        ids, picked = gr.State([]), gr.State(None)
        gr.Markdown("## Memory\nWhat the agents can recall: your documents and SOPs, past conversations and "
                    "what was learned from past runs.")
        stats = gr.HTML(mv.stats_html(None, "not asked yet"), elem_id="memory-stats")
        gr.Markdown("### Add a document")
        with gr.Row(equal_height=False):
            file = gr.File(label="File (txt, md, pdf, docx, csv, html)", file_types=UPLOAD_TYPES, type="filepath",
                           elem_id="memory-file", scale=3, height=140)
            with gr.Column(scale=2):
                kind = gr.Radio(KIND_CHOICES, value="doc", label="Kind", elem_id="memory-kind")
                tags = gr.Textbox(label="Tags", placeholder="e.g. billing, refunds", elem_id="memory-tags")
                add = gr.Button("Add to memory", variant="primary", elem_id="memory-upload")
        state = gr.HTML("", elem_id="memory-upload-state")
        gr.Markdown("### Documents")
        with gr.Row():
            q = gr.Textbox(label="Filter", placeholder="words in a title, file name or tag", scale=3,
                           elem_id="memory-docs-q")
            kind_filter = gr.Dropdown(KIND_FILTER, value=ANY, label="Kind", elem_id="memory-docs-kind")
            refresh = gr.Button("Refresh", elem_id="memory-docs-refresh", scale=0, min_width=110)
        docs = gr.Dataframe(table(mv.DOC_HEADERS, []), interactive=False, wrap=True, elem_id="memory-docs",
                            max_height=360, column_widths=["28%", "9%", "15%", "11%", "15%", "9%", "13%"])
        with gr.Row(equal_height=True):
            note = gr.Markdown(elem_id="memory-docs-note")
            delete = gr.Button("Delete the selected document", variant="stop", size="sm", interactive=False,
                               elem_id="memory-delete", scale=0, min_width=240)
        viewer = gr.HTML(mv.document_html(None), elem_id="memory-viewer")
        gr.Markdown("### Ask memory\nWhat memory returns for a request: the pieces the model would be given.")
        with gr.Row():
            sq = gr.Textbox(label="Query", placeholder="e.g. how do we handle refunds over 30 days?", scale=4,
                            elem_id="memory-q")
            coll = gr.Dropdown([ANY, *MEMORY_COLLECTIONS], value=ANY, label="Collection", elem_id="memory-collection")
            go = gr.Button("Search", variant="primary", elem_id="memory-search", scale=0, min_width=110)
        found = gr.HTML("", elem_id="memory-results")

    listing = [docs, ids, note, stats]
    add.click(h.upload, [file, kind, tags, q, kind_filter], [state, *listing, file], api_visibility="private")
    docs.select(h.select, [ids], [viewer, picked, delete], api_visibility="private")
    delete.click(h.delete, [picked, q, kind_filter], [viewer, picked, delete, *listing], api_visibility="private")
    go.click(h.search, [sq, coll], [found], api_visibility="private")
    sq.submit(h.search, [sq, coll], [found], api_visibility="private")

    async def open_picked(document_id: str | None) -> tuple[str, Any]:
        return await h.read(document_id), gr.Button(interactive=document_id is not None)

    documents = Search((h.listing, [q, kind_filter], listing), [refresh.click, q.submit, kind_filter.input])
    return MemoryPage(column, picked, documents, (open_picked, [picked], [viewer, delete]))
