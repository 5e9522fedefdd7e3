"""Chat bench: what reading the conversation and deciding to answer or plan add to planning.

    BENCH_PARTS=chat make bench            # or: .venv/bin/python -m benchmarks.chat_bench

The master (in process: the real gateway and litellm client, the Store on :memory:, no Ray) answers
a follow-up in a conversation of 1, 10 and 50 earlier turns, the last of which ran three steps (the
simulated model's plan for it is the same with or without the conversation, so only the request
grows). Three ways, each next to the others on the same simulated server:

- today: the plan schema and prompt, no conversation (``answer_directly`` off, budget 0);
- context: the same with the conversation (the default budget, 1,500 tokens; and 6,000 at 50 turns);
- decision: the answer-or-plan call with the conversation (the default).

Per case, medians over the repeats: the time to read the conversation (two or three Store reads and
the compaction), the time of the LLM call (gateway, client, server), the request as the server got
it (body bytes, its word count, and the messages' tokens estimated as the master does), and the
reply's words. And "hello", answered with no steps, against the plan of the same turn. The
simulated server's time does not grow with the prompt: a real model's prompt processing does, by
the added tokens over its prefill rate.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

REQUEST = "now draft a thank-you note to the venue managers"  # the same plan with or without the conversation
_RESULT = ("Saved the draft note for {venue}: a two-paragraph welcome with the dates, the room, parking, the "
           "catering contact and the agenda for the morning session, ready for review.")


async def _seed(store: Any, conversation: str, turns: int) -> None:
    """``turns`` earlier turns; the last one ran three steps whose results are in the Store."""
    from core.schemas import Plan, PlanStep, StepOutcome

    for i in range(turns):
        message = f"turn {i}: find the venues for the spring event and write a note for each of them"
        run = await store.create_run(message, "bench", conversation)
        if i < turns - 1:
            await store.finish_run(run.id, "done", f"Turn {i} done: three venues found and a note drafted for each; "
                                                   "the drafts wait for your review.", None)
            continue
        plan = Plan(goal="A note for each venue", steps=[
            PlanStep(id=f"s{k}", agent="writing", instruction=f"Write the note for venue {k}") for k in (1, 2, 3)])
        await store.enqueue_plan(run.id, plan, 3)
        claimed = await store.claim({"writing": 10}, {"writing": ["bench-pool"]}, 60.0)
        await store.complete([StepOutcome(task_id=t.id, attempt=t.attempts, ok=True,
                                          result=_RESULT.format(venue=f"venue {t.step_id}")) for t, _, _ in claimed])
        await store.finish_run(run.id, "done", "Three notes drafted, one per venue; they wait for your review.", None)


async def _case(master: Any, store: Any, conversation: str, message: str, base: str) -> dict[str, float]:
    """One answer: read the conversation, then the LLM call; and the request as the server got it."""
    from benchmarks.run import _sim_log
    from core.plan import Decision

    run = await store.create_run(message, "bench", "bench-scratch")  # the conversation read stays as seeded
    _sim_log(base)  # clear
    t0 = time.perf_counter()
    context = await master.conversation(conversation, run.id)
    t1 = time.perf_counter()
    outcome = await master.respond(message, "", run_id=run.id, context=context)
    t2 = time.perf_counter()
    (record,) = [r for r in _sim_log(base) if r["kind"] == "plan"]
    body = record["body"]
    return {"context_ms": (t1 - t0) * 1000, "llm_ms": (t2 - t1) * 1000, "total_ms": (t2 - t0) * 1000,
            "request_bytes": len(json.dumps(body)), "request_words": record["tokens_in"],
            "messages_tokens_est": sum(-(-len(m["content"]) // 4) for m in body["messages"]),
            "context_tokens_est": context.tokens(), "turns_kept": len(context.history),
            "reply_words": len(str(record.get("reply", "")).split()),
            "answered": isinstance(outcome, Decision)}


async def _measure(base: str, turns: list[int], repeats: int) -> dict[str, Any]:
    from actors.gateway import LLMGateway
    from actors.master import MasterAgent
    from actors.runtime.handles import LocalHandle
    from actors.store import Store
    from core.settings import Settings
    from integrations.llm.backend import Backend

    backend = Backend(provider="ollama", base_url=base, planner_model="sim-model", worker_model="sim-model")
    store = Store(":memory:")
    data = Path(tempfile.mkdtemp(prefix="maos-chat-bench-"))
    ways = {"today": Settings(data_dir=data, llm_retries=0, answer_directly=False, context_token_budget=0),
            "context": Settings(data_dir=data, llm_retries=0, answer_directly=False),
            "decision": Settings(data_dir=data, llm_retries=0),
            "context_6000": Settings(data_dir=data, llm_retries=0, answer_directly=False, context_token_budget=6000)}
    masters = {way: MasterAgent(settings, LocalHandle(store, "store"),
                                LocalHandle(LLMGateway(settings, backend, LocalHandle(store)), "gateway"))
               for way, settings in ways.items()}
    conversations = {}
    for n in turns:
        conversations[n] = f"bench-{n}"
        await _seed(store, conversations[n], n)
    cases: list[tuple[str, int, str]] = [("today", n, REQUEST) for n in turns]
    cases += [(way, n, REQUEST) for way in ("context", "decision") for n in turns]
    cases += [("context_6000", max(turns), REQUEST), ("decision", turns[len(turns) // 2], "hello")]
    for way, n, message in cases[:2]:  # warm the client and the server
        await _case(masters[way], store, conversations[n], message, base)
    samples: dict[tuple[str, int, str], list[dict[str, float]]] = {c: [] for c in cases}
    for _ in range(repeats):  # interleaved, so a slow moment of the machine touches every case alike
        for way, n, message in cases:
            samples[(way, n, message)].append(await _case(masters[way], store, conversations[n], message, base))
    store.close()
    rows = []
    for (way, n, message), runs in samples.items():
        row: dict[str, Any] = {"way": way, "earlier_turns": n, "message": message, "repeats": len(runs)}
        for key in runs[0]:
            row[key] = statistics.median(float(r[key]) for r in runs)
        rows.append(row)
    today = {r["earlier_turns"]: r for r in rows if r["way"] == "today"}
    for r in rows:
        base_row = today.get(r["earlier_turns"])
        if base_row is not None and r["message"] == REQUEST:
            r["added_ms"] = r["total_ms"] - base_row["total_ms"]
            r["added_request_bytes"] = r["request_bytes"] - base_row["request_bytes"]
    return {"repeats": repeats, "rows": rows}


def run_chat(base: str, turns: list[int] | None = None, repeats: int | None = None) -> dict[str, Any]:
    import httpx

    httpx.post(f"{base}/_sim/config", json={"log_bodies": True}, timeout=10).raise_for_status()
    try:
        config = httpx.get(f"{base}/_sim/config", timeout=10).json()
        result = asyncio.run(_measure(base, turns or [1, 10, 50], repeats or int(os.environ.get("BENCH_REPEATS", "5"))))
    finally:
        httpx.post(f"{base}/_sim/config", json={"log_bodies": False}, timeout=10)
    result["sim"] = {k: config[k] for k in ("ttft_ms", "token_ms", "reply_tokens", "timed_tokens_cap")}
    return result


def print_chat(r: dict[str, Any]) -> None:
    s = r["sim"]
    print(f"\nchat: conversation context and the answer-or-plan decision (medians of {r['repeats']}; simulated server "
          f"ttft {s['ttft_ms']:.0f} ms, {s['token_ms']:.0f} ms/token, {s['timed_tokens_cap']} tokens timed)")
    print("way          | turns | message                     | read conv ms | LLM call ms | total ms | added ms | "
          "request bytes (+added) | words at server | msg tokens est | context tokens | turns kept | reply words")
    for x in r["rows"]:
        added = f"{x['added_ms']:8.1f}" if "added_ms" in x else "       -"
        more = f"(+{x['added_request_bytes']:.0f})" if "added_request_bytes" in x else ""
        print(f"{x['way']:<12} | {x['earlier_turns']:>5} | {x['message'][:27]:<27} | {x['context_ms']:12.1f} | "
              f"{x['llm_ms']:11.1f} | {x['total_ms']:8.1f} | {added} | {x['request_bytes']:8.0f} {more:<13} | "
              f"{x['request_words']:15.0f} | {x['messages_tokens_est']:14.0f} | {x['context_tokens_est']:14.0f} | "
              f"{x['turns_kept']:10.0f} | {x['reply_words']:11.0f}")


def main() -> None:
    from benchmarks.run import RESULTS, _start_sim
    from core.logging import configure

    configure("WARNING", "json")
    sim, base = _start_sim(ttft_ms=200, token_ms=50, reply_tokens=20)
    try:
        result = run_chat(base)
    finally:
        sim.terminate()
    print_chat(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"chat-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
