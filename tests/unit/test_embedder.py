"""The bundled MiniLM embedder: the vendored tokenizer, normalized vectors in input order, meaning."""

from __future__ import annotations

import numpy as np

from memory.embedder import DIM, local_embedder


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
