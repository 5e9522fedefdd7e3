"""Retrieval quality: the metric helpers, the labeled set's shape, and recall@5 with the real embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memory.evaluation import LabeledQuestion, is_relevant, load_labeled_set, mrr, recall_at_k

ROOT = Path(__file__).resolve().parents[1] / "data" / "retrieval"


def test_recall_and_mrr() -> None:
    ranked = [[False, True, False], [True], [False, False, False, False, False, True], []]
    assert recall_at_k(ranked, 1) == 0.25
    assert recall_at_k(ranked, 2) == 0.5
    assert recall_at_k(ranked, 5) == 0.5
    assert recall_at_k(ranked, 6) == 0.75
    assert mrr(ranked) == pytest.approx((1 / 2 + 1 + 1 / 6 + 0) / 4)
    assert recall_at_k([], 5) == 0.0 and mrr([]) == 0.0


def test_relevance_needs_the_doc_and_the_phrase() -> None:
    q = LabeledQuestion("how long?", "refunds.md", "within 30 days")
    assert is_relevant(q, "refunds.md", "Returns are accepted\nWITHIN  30\ndays of delivery.")
    assert not is_relevant(q, "invoicing.md", "within 30 days")
    assert not is_relevant(q, "refunds.md", "within 60 days")


def test_labeled_set_is_well_formed() -> None:
    docs, questions = load_labeled_set(ROOT)
    assert 8 <= len(docs) <= 12 and len(questions) >= 40
    for name, data in docs.items():
        words = len(data.decode("utf-8").split())
        assert 300 <= words <= 900, (name, words)
    for q in questions:
        assert " ".join(q.answer.split()) in " ".join(docs[q.doc].decode("utf-8").split()), q
    assert len({q.question for q in questions}) == len(questions)
    lines = (ROOT / "questions.jsonl").read_text().splitlines()
    assert all(set(json.loads(line)) == {"question", "doc", "answer"} for line in lines)


@pytest.mark.slow
def test_recall_at_5_with_the_real_embedder() -> None:
    from memory.embedder import local_embedder
    from memory.evaluation import evaluate_retrieval

    result = evaluate_retrieval(local_embedder(), ROOT, k=5)
    report = "\n".join(f"  {m.doc}: {m.question!r} rank={m.rank} answer_in_a_chunk={m.answer_in_a_chunk} "
                       f"top={list(m.top_docs)}" for m in result.misses)
    assert result.recall_at_k >= 0.9, f"recall@5 {result.recall_at_k:.3f} MRR {result.mrr:.3f}; misses:\n{report}"
