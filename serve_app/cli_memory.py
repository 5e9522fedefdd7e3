"""``maos memory …`` and ``maos export finetune``: through the running app, or on the data files here."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from actors.runtime.apis import MemoryApi, StoreApi
from core.errors import ConfigError, IngestError
from core.settings import Settings
from serve_app import audit


def add_commands(sub: Any) -> dict[str, Callable[[Settings, argparse.Namespace], int]]:
    mem = sub.add_parser("memory", help="long-term memory: add files, rebuild the vectors").add_subparsers(
        dest="memory_command", required=True)
    add = mem.add_parser("add", help="store files (txt, md, pdf, docx, csv, html) in memory")
    add.add_argument("files", nargs="+", type=Path)
    add.add_argument("--sop", action="store_true", help="they are standard operating procedures")
    add.add_argument("--tags", default="", help="comma-separated tags")
    mem.add_parser("rebuild", help="recreate the Qdrant collections from the DuckDB memory entries")
    mem.add_parser("stats", help="points per collection")
    export = sub.add_parser("export", help="export data").add_subparsers(dest="export_command", required=True)
    ft = export.add_parser("finetune", help="approved examples as chat-format JSONL (for a LoRA fine-tune)")
    ft.add_argument("--out", required=True, type=Path)
    ft.add_argument("--user", default=None, help="whose rated runs (login name or id; default: the install's "
                                                 "first admin): one person's at a time")
    return {"memory": _memory, "export": _export}


def running_app(settings: Settings) -> Any:
    """The app running on this data directory (joined through Ray), or None."""
    from actors.runtime import wiring

    address = wiring.app_address(settings)
    if address is None:
        return None
    wiring.init_ray(settings, address)
    return wiring.connect(settings, None)  # type: ignore[arg-type]


def app_or_file(settings: Settings, busy_wait_s: float = 60.0) -> tuple[Any, Any]:
    """``(app, None)`` with the app running on this data directory, else ``(None, store)`` with the
    database file opened here (a Store, to close). While another process holds the file (an app
    starting, another command reading it), the app is looked for again each second, up to ``busy_wait_s``."""
    from actors.storage.database import DatabaseBusy, database_keys
    from actors.store import Store

    deadline = time.monotonic() + busy_wait_s
    while True:
        app = running_app(settings)
        if app is not None:
            return app, None
        try:
            return None, Store(str(settings.db_path), keys=database_keys(settings), busy_wait_s=1.0)
        except DatabaseBusy:
            if time.monotonic() >= deadline:
                raise


def _with_memory(settings: Settings, work: Callable[[MemoryApi, StoreApi], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``work(memory, store)`` against the running app's Memory and Store actors, else ones opened here."""
    from actors.runtime.handles import LocalHandle
    from actors.runtime.typed import typed

    app, store = app_or_file(settings)
    if app is not None:
        return asyncio.run(work(app.memory, app.store))
    from actors.memory import Memory

    async def local() -> Any:
        try:
            memory = Memory(settings, LocalHandle(store, "store"))
            result = await work(typed(LocalHandle(memory, "memory"), MemoryApi),
                                typed(LocalHandle(store, "store"), StoreApi))
            await memory.wait_indexed()
            await memory.close()
            await store.flush()
            return result
        finally:
            store.close()

    return asyncio.run(local())


async def _rebuild(memory: MemoryApi, store: StoreApi, user_id: str) -> dict[str, int]:
    """Recreate the vectors from DuckDB, audited (``memory.rebuilt``, with the points per collection) as the CLI's."""
    counts = await memory.rebuild()
    await audit.record(store, "memory.rebuilt", user_id, "cli", points=counts)
    return counts


def _memory(settings: Settings, args: argparse.Namespace) -> int:
    if args.memory_command == "rebuild":
        counts = _with_memory(settings, lambda m, s: _rebuild(m, s, settings.user_id))
        print("rebuilt: " + ", ".join(f"{n} {c}" for c, n in counts.items()))
        return 0
    if args.memory_command == "stats":
        stats = _with_memory(settings, lambda m, _: m.stats(settings.user_id))
        print(f"embedder {stats.embedder}; vectors at {stats.vector_store}")
        for c, n in stats.collections.items():
            print(f"  {c}: {n}")
        return 0
    code = 0
    tags = [t for t in args.tags.split(",") if t.strip()]
    for path in args.files:
        async def add(m: Any, _: Any, path: Path = path) -> Any:
            result = await m.ingest(user_id=settings.user_id, filename=path.name, data=path.read_bytes(),
                                  kind="sop" if args.sop else "doc", tags=tags)
            await m.wait_indexed()
            return result
        try:
            result = _with_memory(settings, add)
        except (IngestError, OSError) as exc:
            print(f"maos: {exc}", file=sys.stderr)
            code = 2
            continue
        d = result.document
        print(f"{path.name}: {'already stored as' if result.duplicate else 'stored'} {d.id} ({d.chunks} pieces)")
    return code


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from actors.agents import all_specs
    from actors.agents.planning import plan_messages
    from actors.agents.subagent import subagent_messages
    from actors.runtime.typed import blocking
    from memory.finetune import examples, training_contexts, write_jsonl
    from serve_app.cli import _store

    store = _store(settings)
    user_id = settings.user_id
    if args.user is not None:
        found_user = next((u for u in blocking(store.users(), timeout=30) if args.user in (u.name, u.id)), None)
        if found_user is None:
            raise ConfigError(f"no account '{args.user}' (maos users list)")
        user_id = found_user.id
    learnings = blocking(store.learnings(user_id), timeout=60)
    found = {x.run_id: blocking(store.get_run(x.run_id), timeout=30) for x in learnings if x.usable}
    runs = {k: v for k, v in found.items() if v is not None}
    # the master's messages as it asks them now: the conversation as it was, the decision's prompt
    contexts = training_contexts(learnings, runs, lambda c: blocking(store.get_conversation(c), timeout=30),
                                 lambda r: blocking(store.get_run(r), timeout=30), settings.context_token_budget)
    decide = settings.answer_directly
    rows = examples(learnings, runs, contexts=contexts, decide=decide, step_messages=subagent_messages,
                    master_messages=lambda request, context: plan_messages(all_specs(), request, context=context,
                                                                           decide=decide))
    counts = write_jsonl(rows, str(args.out))
    print(f"wrote {sum(counts.values())} examples to {args.out}")
    for agent, n in sorted(counts.items()):
        print(f"  {agent}: {n}")
    return 0
