"""Memory bench: retrieval quality, ingest rate and query latency of the default embedder on embedded
Qdrant (on disk, in a temp dir).

    .venv/bin/python -m benchmarks.memory_bench            # or BENCH_PARTS=memory make bench

Quality: recall@5 and MRR@10 on tests/data/retrieval. Ingest: chunk + embed + upsert of the labeled
docs. Query: embed one question + filtered search (limit 5) at each corpus size. The corpus is
`real` chunks of generated text that are really embedded (sentences of the labeled docs, shuffled,
numbers changed); sizes above that are filled with perturbed copies of those vectors (noise added,
renormalized): vectors that are not embedded text, said so in the output. 10% of the points belong
to other users, so the user filter does work.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "retrieval"
RESULTS = ROOT / "benchmarks" / "results"
USER = "bench"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _token_counts(texts: list[str]) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ROOT / "memory" / "data" / "minilm" / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return [len(e.ids) for e in tok.encode_batch(texts)]


def _payload(source_id: str, text: str, user: str = USER) -> dict[str, Any]:
    return {"user_id": user, "source": "upload", "source_id": source_id, "timestamp": time.time(),
            "tags": [], "text": text}


def _ingest(embedder: Any, repeats: int = 3) -> dict[str, Any]:
    """chunk + embed + upsert of the labeled docs, `repeats` times; the median run is reported."""
    from memory.evaluation import chunk_document, load_labeled_set
    from memory.vectors import Point, VectorStore

    docs, _ = load_labeled_set(DATA)
    runs = []
    with tempfile.TemporaryDirectory(prefix="maos-bench-") as tmp:
        store = VectorStore(embedder.dim, path=Path(tmp) / "q")
        store.ensure_collections()
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = [(name, title, c) for name, data in docs.items()
                    for title, chunks in [chunk_document(name, data)] for c in chunks]
            texts = [c.embed_text(title) for _, title, c in rows]
            t1 = time.perf_counter()
            vecs = embedder.embed(texts)
            t2 = time.perf_counter()
            store.upsert("documents", [Point(str(uuid.uuid4()), v, _payload(n, c.text))
                                       for (n, _, c), v in zip(rows, vecs, strict=True)])
            t3 = time.perf_counter()
            runs.append({"chunks": len(rows), "chunk_s": t1 - t0, "embed_s": t2 - t1,
                         "upsert_s": t3 - t2, "total_s": t3 - t0})
        store.close()
    run = sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2]
    tokens = _token_counts(texts)
    return {**run, "chunks_per_s": run["chunks"] / run["total_s"],
            "embed_chunks_per_s": run["chunks"] / run["embed_s"],
            "mean_tokens_per_chunk": statistics.fmean(tokens), "max_tokens_per_chunk": max(tokens),
            "mean_chars_per_chunk": statistics.fmean(len(t) for t in texts), "repeats": repeats}


def _generated_texts(n: int, seed: int = 7) -> list[str]:
    """n chunk-sized texts: 3-5 sentences of the labeled docs, shuffled, with their numbers changed."""
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted((DATA / "docs").glob("*.md")))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.split()) >= 5]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        picked = rng.choice(len(sentences), size=int(rng.integers(3, 6)), replace=False)
        chunk = " ".join(sentences[i] for i in picked)
        out.append(re.sub(r"\d+", lambda _m: str(int(rng.integers(1, 500))), chunk))
    return out


def _query_latency(embedder: Any, base: np.ndarray, base_texts: list[str], size: int,
                   questions: list[str], noise: float, engine: str) -> dict[str, Any]:
    from memory.vectors import Point, VectorStore

    rng = np.random.default_rng(size)
    with tempfile.TemporaryDirectory(prefix="maos-bench-") as tmp:
        store = VectorStore(embedder.dim, path=Path(tmp) / "q", engine=engine)  # type: ignore[arg-type]
        store.ensure_collections()
        idx = np.arange(size) % len(base)
        vecs = base[idx].copy()
        filled = np.arange(size) >= len(base)  # beyond the real chunks: perturbed copies
        vecs[filled] += rng.normal(0, noise, (int(filled.sum()), vecs.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        users = np.where(rng.random(size) < 0.9, USER, "other")
        t0 = time.perf_counter()
        for start in range(0, size, 5000):
            store.upsert("documents", [
                Point(str(uuid.uuid4()), vecs[j], _payload(f"gen-{idx[j] % 200}", base_texts[idx[j]], str(users[j])))
                for j in range(start, min(size, start + 5000))])
        upsert_s = time.perf_counter() - t0
        store.close()
        t0 = time.perf_counter()
        store = VectorStore(embedder.dim, path=Path(tmp) / "q", engine=engine)  # type: ignore[arg-type]  # reopen
        store.ensure_collections()
        open_s = time.perf_counter() - t0
        embedder.embed(questions[:2])  # warm
        total, search = [], []
        for q in questions:
            t0 = time.perf_counter()
            qv = embedder.embed([q])[0]
            t1 = time.perf_counter()
            hits = store.search("documents", qv, user_id=USER, limit=5)
            t2 = time.perf_counter()
            assert hits
            total.append((t2 - t0) * 1000)
            search.append((t2 - t1) * 1000)
        store.close()
    return {"engine": engine, "points": size, "embedded_text_points": min(size, len(base)),
            "filled_points": max(0, size - len(base)), "upsert_points_per_s": size / upsert_s,
            "reopen_s": open_s, "queries": len(questions),
            "query_ms_p50": _pct(total, 0.5), "query_ms_p95": _pct(total, 0.95),
            "search_ms_p50": _pct(search, 0.5), "search_ms_p95": _pct(search, 0.95)}


def run_memory(sizes: list[int] | None = None, real: int = 1000, queries: int = 100,
               engines: tuple[str, ...] = ("local", "edge")) -> dict[str, Any]:
    from memory.embedder import local_embedder
    from memory.evaluation import evaluate_retrieval, load_labeled_set

    sizes = sizes or [1000, 10000, 50000]
    t0 = time.perf_counter()
    embedder = local_embedder()
    embedder.embed(["warm up"])
    out: dict[str, Any] = {"model": embedder.model_id, "dim": embedder.dim,
                           "model_load_s": time.perf_counter() - t0}
    print("memory: quality…", flush=True)
    quality = evaluate_retrieval(embedder, DATA, k=5)
    out["quality"] = {"recall_at_5": quality.recall_at_k, "mrr_at_10": quality.mrr,
                      "questions": quality.questions, "documents": quality.documents,
                      "chunks": quality.chunks,
                      "misses": [{"question": m.question, "doc": m.doc, "rank": m.rank,
                                  "answer_in_a_chunk": m.answer_in_a_chunk, "top_docs": list(m.top_docs)}
                                 for m in quality.misses]}
    print("memory: ingest…", flush=True)
    out["ingest"] = _ingest(embedder)
    print(f"memory: embedding {real} generated chunks…", flush=True)
    texts = _generated_texts(real)
    t0 = time.perf_counter()
    base = np.asarray(embedder.embed(texts), dtype=np.float32)
    out["corpus"] = {"embedded_chunks": real, "embed_s": time.perf_counter() - t0,
                     "fill": "points past the embedded chunks are perturbed copies of their vectors "
                             "(gaussian noise sigma=0.02 per dim, renormalized), not embedded text",
                     "other_users_share": 0.1}
    _, labeled = load_labeled_set(DATA)
    qs = [q.question for q in labeled]
    qs = (qs * (queries // len(qs) + 1))[:queries]
    out["query"] = []
    for engine in engines:
        for size in sizes:
            print(f"memory: query at {size} ({engine})…", flush=True)
            out["query"].append(_query_latency(embedder, base, texts, size, qs, noise=0.02, engine=engine))
    return out


def plan_context_latency(base_url: str, queries: int = 100) -> dict[str, Any]:
    """What memory adds to a plan request: the master's Memory.context call through Ray (embed the
    request, one filtered search per collection, render within the token budget, look up past plans,
    record the run's sources), with the labeled docs uploaded to a running app."""
    import asyncio

    from actors.runtime import wiring
    from core.settings import Settings
    from integrations.llm.backend import Backend
    from memory.evaluation import load_labeled_set

    settings = Settings(data_dir=Path(tempfile.mkdtemp()) / "data", llm_provider="ollama", llm_base_url=base_url,
                        llm_model="sim-model", namespace=f"benchmem{uuid.uuid4().hex[:6]}", log_level="WARNING",
                        ray_num_cpus=2)
    backend = Backend(provider="ollama", base_url=base_url, planner_model="sim-model", worker_model="sim-model")
    docs, labeled = load_labeled_set(DATA)
    wiring.init_ray(settings)
    app = wiring.start_app(settings, backend)

    async def measure() -> list[float]:
        for i, (name, data) in enumerate(docs.items()):  # half as SOPs: both collections are searched
            await app.memory.ingest(user_id=USER, filename=name, data=data, kind="sop" if i % 2 else "doc")
        await app.memory.wait_indexed()
        questions = [q.question for q in labeled]
        for q in questions[:3]:
            await app.memory.context(user_id=USER, query=q)  # warm
        took = []
        for i in range(queries):
            t0 = time.perf_counter()
            await app.memory.context(user_id=USER, query=questions[i % len(questions)], run_id=f"bench-run-{i}")
            took.append((time.perf_counter() - t0) * 1000)
        return took

    try:
        took = asyncio.run(measure())
    finally:
        wiring.kill_app(app)
        wiring.shutdown_ray()
    return {"queries": queries, "documents": len(docs), "context_ms_p50": _pct(took, 0.5),
            "context_ms_p95": _pct(took, 0.95)}


def print_memory(r: dict[str, Any]) -> None:
    q, i = r["quality"], r["ingest"]
    print(f"\nmemory ({r['model']}, dim {r['dim']}, embedded Qdrant on disk)")
    print(f"retrieval: recall@5 {q['recall_at_5']:.3f}  MRR@10 {q['mrr_at_10']:.3f}  "
          f"({q['questions']} questions, {q['documents']} docs, {q['chunks']} chunks, {len(q['misses'])} misses)")
    print(f"ingest: {i['chunks_per_s']:.1f} chunks/s end to end (embed alone {i['embed_chunks_per_s']:.1f}/s), "
          f"{i['mean_tokens_per_chunk']:.0f} tokens/chunk mean, {i['chunks']} chunks; "
          f"chunk {i['chunk_s']:.2f} s, embed {i['embed_s']:.2f} s, upsert {i['upsert_s']:.2f} s")
    print("engine | points | embedded text | filled | query p50/p95 ms (embed+search) | search p50/p95 ms | upsert pts/s | reopen s")
    for s in r["query"]:
        print(f"{s['engine']:>6} | {s['points']:>6} | {s['embedded_text_points']:>13} | {s['filled_points']:>6} | "
              f"{s['query_ms_p50']:8.1f} / {s['query_ms_p95']:8.1f} | {s['search_ms_p50']:7.1f} / "
              f"{s['search_ms_p95']:7.1f} | {s['upsert_points_per_s']:12.0f} | {s['reopen_s']:8.2f}")
    print(f"fill: {r['corpus']['fill']}")
    if "plan_context" in r:
        c = r["plan_context"]
        print(f"memory added to a plan request (Memory.context through Ray, {c['documents']} docs): "
              f"p50 {c['context_ms_p50']:.1f} ms, p95 {c['context_ms_p95']:.1f} ms")


def main() -> None:
    """Alone: `python -m benchmarks.memory_bench` (no plan-context figure; `make bench` adds it)."""
    sizes = [int(s) for s in os.environ.get("BENCH_MEMORY_SIZES", "1000,10000,50000").split(",")]
    result = run_memory(sizes)
    print_memory(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": {"cores": os.cpu_count()}, "memory": result}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
