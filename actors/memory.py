"""The Memory actor: the one owner of the vector store (Qdrant's local path is locked to one
process) and of the embedding model (loaded once, here).

Every item it stores is first a ``memory_entries`` row in DuckDB (through the Store), then a point
in Qdrant with the same id, so ``rebuild`` can recreate Qdrant from DuckDB. The work is done by
plain modules of ``memory``: the engines (embedder and vector store, in their threads), retrieval
(what a plan or a step is given, search), chunking; this class ties them to the Store.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog

from actors.runtime.apis import GatewayApi, StoreApi
from actors.runtime.boot import actor_class
from actors.runtime.handles import Handle
from actors.runtime.typed import typed
from actors.storage.memory_entries import ENTRY_COLUMNS
from core.errors import IngestError, NotFound
from core.extract import Limits, extract
from core.memory_schemas import (
    DocumentKind,
    Feedback,
    LearningView,
    MemoryContext,
    MemoryStats,
    UploadResult,
)
from core.schemas import MEMORY_COLLECTIONS, MemoryCollection, MemorySource, RunView
from core.settings import Settings
from memory.chunking import Chunk, chunk_text
from memory.context import SourceRecorder, content_hash, entry_embed_text, entry_payload
from memory.engines import Engines
from memory.retrieval import Retriever
from memory.vectors import Point

_log = structlog.get_logger("maos.memory")
_BATCH = 32


class StoreReads:
    """What retrieval and the engines read from the database, through the Store."""

    def __init__(self, store: StoreApi) -> None:
        self._store = store

    async def has_entries(self, user_id: str) -> bool:
        return bool(await self._store.has_memory_entries(user_id))

    async def learnings(self, user_id: str, run_ids: list[str]) -> list[LearningView]:
        return await self._store.learnings(user_id=user_id, run_ids=run_ids)

    async def runs_with_actions(self, run_ids: list[str], statuses: Sequence[str]) -> set[str]:
        return set(await self._store.runs_with_actions(run_ids=run_ids, statuses=list(statuses)))

    async def stale_entries(self, model_id: str) -> int:
        """Entries embedded by another model than ``model_id``."""
        return int(await self._store.stale_memory_entries(model_id))


class Memory:
    def __init__(self, settings: Settings, store: Handle, gateway: Handle | None = None) -> None:
        self._settings = settings
        self._store = typed(store, StoreApi)
        reads = StoreReads(self._store)
        self._engines = Engines(settings, typed(gateway, GatewayApi).embed if gateway is not None else None,
                                reads.stale_entries, self._opened)
        self._retrieval = Retriever(settings, reads, self._engines, SourceRecorder(self._store.add_run_sources))
        self._indexing: dict[str, asyncio.Task[None]] = {}
        self._remembering = 0
        self._run_locks: dict[str, asyncio.Lock] = {}
        self._reembed = False  # the entries were embedded by another model: rebuild on opening
        self._born = time.time()  # uploads accepted before this are a previous incarnation's
        try:  # opening now also finishes, after Ray restarts this actor, the uploads it was indexing
            self._starting: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self.start())
        except RuntimeError:  # built outside an event loop: the first call opens what it needs
            self._starting = None
        self._resuming: asyncio.Task[int] | None = None

    # --- the engines, opened on first use -------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._engines.model_id

    async def _vec(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._engines.vec(method, *args, **kwargs)

    def _opened(self, stale: bool) -> None:
        """The vector store is open; with entries of another embedder it started empty: re-embed them."""
        self._reembed = stale
        self._resuming = asyncio.get_running_loop().create_task(self._resume())  # also after Ray restarts this actor

    async def start(self) -> None:
        """Load the embedder and open Qdrant now rather than at the first request."""
        try:
            await self._vec("count", "documents")
        except Exception as exc:  # every later memory call tries again and reports its own error
            _log.warning("memory.start_failed", error=str(exc))

    async def _resume(self) -> int:
        """Index again the uploads a restart cut off (accepted before this actor started, never finished;
        not those it is indexing itself); returns how many."""
        if self._reembed:
            await self.rebuild()
        resumed = 0
        for user_id, doc_id in await self._store.indexing_documents(self._born):
            view = await self._store.get_document(user_id=user_id, doc_id=doc_id)
            if view is not None:
                await self._drop_vectors(await self._store.delete_memory_entries(doc_id))
                chunks = chunk_text(view.content)
                self._spawn_index(user_id, view.document.id, view.document.title, view.document.kind,
                                  view.document.tags, chunks)
                resumed += 1
        return resumed

    # --- ingestion -------------------------------------------------------------------------

    async def ingest(self, user_id: str, filename: str, data: bytes, kind: DocumentKind = "doc",
                     tags: Sequence[str] = ()) -> UploadResult:
        """Check and cut up a file, record it, and index it in the background (progress on the document)."""
        limit = int(self._settings.max_upload_mb * 1024 * 1024)
        if len(data) > limit:
            raise IngestError(f"the file is {len(data) / 1e6:.1f} MB; the limit is {self._settings.max_upload_mb:g} MB",
                              filename)
        extracted = await self._engines.in_ingest_thread(extract, filename, data, Limits.from_settings(self._settings))
        chunks = chunk_text(extracted.text)
        if not chunks:
            raise IngestError("no text to store", filename)
        clean_tags = sorted({t.strip().lower() for t in tags if t.strip()} | ({"sop"} if kind == "sop" else set()))
        info, duplicate = await self._store.add_document(doc_id=uuid.uuid4().hex, user_id=user_id, kind=kind, title=extracted.title, filename=filename, content=extracted.text,
            content_hash=content_hash(extracted.text), tags=clean_tags, size=len(data), chunks=len(chunks))
        if not duplicate:
            self._spawn_index(user_id, info.id, info.title, kind, clean_tags, chunks)
        _log.info("memory.upload", document_id=info.id, chunks=len(chunks), duplicate=duplicate, format=extracted.format)
        return UploadResult(document=info, duplicate=duplicate)

    def _spawn_index(self, user_id: str, doc_id: str, title: str, kind: DocumentKind, tags: list[str],
                     chunks: list[Chunk]) -> None:
        task = asyncio.get_running_loop().create_task(self._index(user_id, doc_id, title, kind, tags, chunks))
        self._indexing[doc_id] = task
        task.add_done_callback(lambda _: self._indexing.pop(doc_id, None))

    async def _index(self, user_id: str, doc_id: str, title: str, kind: DocumentKind, tags: list[str],
                     chunks: list[Chunk]) -> None:
        collection: MemoryCollection = "sops" if kind == "sop" else "documents"
        try:
            seen: set[str] = set()
            for start in range(0, len(chunks), _BATCH):
                batch = [c for c in chunks[start:start + _BATCH] if content_hash(c.text) not in seen]
                seen.update(content_hash(c.text) for c in batch)
                meta = {"title": title, "tags": tags, "kind": kind, "link": f"/api/documents/{doc_id}"}
                await self._store_items(user_id, collection, "upload", doc_id, [
                    (c.text, c.embed_text(title), {**meta, "heading": c.heading}, c.index) for c in batch], False)
                await self._store.document_progress(doc_id=doc_id, chunks_done=min(start + _BATCH, len(chunks)))
            await self._store.finish_document(doc_id=doc_id, error=None)
            _log.info("memory.indexed", document_id=doc_id, chunks=len(chunks))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the embedder or Qdrant failed: nothing of the document stays searchable
            _log.warning("memory.index_failed", document_id=doc_id, error=str(exc))
            if self._engines.is_open:  # else none were written (the store never opened)
                try:
                    await self._drop_vectors([(doc_id, collection)], by_source=True)
                except Exception as drop_exc:  # rebuild from DuckDB clears leftovers; the entries go below
                    _log.warning("memory.index_cleanup_failed", document_id=doc_id, error=str(drop_exc))
            await self._store.finish_document(doc_id=doc_id, error=f"indexing failed: {exc}")

    async def _store_items(self, user_id: str, collection: MemoryCollection, source: str, source_id: str,
                           items: list[tuple[str, str, dict[str, Any], int]], interactive: bool,
                           extra: dict[str, Any] | None = None) -> list[str]:
        """Entries (content, text to embed, metadata, index) → DuckDB rows, then points. Returns the ids."""
        if not items:
            return []
        vectors = await self._engines.embed([embed for _, embed, _, _ in items], interactive)
        now = time.time()
        ids = [str(uuid.uuid4()) for _ in items]
        rows = [(pid, user_id, collection, source, source_id, content_hash(content), pid, json.dumps(meta), now,
                 content, index, self.model_id) for pid, (content, _, meta, index) in zip(ids, items, strict=True)]
        await self._store.add_memory_entries(rows)
        await self._vec("upsert", collection, [
            Point(id=pid, vector=vec, payload=entry_payload(dict(zip(ENTRY_COLUMNS.split(", "), row, strict=True)), extra))
            for pid, vec, row in zip(ids, vectors, rows, strict=True)])
        self._retrieval.stored(user_id)
        return ids

    async def _drop_vectors(self, entries: list[tuple[str, str]], by_source: bool = False) -> None:
        by_collection: dict[str, list[str]] = {}
        for key, collection in entries:
            by_collection.setdefault(collection, []).append(key)
        for collection, keys in by_collection.items():
            if by_source:
                for source_id in keys:
                    await self._vec("delete", collection, source_id=source_id)
            else:
                await self._vec("delete", collection, ids=keys)

    async def delete_document(self, user_id: str, doc_id: str) -> None:
        if await self._store.get_document(user_id=user_id, doc_id=doc_id) is None:  # another's: leave its indexing be
            raise NotFound(f"no document '{doc_id}'")
        task = self._indexing.pop(doc_id, None)
        if task is not None:
            task.cancel()
        entries = await self._store.delete_document(user_id=user_id, doc_id=doc_id)
        if entries is None:
            raise NotFound(f"no document '{doc_id}'")
        await self._drop_vectors(entries)
        for collection in ("documents", "sops"):  # points a cancelled batch wrote after its rows were read
            await self._vec("delete", collection, source_id=doc_id)
        self._retrieval.forget(user_id)

    # --- retrieval --------------------------------------------------------------------------

    async def context(self, user_id: str, query: str, run_id: str | None = None, task_id: str | None = None,
                      agent: str | None = None) -> MemoryContext:
        """The memories (and, for planning, past plans) for one request, recorded as the run's sources."""
        return await self._retrieval.context(user_id, query, run_id, task_id, agent)

    async def step_contexts(self, user_id: str, agent: str, steps: Sequence[tuple[str, str, str]]) -> list[str]:
        """The memories for many steps of one agent type, each ``(instruction, run id, task id)``."""
        return await self._retrieval.step_contexts(user_id, agent, steps)

    async def search(self, user_id: str, query: str, collections: Sequence[MemoryCollection] | None = None,
                     limit: int = 5) -> list[MemorySource]:
        return await self._retrieval.search(user_id, query, collections, limit)

    async def search_many(self, searches: list[tuple[str, str, list[MemoryCollection], int]]
                          ) -> list[list[MemorySource] | Exception]:
        """Many tools' searches, ``(user id, query, collections, limit)``: each one's sources or error."""
        return await self._retrieval.search_many(searches)

    # --- runs: conversations and learnings -------------------------------------------------

    async def remember_run(self, view: RunView) -> LearningView:
        """A finished run becomes a conversation memory and a learning (feedback given before is kept)."""
        self._remembering += 1
        try:
            async with self._run_lock(view.run.id):
                return await self._remember(view)
        finally:
            self._remembering -= 1

    def _run_lock(self, run_id: str) -> asyncio.Lock:
        """One writer at a time per run: the master's remember_run and a person's feedback may cross."""
        lock = self._run_locks.get(run_id)
        if lock is None:
            lock = self._run_locks[run_id] = asyncio.Lock()
            if len(self._run_locks) > 1000:  # forget idle locks of old runs
                for key in [k for k, v in self._run_locks.items() if not v.locked() and k != run_id]:
                    del self._run_locks[key]
        return lock

    async def _remember(self, view: RunView) -> LearningView:
        run = view.run
        await self._store.record_learning(view)
        title = " ".join(run.message.split())[:80]
        said = f"User asked: {run.message}\nAnswer: {run.summary or run.error or ''}"[:4000]
        kept = await self._store_items(run.user_id, "conversations", "conversation", run.id, [
            (said, said, {"title": title, "link": f"/api/conversations/{run.conversation_id}", "tags": []}, 0)], False)
        learning = await self._store.get_learning(run.id)  # with any feedback given
        assert learning is not None  # recorded just above
        kept += await self._store_items(run.user_id, "learnings", "run", run.id, [
            (run.message, run.message, {"title": title, "link": f"/api/runs/{run.id}/learning", "tags": []}, 0)],
            False, extra={"usable": learning.usable})
        # A run that ends again (a retried step) replaces what it left before: new points first, then
        # the old ones go, so a plan made meanwhile never finds the run missing.
        await self._drop_vectors(await self._store.delete_memory_entries(source_id=run.id, keep=kept))
        return learning

    async def feedback(self, run_id: str, feedback: Feedback) -> LearningView:
        async with self._run_lock(run_id):
            learning: LearningView | None = await self._store.set_feedback(run_id=run_id, feedback=feedback)
            if learning is None:  # feedback came before the run's learning was written: write it now
                view: RunView | None = await self._store.get_run(run_id)
                if view is None or view.run.status not in ("done", "failed"):
                    raise NotFound(f"no learning for run '{run_id}' (it has not ended)")
                await self._remember(view)
                learning = await self._store.set_feedback(run_id=run_id, feedback=feedback)
                assert learning is not None
            ids = await self._store.memory_entry_ids(source_id=run_id, collection="learnings")
            if ids:
                await self._vec("set_payload", "learnings", ids, {"usable": learning.usable})
            return learning

    async def stats(self, user_id: str) -> MemoryStats:
        counts = {c: await self._vec("count", c, user_id) for c in MEMORY_COLLECTIONS}
        where = self._settings.qdrant_url or str(self._settings.qdrant_path)
        return MemoryStats(embedder=self.model_id, vector_store=where, collections=counts)

    async def rebuild(self) -> dict[str, int]:
        """Recreate every vector from the DuckDB entries (after a lost or changed Qdrant, or a new embedder)."""
        await self._vec("reset")
        counts: dict[str, int] = {c: 0 for c in MEMORY_COLLECTIONS}
        after = ""
        usable = {x.run_id: x.usable for x in await self._store.learnings()}
        while rows := await self._store.memory_entries_page(after=after, limit=256):
            entries = [dict(zip(ENTRY_COLUMNS.split(", "), r, strict=True)) for r in rows]
            vectors = await self._engines.embed([entry_embed_text(e) for e in entries], False)
            for collection in MEMORY_COLLECTIONS:
                points = [Point(id=e["id"], vector=v, payload=entry_payload(
                    e, {"usable": usable.get(e["source_id"], False)} if collection == "learnings" else None))
                    for e, v in zip(entries, vectors, strict=True) if e["collection"] == collection]
                if points:
                    await self._vec("upsert", collection, points)
                    counts[collection] += len(points)
            after = rows[-1][0]
        await self._store.mark_embedded(self.model_id)
        self._reembed = False
        self._retrieval.forget()
        _log.info("memory.rebuilt", **counts)
        return counts

    async def wait_indexed(self) -> None:
        """Wait for the uploads in progress (tests and the CLI)."""
        while self._indexing:
            await asyncio.gather(*list(self._indexing.values()), return_exceptions=True)

    async def settle(self, run_id: str, timeout_s: float = 30.0) -> bool:
        """Wait until a finished run has been remembered (the CLI, before it stops its own app)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._remembering == 0 and await self._store.get_learning(run_id) is not None:
                return True
            await asyncio.sleep(0.05)
        return False

    async def close(self) -> None:
        """Release Qdrant's local path (the CLI's own Memory, when the app is not running)."""
        if self._starting is not None:
            await self._starting
        if self._resuming is not None:
            await self._resuming
        await self._engines.close()

    async def configure(self, settings: Settings) -> None:
        self._settings = self._engines.settings = self._retrieval.settings = settings

    async def ping(self) -> bool:
        return True


ActorMemory = actor_class(Memory)  # what Ray runs (see actors.runtime.boot)
