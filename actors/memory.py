"""The Memory actor: the one owner of the vector store (Qdrant's local path is locked to one
process) and of the embedding model (loaded once, here).

Every item it stores is first a ``memory_entries`` row in DuckDB (through the Store), then a point
in Qdrant with the same id, so ``rebuild`` can recreate Qdrant from DuckDB. Embedding and vector
calls run in worker threads: queries on one, uploads on another, so a large upload does not hold
up the retrieval a plan is waiting for.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import structlog

from actors._boot import actor_class
from actors._memory_retrieval import Retrieval
from actors._memory_tables import ENTRY_COLUMNS
from actors.handles import Handle
from actors.memory_context import (
    GatewayEmbedder,
    SourceRecorder,
    content_hash,
    entry_embed_text,
    entry_payload,
)
from core.crypto import Sealer
from core.errors import IngestError, NotFound
from core.extract import Limits, extract
from core.memory_schemas import (
    DocumentKind,
    Feedback,
    LearningView,
    MemoryStats,
    UploadResult,
)
from core.schemas import MEMORY_COLLECTIONS, MemoryCollection, RunView
from core.settings import Settings
from memory.chunking import Chunk, chunk_text
from memory.embedder import MODEL_ID, CoalescingEmbedder, Embedder, local_embedder
from memory.vectors import Point, VectorStore

_log = structlog.get_logger("maos.memory")
_BATCH = 32


class Memory(Retrieval):
    def __init__(self, settings: Settings, store: Handle, gateway: Handle | None = None) -> None:
        self._settings = settings
        self._store = store
        self._gateway = gateway
        self._sources = SourceRecorder(store)
        self._query_thread = ThreadPoolExecutor(1, thread_name_prefix="memory-query")
        self._ingest_thread = ThreadPoolExecutor(1, thread_name_prefix="memory-ingest")
        self._vector_thread = ThreadPoolExecutor(1, thread_name_prefix="memory-vectors")
        self._local: Embedder | None = None  # uploads: all cores
        self._queries: CoalescingEmbedder | None = None  # one core, concurrent queries batched
        self._remote: GatewayEmbedder | None = None
        self._vectors: VectorStore | None = None
        self._has_memories: dict[str, bool] = {}
        self._indexing: dict[str, asyncio.Task[None]] = {}
        self._opening = asyncio.Lock()
        self._remembering = 0
        self._run_locks: dict[str, asyncio.Lock] = {}
        self._reembed = False  # the entries were embedded by another model: rebuild on opening
        self._born = time.time()  # uploads accepted before this are a previous incarnation's
        try:  # opening now also finishes, after Ray restarts this actor, the uploads it was indexing
            self._starting: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self.start())
        except RuntimeError:  # built outside an event loop: the first call opens what it needs
            self._starting = None
        self._resuming: asyncio.Task[int] | None = None

    # --- parts, opened on first use -------------------------------------------------------

    async def _embed(self, texts: Sequence[str], interactive: bool) -> np.ndarray:
        if self._settings.embedder == "ollama":
            if self._gateway is None:
                raise IngestError("the Ollama embedder needs the LLM gateway")
            if self._remote is None:
                probe = await self._gateway.call("embed", ["probe"], self._settings.embedding_model)
                self._remote = GatewayEmbedder(self._gateway, self._settings.embedding_model, len(probe[0]))
            return await self._remote.embed(texts)
        loop = asyncio.get_running_loop()
        if interactive:
            if self._queries is None:
                one_core = await loop.run_in_executor(self._query_thread, local_embedder, 1)
                self._queries = CoalescingEmbedder(one_core, self._query_thread)
            return await self._queries.embed(list(texts))
        if self._local is None:
            self._local = await loop.run_in_executor(self._ingest_thread, local_embedder)
        return await loop.run_in_executor(self._ingest_thread, self._local.embed, list(texts))

    @property
    def model_id(self) -> str:
        if self._settings.embedder == "ollama":
            return f"ollama/{self._settings.embedding_model}"
        return MODEL_ID

    async def _vec(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the vector store in its own thread (opening it, and its collections, the first time)."""
        return await self._with_vectors(lambda v: getattr(v, method)(*args, **kwargs))

    async def _with_vectors(self, work: Callable[[VectorStore], Any]) -> Any:
        """Run ``work`` on the vector store in its thread: several searches cost one hop."""
        loop = asyncio.get_running_loop()
        async with self._opening:
            if self._vectors is None:
                dim = (await self._embed(["dimension probe"], True)).shape[1]
                s = self._settings
                path = None if s.qdrant_url else s.qdrant_path
                key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
                vectors = await loop.run_in_executor(
                    self._vector_thread,
                    lambda: VectorStore(dim, path=path, url=s.qdrant_url, api_key=key, engine=s.vector_engine,
                                        sealer=Sealer.from_settings(s)))
                # Entries embedded by another model (the embedder was changed): their vectors cannot be
                # searched with this one's, and may not even have its size. Start empty, re-embed below.
                stale = (await self._store.call(
                    "read", "SELECT count(*) FROM memory_entries WHERE embedding_model IS DISTINCT FROM ?",
                    [self.model_id]))[0][0]
                if stale:
                    _log.warning("memory.embedder_changed", entries=stale, model_id=self.model_id)
                await loop.run_in_executor(self._vector_thread, vectors.reset if stale else vectors.ensure_collections)
                self._vectors = vectors
                self._reembed = bool(stale)
                self._resuming = loop.create_task(self._resume())  # also after Ray restarts this actor
        vectors = self._vectors
        return await loop.run_in_executor(self._vector_thread, lambda: work(vectors))

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
        for user_id, doc_id in await self._store.call("read",
                "SELECT user_id, id FROM documents WHERE status = 'indexing' AND created_at < ?", [self._born]):
            view = await self._store.call("get_document", user_id, doc_id)
            if view is not None:
                await self._drop_vectors(await self._store.call("delete_memory_entries", doc_id))
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
        loop = asyncio.get_running_loop()
        extracted = await loop.run_in_executor(self._ingest_thread, extract, filename, data,
                                               Limits.from_settings(self._settings))
        chunks = chunk_text(extracted.text)
        if not chunks:
            raise IngestError("no text to store", filename)
        clean_tags = sorted({t.strip().lower() for t in tags if t.strip()} | ({"sop"} if kind == "sop" else set()))
        info, duplicate = await self._store.call(
            "add_document", uuid.uuid4().hex, user_id, kind, extracted.title, filename, extracted.text,
            content_hash(extracted.text), clean_tags, len(data), len(chunks))
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
                await self._store.call("document_progress", doc_id, min(start + _BATCH, len(chunks)))
            await self._store.call("finish_document", doc_id, None)
            _log.info("memory.indexed", document_id=doc_id, chunks=len(chunks))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the embedder or Qdrant failed: nothing of the document stays searchable
            _log.warning("memory.index_failed", document_id=doc_id, error=str(exc))
            if self._vectors is not None:  # else none were written (the store never opened)
                try:
                    await self._drop_vectors([(doc_id, collection)], by_source=True)
                except Exception as drop_exc:  # rebuild from DuckDB clears leftovers; the entries go below
                    _log.warning("memory.index_cleanup_failed", document_id=doc_id, error=str(drop_exc))
            await self._store.call("finish_document", doc_id, f"indexing failed: {exc}")

    async def _store_items(self, user_id: str, collection: MemoryCollection, source: str, source_id: str,
                           items: list[tuple[str, str, dict[str, Any], int]], interactive: bool,
                           extra: dict[str, Any] | None = None) -> list[str]:
        """Entries (content, text to embed, metadata, index) → DuckDB rows, then points. Returns the ids."""
        if not items:
            return []
        vectors = await self._embed([embed for _, embed, _, _ in items], interactive)
        now = time.time()
        ids = [str(uuid.uuid4()) for _ in items]
        rows = [(pid, user_id, collection, source, source_id, content_hash(content), pid, json.dumps(meta), now,
                 content, index, self.model_id) for pid, (content, _, meta, index) in zip(ids, items, strict=True)]
        await self._store.call("add_memory_entries", rows)
        await self._vec("upsert", collection, [
            Point(id=pid, vector=vec, payload=entry_payload(dict(zip(ENTRY_COLUMNS.split(", "), row, strict=True)), extra))
            for pid, vec, row in zip(ids, vectors, rows, strict=True)])
        self._has_memories[user_id] = True
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
        task = self._indexing.pop(doc_id, None)
        if task is not None:
            task.cancel()
        entries = await self._store.call("delete_document", user_id, doc_id)
        if entries is None:
            raise NotFound(f"no document '{doc_id}'")
        await self._drop_vectors(entries)
        for collection in ("documents", "sops"):  # points a cancelled batch wrote after its rows were read
            await self._vec("delete", collection, source_id=doc_id)
        self._has_memories.pop(user_id, None)

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
        await self._store.call("record_learning", view)
        title = " ".join(run.message.split())[:80]
        said = f"User asked: {run.message}\nAnswer: {run.summary or run.error or ''}"[:4000]
        kept = await self._store_items(run.user_id, "conversations", "conversation", run.id, [
            (said, said, {"title": title, "link": f"/api/conversations/{run.conversation_id}", "tags": []}, 0)], False)
        learning: LearningView = await self._store.call("get_learning", run.id)  # with any feedback given
        kept += await self._store_items(run.user_id, "learnings", "run", run.id, [
            (run.message, run.message, {"title": title, "link": f"/api/runs/{run.id}/learning", "tags": []}, 0)],
            False, extra={"usable": learning.usable})
        # A run that ends again (a retried step) replaces what it left before: new points first, then
        # the old ones go, so a plan made meanwhile never finds the run missing.
        await self._drop_vectors(await self._store.call("delete_memory_entries", run.id, kept))
        return learning

    async def feedback(self, run_id: str, feedback: Feedback) -> LearningView:
        async with self._run_lock(run_id):
            learning: LearningView | None = await self._store.call("set_feedback", run_id, feedback)
            if learning is None:  # feedback came before the run's learning was written: write it now
                view: RunView | None = await self._store.call("get_run", run_id)
                if view is None or view.run.status not in ("done", "failed"):
                    raise NotFound(f"no learning for run '{run_id}' (it has not ended)")
                await self._remember(view)
                learning = await self._store.call("set_feedback", run_id, feedback)
                assert learning is not None
            ids = [r[0] for r in await self._store.call(
                "read", "SELECT id FROM memory_entries WHERE source_id = ? AND collection = 'learnings'", [run_id])]
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
        usable = {x.run_id: x.usable for x in await self._store.call("learnings")}
        while rows := await self._store.call("memory_entries_page", after, 256):
            entries = [dict(zip(ENTRY_COLUMNS.split(", "), r, strict=True)) for r in rows]
            vectors = await self._embed([entry_embed_text(e) for e in entries], False)
            for collection in MEMORY_COLLECTIONS:
                points = [Point(id=e["id"], vector=v, payload=entry_payload(
                    e, {"usable": usable.get(e["source_id"], False)} if collection == "learnings" else None))
                    for e, v in zip(entries, vectors, strict=True) if e["collection"] == collection]
                if points:
                    await self._vec("upsert", collection, points)
                    counts[collection] += len(points)
            after = rows[-1][0]
        await self._store.call("mark_embedded", self.model_id)
        self._reembed = False
        self._has_memories.clear()
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
            if self._remembering == 0 and await self._store.call("get_learning", run_id) is not None:
                return True
            await asyncio.sleep(0.05)
        return False

    async def close(self) -> None:
        """Release Qdrant's local path (the CLI's own Memory, when the app is not running)."""
        if self._starting is not None:
            await self._starting
        if self._resuming is not None:
            await self._resuming
        if self._vectors is not None:
            await asyncio.get_running_loop().run_in_executor(self._vector_thread, self._vectors.close)
            self._vectors = None

    async def configure(self, settings: Settings) -> None:
        self._settings = settings

    async def ping(self) -> bool:
        return True


ActorMemory = actor_class(Memory)  # what Ray runs (see actors._boot)
