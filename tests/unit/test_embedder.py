"""The bundled MiniLM embedder: the vendored tokenizer, normalized vectors in input order, meaning."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memory.embedder import DIM, CoalescingEmbedder, local_embedder


def test_the_vendored_tokenizer_is_bert_uncased() -> None:
    embedder = local_embedder()
    encoding = embedder._tokenizer.encode("Hello, World! Refunds")
    assert encoding.tokens == ["[CLS]", "hello", ",", "world", "!", "ref", "##unds", "[SEP]"]
    assert encoding.ids[:3] == [101, 7592, 1010]


def test_vectors_are_normalized_in_input_order_and_batching_does_not_change_them() -> None:
    embedder = local_embedder()
    texts = ["short", "a much longer sentence about refunds and the thirty day window " * 3, "mid length text"]
    together = embedder.embed(texts)
    assert together.shape == (3, DIM) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)  # padding per batch does not leak into the mean
    assert embedder.embed([]).shape == (0, DIM)
    assert local_embedder() is embedder  # loaded once per process


def test_similar_meaning_scores_higher_than_a_different_topic() -> None:
    q, near, far = local_embedder().embed([
        "How many days does a customer have to ask for their money back?",
        "Refunds are granted within 30 days of purchase.",
        "The office printer is on the second floor next to the kitchen.",
    ])
    assert float(q @ near) > float(q @ far) + 0.2


class _Counting:
    """The real embedder, counting its calls; it fails on a text that says so."""

    model_id = "counting"
    dim = DIM

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        if any("FAIL" in t for t in texts):
            raise RuntimeError("model error")
        return local_embedder(1).embed(texts)


async def test_concurrent_queries_are_embedded_together_with_the_same_vectors() -> None:
    counting = _Counting()
    coalescing = CoalescingEmbedder(counting, ThreadPoolExecutor(1), max_batch=16)
    texts = [f"Handle item {i} of 40: write a note for the account" for i in range(40)]
    rows = await asyncio.gather(*(coalescing.embed([t]) for t in texts))
    assert np.allclose(np.vstack(rows), local_embedder(1).embed(texts), atol=1e-4)
    assert sum(counting.calls) == 40 and len(counting.calls) <= 4 and max(counting.calls) <= 16
    assert (await coalescing.embed([])).shape == (0, DIM)


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_still_runs() -> None:
    counting = _Counting()
    coalescing = CoalescingEmbedder(counting, ThreadPoolExecutor(1), max_batch=2)
    results = await asyncio.gather(*(coalescing.embed([t]) for t in ["a", "FAIL b", "c", "d"]),
                                   return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], RuntimeError)
    assert all(isinstance(r, np.ndarray) and r.shape == (1, DIM) for r in results[2:])
    with pytest.raises(RuntimeError, match="model error"):
        await coalescing.embed(["FAIL again"])
