"""What a sub-agent costs as a named task of its pool's own (issue 22 item 5), measured alone.

    .venv/bin/python -m benchmarks.named_tasks_bench          # N=1000 by default (BENCH_STEPS)

One async actor starts N no-op steps, as the pool does: as asyncio tasks (before), and as named
tasks submitted to its own handle (``actors.runtime.named_tasks.RayTasks``: what Ray's dashboard
lists), and waits for all to run. Prints the wall time of each and the difference per step; the
actor's CPU time per step too (what the pool process pays), medians of ``BENCH_REPEATS`` runs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import ray

from actors.runtime.named_tasks import LocalTasks, RayTasks, task_name


class _Starter:
    """An async actor that starts ``n`` steps one way and returns when every one has run."""

    def __init__(self) -> None:
        self._left = 0
        self._all_ran: asyncio.Event | None = None

    async def step(self, i: int) -> None:
        await asyncio.sleep(0)
        self._left -= 1
        if self._left == 0 and self._all_ran is not None:
            self._all_ran.set()

    async def start(self, n: int, named: bool) -> tuple[float, float]:
        tasks: Any = RayTasks() if named else LocalTasks(self)
        self._left, self._all_ran = n, asyncio.Event()
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            tasks.start("step", task_name("writing", "bench-run", f"s{i}"), i)
        await self._all_ran.wait()
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    n = int(os.environ.get("BENCH_STEPS", "1000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "5"))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="bench-named-tasks")
    try:
        actor: Any = ray.remote(_Starter).options(max_concurrency=100_000).remote()
        ray.get(actor.start.remote(10, True))  # warm: the handle, the first submissions
        plain = [ray.get(actor.start.remote(n, False)) for _ in range(repeats)]
        named = [ray.get(actor.start.remote(n, True)) for _ in range(repeats)]
    finally:
        ray.shutdown()
    pw, pc = statistics.median(w for w, _ in plain), statistics.median(c for _, c in plain)
    nw, nc = statistics.median(w for w, _ in named), statistics.median(c for _, c in named)
    print(f"{n} steps, medians of {repeats}:")
    print(f"  asyncio tasks: {pw * 1000:8.1f} ms wall, {pc * 1000:8.1f} ms CPU of the actor")
    print(f"  named tasks:   {nw * 1000:8.1f} ms wall, {nc * 1000:8.1f} ms CPU of the actor")
    print(f"  per step:      +{(nw - pw) / n * 1e6:.0f} us wall, +{(nc - pc) / n * 1e6:.0f} us CPU")


if __name__ == "__main__":
    main()
