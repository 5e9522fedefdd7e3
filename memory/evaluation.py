"""Retrieval quality on a labeled set: recall@k and MRR, and a run of the set through the real path
(extract → chunk_text → embedder → VectorStore → search).

The set is a folder with docs/*.md and questions.jsonl ({"question", "doc", "answer"} a line).
A retrieved chunk is relevant when it comes from the labeled doc and contains the answer phrase
(case and whitespace ignored).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.extract import extract
from memory.chunking import Chunk, chunk_text
from memory.embedder import Embedder
from memory.vectors import Engine, Point, VectorStore

EVAL_USER = "eval"
EVAL_COLLECTION = "documents"


@dataclass(frozen=True)
class LabeledQuestion:
    question: str
    doc: str
    answer: str


@dataclass(frozen=True)
class Miss:
    """A question whose answer was not in the top k, with what came back instead."""

    question: str
    doc: str
    answer: str
    rank: int | None  # 1-based rank of the first relevant chunk within the search depth
    answer_in_a_chunk: bool  # False: chunking split the answer phrase; no chunk can be relevant
    top_docs: tuple[str, ...]  # docs of the first k hits


@dataclass(frozen=True)
class RetrievalResult:
    k: int
    recall_at_k: float
    mrr: float  # mean reciprocal rank within `depth` hits
    depth: int
    questions: int
    documents: int
    chunks: int
    misses: tuple[Miss, ...]


def recall_at_k(ranked_relevance: Sequence[Sequence[bool]], k: int) -> float:
    """Share of queries with at least one relevant result among their first k."""
    if not ranked_relevance:
        return 0.0
    return sum(any(r[:k]) for r in ranked_relevance) / len(ranked_relevance)


def mrr(ranked_relevance: Sequence[Sequence[bool]]) -> float:
    """Mean over queries of 1/rank of the first relevant result (0 when none is relevant)."""
    if not ranked_relevance:
        return 0.0
    return sum(_reciprocal_rank(r) for r in ranked_relevance) / len(ranked_relevance)


def _reciprocal_rank(ranked: Sequence[bool]) -> float:
    return next((1.0 / (i + 1) for i, rel in enumerate(ranked) if rel), 0.0)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def is_relevant(q: LabeledQuestion, doc: str, text: str) -> bool:
    return doc == q.doc and _norm(q.answer) in _norm(text)


def load_labeled_set(root: Path) -> tuple[dict[str, bytes], list[LabeledQuestion]]:
    """The docs (file name → bytes) and questions; every question must name a doc that exists."""
    docs = {p.name: p.read_bytes() for p in sorted((root / "docs").iterdir()) if p.is_file()}
    questions = [LabeledQuestion(**json.loads(line))
                 for line in (root / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    unknown = sorted({q.doc for q in questions} - set(docs))
    if unknown:
        raise ValueError(f"questions name docs that are not in {root / 'docs'}: {', '.join(unknown)}")
    return docs, questions


def chunk_document(filename: str, data: bytes) -> tuple[str, list[Chunk]]:
    """The title and chunks of one file, as ingest makes them."""
    extracted = extract(filename, data)
    return extracted.title, chunk_text(extracted.text)


def index_documents(store: VectorStore, embedder: Embedder, docs: dict[str, bytes], *,
                    user_id: str = EVAL_USER, collection: str = EVAL_COLLECTION) -> int:
    """Chunk, embed and upsert every doc; the payload keeps the chunk text. Returns the chunk count."""
    rows: list[tuple[str, str, Chunk]] = []
    for name, data in docs.items():
        title, chunks = chunk_document(name, data)
        rows.extend((name, title, c) for c in chunks)
    vectors = embedder.embed([c.embed_text(title) for _, title, c in rows])
    now = time.time()
    points = [Point(id=str(uuid.uuid4()), vector=vec, payload={
        "user_id": user_id, "source": "upload", "source_id": name, "timestamp": now, "tags": [],
        "title": title, "heading": c.heading, "chunk_index": c.index, "text": c.text,
    }) for (name, title, c), vec in zip(rows, vectors, strict=True)]
    store.upsert(collection, points)
    return len(points)


def evaluate_retrieval(embedder: Embedder, root: Path, *, k: int = 5, depth: int = 10,
                       engine: Engine = "local") -> RetrievalResult:
    """Index the labeled docs in a fresh embedded store and score every question."""
    docs, questions = load_labeled_set(root)
    with tempfile.TemporaryDirectory(prefix="maos-eval-") as tmp:
        store = VectorStore(embedder.dim, path=Path(tmp) / "qdrant", engine=engine)
        try:
            store.ensure_collections()
            n_chunks = index_documents(store, embedder, docs)
            chunked = {name: [c.text for c in chunk_document(name, data)[1]] for name, data in docs.items()}
            qvecs = embedder.embed([q.question for q in questions])
            ranked: list[list[bool]] = []
            misses: list[Miss] = []
            for q, qv in zip(questions, qvecs, strict=True):
                hits = store.search(EVAL_COLLECTION, qv, user_id=EVAL_USER, limit=depth)
                rel = [is_relevant(q, h.payload["source_id"], h.payload["text"]) for h in hits]
                ranked.append(rel)
                if not any(rel[:k]):
                    rank = next((i + 1 for i, r in enumerate(rel) if r), None)
                    in_chunk = any(is_relevant(q, q.doc, t) for t in chunked[q.doc])
                    misses.append(Miss(q.question, q.doc, q.answer, rank, in_chunk,
                                       tuple(h.payload["source_id"] for h in hits[:k])))
        finally:
            store.close()
    return RetrievalResult(k=k, recall_at_k=recall_at_k(ranked, k), mrr=mrr(ranked), depth=depth,
                           questions=len(questions), documents=len(docs), chunks=n_chunks,
                           misses=tuple(misses))
