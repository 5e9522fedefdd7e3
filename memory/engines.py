"""The embedding model and the vector store of the Memory actor, each opened once, on first use.

Embedding and vector calls run in worker threads: queries on one (concurrent ones embedded
together), uploads on another, the vector store on a third, so a large upload does not hold up
the retrieval a plan is waiting for. Embeddings come from the on-machine model, or from the LLM
server (Ollama) through a function the caller passes in (the gateway's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import structlog

from core.crypto import Sealer
from core.errors import IngestError
from core.settings import Settings
from memory.embedder import MODEL_ID, CoalescingEmbedder, Embedder, local_embedder
from memory.vectors import VectorStore

_log = structlog.get_logger("maos.memory")
T = TypeVar("T")

RemoteEmbed = Callable[[list[str], str], Awaitable[Sequence[Sequence[float]]]]
"""``embed(texts, model)``: vectors from the LLM server, one per text."""


class GatewayEmbedder:
    """Embeddings from the LLM server (Ollama), through ``embed`` (the gateway's litellm client)."""

    def __init__(self, embed: RemoteEmbed, model: str, dim: int) -> None:
        self.model_id = f"ollama/{model}"
        self.dim = dim
        self._embed = embed
        self._model = model

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = await self._embed(list(texts), self._model)
        arr = np.asarray(vectors, dtype=np.float32)
        return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


class Engines:
    """The embedder and the vector store, in their threads.

    ``stale_entries(model_id)`` counts the stored entries embedded by another model; when the vector
    store opens with any, it starts empty (their vectors cannot be searched with this model's, and may
    not even have its size). ``opened(stale)`` is called once the store is open, before any work on it.
    """

    def __init__(self, settings: Settings, remote_embed: RemoteEmbed | None,
                 stale_entries: Callable[[str], Awaitable[int]], opened: Callable[[bool], None]) -> None:
        self.settings = settings
        self._remote_embed = remote_embed
        self._stale_entries = stale_entries
        self._opened = opened
        self._query_thread = ThreadPoolExecutor(1, thread_name_prefix="memory-query")
        self._ingest_thread = ThreadPoolExecutor(1, thread_name_prefix="memory-ingest")
        self._vector_thread = ThreadPoolExecutor(1, thread_name_prefix="memory-vectors")
        self._local: Embedder | None = None  # uploads: all cores
        self._queries: CoalescingEmbedder | None = None  # one core, concurrent queries batched
        self._remote: GatewayEmbedder | None = None
        self._vectors: VectorStore | None = None
        self._opening = asyncio.Lock()

    @property
    def model_id(self) -> str:
        if self.settings.embedder == "ollama":
            return f"ollama/{self.settings.embedding_model}"
        return MODEL_ID

    @property
    def is_open(self) -> bool:
        """Whether the vector store has been opened (else nothing was written to it)."""
        return self._vectors is not None

    async def embed(self, texts: Sequence[str], interactive: bool) -> np.ndarray:
        """(n, dim) normalized rows; ``interactive`` for queries someone waits on, else uploads."""
        if self.settings.embedder == "ollama":
            if self._remote_embed is None:
                raise IngestError("the Ollama embedder needs the LLM gateway")
            if self._remote is None:
                probe = await self._remote_embed(["probe"], self.settings.embedding_model)
                self._remote = GatewayEmbedder(self._remote_embed, self.settings.embedding_model, len(probe[0]))
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

    async def in_ingest_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the uploads' thread (reading a file waits behind the upload before it)."""
        return await asyncio.get_running_loop().run_in_executor(self._ingest_thread, fn, *args)

    async def vec(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the vector store in its own thread (opening it, and its collections, the first time)."""
        return await self.with_vectors(lambda v: getattr(v, method)(*args, **kwargs))

    async def with_vectors(self, work: Callable[[VectorStore], T]) -> T:
        """Run ``work`` on the vector store in its thread: several searches cost one hop."""
        loop = asyncio.get_running_loop()
        async with self._opening:
            if self._vectors is None:
                dim = (await self.embed(["dimension probe"], True)).shape[1]
                s = self.settings
                path = None if s.qdrant_url else s.qdrant_path
                key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
                vectors = await loop.run_in_executor(
                    self._vector_thread,
                    lambda: VectorStore(dim, path=path, url=s.qdrant_url, api_key=key, engine=s.vector_engine,
                                        sealer=Sealer.from_settings(s)))
                stale = await self._stale_entries(self.model_id)
                if stale:
                    _log.warning("memory.embedder_changed", entries=stale, model_id=self.model_id)
                await loop.run_in_executor(self._vector_thread, vectors.reset if stale else vectors.ensure_collections)
                self._vectors = vectors
                self._opened(bool(stale))
        vectors = self._vectors
        assert vectors is not None
        return await loop.run_in_executor(self._vector_thread, lambda: work(vectors))

    async def close(self) -> None:
        """Release the vector store (Qdrant's local path is locked to one process)."""
        if self._vectors is not None:
            await asyncio.get_running_loop().run_in_executor(self._vector_thread, self._vectors.close)
            self._vectors = None
