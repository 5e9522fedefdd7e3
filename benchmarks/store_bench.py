"""`make bench`, Store part (with the runtime part): committed queue transitions per second through the
Store against plain DuckDB auto-commit, and the encrypted file against the plain one."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path


async def store_bench(n: int = 5000, repeats: int = 3) -> dict[str, float]:
    """Medians of ``repeats`` runs each (a few seconds apiece; one run here moves ±20%)."""
    import duckdb

    from core.crypto import Sealer, new_key_text

    tmp = Path(tempfile.mkdtemp())
    key = Sealer.from_text(new_key_text()).derived("duckdb")
    store_rates, encrypted_rates, plain_rates = [], [], []
    for i in range(repeats):
        store_rates.append(await _store_rate(tmp / f"s{i}.duckdb", [], n))
        encrypted_rates.append(await _store_rate(tmp / f"e{i}.duckdb", key, n))
        conn = duckdb.connect(str(tmp / f"plain{i}.duckdb"))
        conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, status TEXT, attempts INT)")
        conn.execute("INSERT INTO t SELECT 'k' || i, 'ready', 0 FROM range(?) r(i)", [1000])
        started = time.perf_counter()
        for j in range(1000):
            conn.execute("UPDATE t SET status = 'running', attempts = attempts + 1 WHERE id = ?", [f"k{j}"])
        plain_rates.append(1000 / (time.perf_counter() - started))
        conn.close()
    store_rate, encrypted_rate, plain_rate = (statistics.median(r) for r in (store_rates, encrypted_rates, plain_rates))
    return {"store_transitions_per_s": store_rate, "encrypted_store_transitions_per_s": encrypted_rate,
            "plain_autocommit_per_s": plain_rate, "ratio": store_rate / plain_rate,
            "encrypted_ratio": encrypted_rate / store_rate, "repeats": repeats,
            "store_transitions_per_s_runs": store_rates}


async def _store_rate(path: Path, keys: list[str], n: int) -> float:
    """Committed queue transitions per second: n steps claimed and completed by 8 workers."""
    from actors.store import Store
    from core.schemas import Plan, PlanStep, StepOutcome

    store = Store(str(path), keys=keys)
    run = await store.create_run("bench", "u")
    await store.enqueue_plan(run.id, Plan(goal="g", steps=[PlanStep(id=f"s{i}", agent="email", instruction="x") for i in range(n)]), 3)
    started = time.perf_counter()

    async def worker() -> int:
        moved = 0
        while True:
            claimed = await store.claim({"email": 50}, {"email": ["e/0"]}, 30)
            if not claimed:
                return moved
            await store.complete([StepOutcome(task_id=t.id, attempt=t.attempts, ok=True, result="r") for t, _, _ in claimed])
            moved += 2 * len(claimed)

    moved = sum(await asyncio.gather(*(worker() for _ in range(8))))
    rate = moved / (time.perf_counter() - started)
    store.close()
    return rate
