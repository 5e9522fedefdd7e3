"""The gateway writes a reply into the run's event log as it is written — the real litellm client
against the simulated server, with the Store in process (no Ray)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported

from actors.gateway import LLMGateway  # noqa: E402
from actors.runtime.handles import LocalHandle  # noqa: E402
from actors.store import Store  # noqa: E402
from core.chat_schemas import ChatMessage, ChatRequest  # noqa: E402
from core.settings import Settings  # noqa: E402
from integrations.llm.backend import Backend  # noqa: E402
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread  # noqa: E402
from tests._db import sql  # noqa: E402


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig(token_ms=2, reply_tokens=30)) as handle:
        monkeypatch.setenv("OLLAMA_API_BASE", handle.base_url)
        yield handle


async def test_concurrent_streamed_replies_land_whole_and_in_order_per_run(sim: SimHandle, tmp_path: Path) -> None:
    store = Store(":memory:")
    settings = Settings(data_dir=tmp_path, llm_retries=0)
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model="sim-model", worker_model="sim-model")
    gateway = LLMGateway(settings, backend, LocalHandle(store), slots=50)
    runs = [await store.create_run(f"request {i}", "u1") for i in range(20)]

    async def ask(run_id: str, i: int) -> str:
        req = ChatRequest(messages=[ChatMessage(role="user", content=f"summarize item {i} please")], role="planner",
                          run_id=run_id, agent="master", stream_phase="summary")
        return (await gateway.chat(req)).message.content

    replies = await asyncio.gather(*(ask(r.id, i) for i, r in enumerate(runs)))
    for run, reply in zip(runs, replies, strict=True):
        tokens = [e for e in await store.run_events(run.id) if e.kind == "token"]
        assert reply and "".join(e.text or "" for e in tokens) == reply  # committed before chat returned
        assert {e.phase for e in tokens} == {"summary"}
    # Each streamed call is recorded with the token counts the server sent after the text.
    for _ in range(100):
        usage = [await store.run_usage(r.id) for r in runs]
        if all(u.llm_calls for u in usage):
            break
        await asyncio.sleep(0.05)
    assert all(u.llm_calls == 1 and u.tokens_in > 0 and u.tokens_out > 0 for u in usage)

    before = len(await store.run_events(runs[0].id))
    plain = await gateway.chat(ChatRequest(messages=[ChatMessage(role="user", content="hello")], run_id=runs[0].id))
    assert plain.message.content and len(await store.run_events(runs[0].id)) == before  # no phase: not streamed


async def test_a_reply_streamed_to_the_caller_is_recorded_with_its_tokens(sim: SimHandle, tmp_path: Path) -> None:
    store = Store(":memory:")
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model="sim-model", worker_model="sim-model")
    gateway = LLMGateway(Settings(data_dir=tmp_path, llm_retries=0), backend, LocalHandle(store), slots=5)
    req = ChatRequest(messages=[ChatMessage(role="user", content="summarize the week please")], role="planner",
                      agent="chat")
    chunks = [c async for c in gateway.stream(req, flush_s=0)]
    assert chunks[-1].done and "".join(c.text for c in chunks)
    for _ in range(100):
        rows = sql(store, "SELECT tokens_in, tokens_out, ok FROM agent_runs WHERE agent = 'chat'")
        if rows:
            break
        await asyncio.sleep(0.05)
    assert len(rows) == 1 and rows[0][0] > 0 and rows[0][1] > 0 and rows[0][2] is True


async def test_cancelling_a_run_aborts_its_requests_at_the_llm_server(sim: SimHandle, tmp_path: Path) -> None:
    """A cancelled run's sub-agent requests are not left waiting on the server: the gateway closes their
    connections, and their steps get an error at once."""
    store = Store(":memory:")
    settings = Settings(data_dir=tmp_path, llm_retries=0)
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model="sim-model", worker_model="sim-model")
    gateway = LLMGateway(settings, backend, LocalHandle(store), slots=50)
    slow = [ChatRequest(messages=[ChatMessage(role="user", content=f"[slow 30] call lead {i}")], role="worker",
                        run_id="r-stop", task_id=f"r-stop:s{i}", agent="calling") for i in range(3)]
    other = ChatRequest(messages=[ChatMessage(role="user", content="[slow 1] call the other lead")], role="worker",
                        run_id="r-keep", task_id="r-keep:s1", agent="calling")

    async def collect() -> dict[int, object]:
        got: dict[int, object] = {}
        async for replies in gateway.chat_many([*slow, other]):
            got.update(dict(replies))
        return got

    replies = asyncio.ensure_future(collect())
    for _ in range(200):  # all four at the server
        if sim.stats()["in_flight"] == 4:
            break
        await asyncio.sleep(0.02)
    assert sim.stats()["in_flight"] == 4
    assert await gateway.cancel_run("r-stop") == 3
    got = await asyncio.wait_for(replies, timeout=10)  # not the 30 s the server would have taken
    assert all("cancelled" in str(got[i]) for i in range(3))
    assert getattr(got[3], "message", None) is not None  # the other run's request was left alone
    assert await gateway.cancel_run("r-stop") == 0  # (the sim notices a closed connection only when it writes)
